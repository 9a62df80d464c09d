"""A node under abuse: one contact flooding it, strangers flooding its handshakes.

Each case measures an honest peer twice, first quiet, then while the flood runs, and
reports what the node refused or throttled meanwhile. The floods are bench/ref_worker.py
processes (``flood``, ``hs-flood``); the flooded node keeps its defaults but where a
case names a setting. Keys: V and W use the hub's key, H alice's, the flooding contact
and the honest contact D the dialer's, each in a home of its own.
"""

from __future__ import annotations

import time
from pathlib import Path

from endtoend.measure import cpu_delta
from endtoend.processes import introduce, node, ref, stop
from endtoend.scenarios import enclave_latency

HONEST_RATE = 200.0  # msg/s of the honest contact in the flooding case
# W's per-peer handshake bucket: the honest contact opens its sessions in a row; at the
# default it would be told "busy" after 6.
HS_FLOOD_SETTINGS = {"handshake_rate_per_peer": 1000.0, "handshake_burst_per_peer": 1000.0}
FLOOD_ADDRESSES = 64  # source addresses of each handshake-flooding process


def one_contact_flooding(tmp: Path, keys, n: int) -> dict:
    """H's latency to V (default settings) at HONEST_RATE, with F quiet, then with F
    flooding V as one of its contacts (ref_worker ``flood``)."""
    v = node("V", tmp, keys["hub"][0])
    h = node("H", tmp, keys["alice"][0])
    flooder = None
    try:
        introduce(h, keys["alice"][1], v, keys["hub"][1])
        v.request("add_peer", pem=keys["dialer"][1].read_text(), address=None)
        h.request("warm", peer_fp=v.fp)
        quiet = enclave_latency(h, v, HONEST_RATE, n)
        args = ["flood", "--key-file", keys["dialer"][0], "--peer-pem", keys["hub"][1]]
        flooder = ref("flood", tmp, *args, "--port", v.port, "--n", 1024)
        flooder.line(60)  # {"ev": "flooding"}: established, writing
        time.sleep(0.5)  # past F's first burst: the figure is the steady flood
        cpu_v, t0 = v.request("cpu")["threads"], time.monotonic()
        flooding = enclave_latency(h, v, HONEST_RATE, n)
        seconds = time.monotonic() - t0
        cpu = cpu_delta(cpu_v, v.request("cpu")["threads"], seconds)
        stats = v.request("stats")["node"]
        flooder.end_input()
        sent = flooder.line(60)
        return {
            "rate": HONEST_RATE,
            "quiet": quiet,
            "flooding": flooding,
            "flooder": {k: sent[k] for k in ("sent", "acked", "throttles", "seconds", "closed")},
            "cpu_share_V": cpu,
            "v_throttled": stats["throttled"],
        }
    finally:
        if flooder is not None:
            flooder.close()
        stop(v, h)


def handshake_flood(tmp: Path, keys, rounds: int, seconds: float) -> dict:
    """An honest contact's first message (connect to delivered) to node W, ``rounds``
    new sessions, first quiet, then while two stranger processes flood W with junk HS1s
    claiming that contact, each from FLOOD_ADDRESSES addresses of its own."""
    w = node("W", tmp, keys["hub"][0], HS_FLOOD_SETTINGS)
    floods = []
    try:
        # The contact lives at 127.0.0.1, where its sessions come from; the floods
        # come from 127.1.x.y and 127.2.x.y.
        w.request("add_peer", pem=keys["dialer"][1].read_text(), address="127.0.0.1:9")
        honest = ["first-messages", "--key-file", keys["dialer"][0], "--peer-pem", keys["hub"][1]]
        honest += ["--port", w.port, "--n", rounds]
        quiet = _first_messages(tmp, honest, "quiet")
        for k in (1, 2):
            flood = ["hs-flood", "--peer-pem", keys["hub"][1], "--claim-pem", keys["dialer"][1]]
            flood += ["--port", w.port, "--first-address", k, "--addresses", FLOOD_ADDRESSES]
            flood += ["--concurrency", 32, "--seconds", seconds]
            floods.append(ref(f"hs-flood-{k}", tmp, *flood))
        for f in floods:
            f.line(60)  # {"ev": "flooding"}
        time.sleep(1.0)  # let the floods drain the global verify budget first
        closed_before = w.request("stats")["node"]["closed"]
        flooded = _first_messages(tmp, honest, "flooded")
        closed_after = w.request("stats")["node"]["closed"]
        for f in floods:
            f.end_input()
        sent = [f.line(seconds + 60) for f in floods]
        return {
            "rounds": rounds,
            "quiet": quiet,
            "flooded": flooded,
            "flood_sent": sum(s["sent"] for s in sent),
            "flood_per_s": sum(s["sent"] / s["seconds"] for s in sent),
            "refused_meanwhile": _refused(closed_before, closed_after),
        }
    finally:
        for f in floods:
            f.close()
        stop(w)


def _refused(before: dict, after: dict) -> dict:
    """The connections W closed for a failed or unaffordable verify between two stats."""
    return {
        k: v - before.get(k, 0)
        for k, v in after.items()
        if k in ("verify_budget", "bad_signature") and v > before.get(k, 0)
    }


def _first_messages(tmp: Path, args: list, label: str) -> dict:
    p = ref(f"first-messages-{label}", tmp, *args)
    try:
        done = p.line(120)
    finally:
        p.close()
    return {**done["latency"], "outcomes": done["outcomes"]}
