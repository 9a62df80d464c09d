"""Group chat (issue 18): a post until every copy is acked, and posts per second, each
beside the direct message measured the same way in the same run.

The sender (node ``ghub``, RSA-4096) makes the group; the other members are fleet nodes
(bench/fleet_worker.py, FLEETS to a process, RSA-2048, each on its own loopback address).
The sender has every member as a contact; each member knows only the sender (the group's
log tells it the others). A post is one outbox row per other member over the pairwise
sessions, so a copy is "delivered" when that member acked it. The members' receive quotas
are raised (BULK_RECEIVER) for both the group posts and the direct messages.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from support.procs import BULK_RECEIVER

from endtoend.crowds import FLEETS
from endtoend.measure import percentiles_us
from endtoend.processes import fleet, node, stop
from endtoend.scenarios import B_SETTINGS

RECEIVER = {key: float(value) for key, value in BULK_RECEIVER.items()}  # fleet settings: JSON


def group_cases(tmp: Path, hub_key, key_files, big: int, rounds: int, small: int, n: int):
    """Both group cases: the round of a group of ``big`` and the burst of ``small``."""
    return {
        "round": group_round(tmp, hub_key, key_files[: big - 1], rounds),
        "burst": group_burst(tmp, hub_key, key_files[: small - 1], n),
    }


def group_round(tmp: Path, hub_key, key_files, rounds: int) -> dict:
    """A group of the sender and one member per key file: ``rounds`` posts, each from
    ``Node.group_send`` until every other member acked its copy (the next one starts
    then), after one unmeasured post (sessions warm, every member holding the group);
    then ``rounds`` direct messages to one member, each until it is delivered."""
    with _members(tmp, "round", hub_key, key_files) as (hub, members):
        gid = hub.request("group_create", name="round", members=members)["group"]
        count = len(members) + 1
        warm = hub.request("group_rounds", timeout=60 + count, group=gid, rounds=1)
        timed = hub.request("group_rounds", timeout=60 + 2 * rounds, group=gid, rounds=rounds)
        group_s = [r["seconds"] for r in timed["rounds"]]
        direct_s = [hub.request("warm", peer_fp=members[0])["seconds"] for _ in range(rounds)]
        return {
            "members": count,
            "copies": timed["copies"],
            "rounds": rounds,
            "warm_ms": 1000 * warm["rounds"][0]["seconds"],
            "group": _ms(group_s),
            "group_durable": _ms([r["durable"] for r in timed["rounds"]]),
            "direct": _ms(direct_s),
        }


def group_burst(tmp: Path, hub_key, key_files, n: int) -> dict:
    """``n`` posts into a group of the sender and one member per key file, all at once
    (every ``Node.group_send`` started without waiting for the one before), until every
    copy is delivered; then ``n`` direct messages to one member the same way (each its
    own ``Node.submit``). Both after a warm-up of their own."""
    with _members(tmp, "burst", hub_key, key_files) as (hub, members):
        gid = hub.request("group_create", name="burst", members=members)["group"]
        count = len(members) + 1
        hub.request("group_rounds", timeout=60 + count, group=gid, rounds=1)
        hub.request("warm", peer_fp=members[0])
        group = hub.request("group_burst", timeout=60 + n * count / 100, group=gid, n=n)
        direct = hub.request("burst", timeout=60 + n / 100, peer_fp=members[0], n=n)
        posts_s = n / group["seconds"]
        copies_s = group["copies"] / group["seconds"]
        direct_s = n / direct["seconds"]
        return {
            "members": count,
            "n": n,
            "group_seconds": group["seconds"],
            "group_durable_seconds": group["durable_seconds"],
            "posts_per_s": posts_s,
            "copies_per_s": copies_s,
            "direct_seconds": direct["seconds"],
            "direct_per_s": direct_s,
            "ratio": copies_s / direct_s,
        }


@contextlib.contextmanager
def _members(tmp: Path, label: str, hub_key, key_files):
    """The sender and its members up (fleets of FLEETS processes), the sender having
    each as a contact: ``(hub, [member fingerprint, ...])``; all stopped on exit."""
    count = len(key_files)
    hub = node(f"ghub-{label}", tmp, hub_key[0], B_SETTINGS)
    fleets = []
    try:
        for f in range(FLEETS):
            mine = key_files[f::FLEETS]
            if mine:
                argv = ["--dir", tmp / f"gfleet-{label}", "--keys", *mine]
                argv += ["--settings", json.dumps(RECEIVER)]
                argv += ["--hub-pem", hub_key[1], "--hub-port", hub.port]
                argv += ["--first-address", 1 + f * (count // FLEETS + 1)]
                fleets.append(fleet(f"gfleet{f}-{label}", tmp, *argv))
        members = [m for fl in fleets for m in fl.line(120 + count)["nodes"]]
        fps = []
        for m in members:
            address = f"{m['host']}:{m['port']}"
            fps.append(hub.request("add_peer", pem=m["pem"], address=address)["fp"])
        yield hub, fps
    finally:
        stop(hub)
        for fl in fleets:
            fl.close()


def _ms(seconds: list[float]) -> dict:
    """Median, p99 and max in ms (percentiles_us, from seconds)."""
    p = percentiles_us(seconds)
    return {
        "count": p["count"],
        "median_ms": p["p50_us"] / 1000,
        "p99_ms": p["p99_us"] / 1000,
        "max_ms": p["max_us"] / 1000,
    }
