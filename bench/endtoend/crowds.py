"""One node and many peers: an idle hub, broadcasts to warm peers, many idle sessions.

The hub's peers are real nodes: one process each for the idle case, several per
process (bench/fleet_worker.py) for the broadcasts, each with its own home, store and
loopback address. The idle sessions come from initiator processes (bench/ref_worker.py
``hold``) with RSA-2048 keys; the node's own key stays RSA-4096, so its private
operations per session are the real ones. Caps the run would otherwise measure are
raised for it and named where they are.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from endtoend.measure import process_cpu, process_rss_kb
from endtoend.processes import fleet, node, ref, small_keys, stop
from endtoend.scenarios import B_SETTINGS

IDLE_PEERS = 10  # peer nodes (one process each) for the idle case
IDLE_SECONDS = 10.0
FLEETS = 4  # processes holding the broadcast's recipient nodes
SESSIONS_PER_KEY = 60  # under connections_per_peer = 64
SESSIONS_PER_ADDRESS = 60  # under max_per_address = 64
HOLDERS = 2  # initiator processes
S_SETTINGS = {  # the idle-sessions node: caps raised for the run (see idle_sessions)
    **B_SETTINGS,
    "verify_rate": 100000.0,
    "verify_burst": 100000.0,
    "max_connections": 12000,
    "max_per_address": 64,
    "connections_per_peer": 64,
    "idle_timeout": 3600.0,
}


def idle_and_broadcast(tmp: Path, keys, hub_key, seconds: float, count: int) -> dict:
    """A hub node with ``count`` peer nodes (one process each), every session warm
    (one message each way first); then the hub's whole-process CPU over ``seconds`` of
    idleness (from /proc), then one broadcast from the hub to all its peers."""
    hub = node("hub", tmp, hub_key[0])
    peers = [node(f"p{i}", tmp, keys[f"p{i}"][0]) for i in range(count)]
    try:
        hub_pem = hub_key[1].read_text()
        for i, p in enumerate(peers):
            p.request("add_peer", pem=hub_pem, address=f"127.0.0.1:{hub.port}")
            hub.request("add_peer", pem=keys[f"p{i}"][1].read_text(), address=f"127.0.0.1:{p.port}")
        for p in peers:
            p.request("warm", peer_fp=hub.fp)
            hub.request("warm", peer_fp=p.fp)
        sessions = hub.request("stats")["node"]["sessions"]
        broadcasts = [hub.request("broadcast") for _ in range(3)]  # warm first, then measure
        time.sleep(1.0)  # let the last acks settle before the idle window (not a sync point)
        cpu0, t0 = process_cpu(hub.pid), time.monotonic()
        time.sleep(seconds)  # the measured idle window
        cpu1, t1 = process_cpu(hub.pid), time.monotonic()
        return {
            "peers": count,
            "sessions": sessions,
            "idle_seconds": t1 - t0,
            "idle_cpu_share": (cpu1 - cpu0) / (t1 - t0),
            "broadcast_ms": [1000 * b["seconds"] for b in broadcasts],
            "broadcast_durable_ms": [1000 * b["durable_seconds"] for b in broadcasts],
            "hub_rss_kb": process_rss_kb(hub.pid),
        }
    finally:
        stop(hub, *peers)


def fleet_keys(tmp: Path, count: int) -> list[Path]:
    """``count`` RSA-2048 private key files (recipients of the broadcast case)."""
    return [key_file for key_file, _ in small_keys(tmp / "fleetkeys", count, "f")]


def broadcast_warm(tmp: Path, hub_key, key_files, rounds: int = 5, sync: str = "full") -> dict:
    """Node ``bhub`` broadcasts to one warm peer per key file; the time until all acked.

    The recipients run FLEETS to a process (store_sync as the hub's), each on its own
    loopback address 127.0.1.N (see fleet_worker); only the first, warming broadcast
    makes handshakes. Then ``rounds`` measured ones, each timed from the
    ``Node.broadcast`` call until the hub has seen every copy delivered."""
    count = len(key_files)
    settings = {"store_sync": sync}
    hub = node(f"bhub-{sync}", tmp, hub_key[0], settings)
    fleets = []
    try:
        for f in range(FLEETS):
            mine = key_files[f::FLEETS]
            if mine:
                argv = ["--dir", tmp / f"fleet-{sync}", "--keys", *mine]
                argv += ["--settings", json.dumps(settings)]
                argv += ["--hub-pem", hub_key[1], "--hub-port", hub.port]
                argv += ["--first-address", 1 + f * (count // FLEETS + 1)]
                fleets.append(fleet(f"fleet{f}-{sync}", tmp, *argv))
        members = [m for fl in fleets for m in fl.line(120 + count)["nodes"]]
        for m in members:
            hub.request("add_peer", pem=m["pem"], address=f"{m['host']}:{m['port']}")
        warm = hub.request("broadcast", timeout=20 + count)
        rounds_ms = [1000 * hub.request("broadcast")["seconds"] for _ in range(rounds)]
        return {
            "peers": len(members),
            "warm_ms": 1000 * warm["seconds"],
            "rounds_ms": rounds_ms,
            "median_ms": sorted(rounds_ms)[len(rounds_ms) // 2],
            "hub_sessions": hub.request("stats")["node"]["sessions"],
        }
    finally:
        stop(hub)
        for fl in fleets:
            fl.close()


def idle_sessions(tmp: Path, node_key, count: int) -> dict:
    """One node holding ``count`` authenticated idle sessions, and its RSS per session.

    The initiators (HOLDERS processes) use SESSIONS_PER_KEY sessions per key and
    SESSIONS_PER_ADDRESS per source address 127.0.0.x. The node's caps are raised for
    the run (S_SETTINGS): 12,000 connections, 64 sessions per peer, no idle expiry, and
    the abuse budgets of the handshake case. RSS is read from /proc after the peers were
    added and again once every session is established; the difference per session."""
    keys_dir = tmp / "holdkeys"
    keys = small_keys(keys_dir, -(-count // SESSIONS_PER_KEY), "k")
    s = node("S", tmp, node_key[0], S_SETTINGS)
    holders = []
    try:
        for _, public in keys:
            s.request("add_peer", pem=public.decode(), address=None)
        rss_before = process_rss_kb(s.pid)
        t0 = time.monotonic()
        per = -(-count // HOLDERS)
        for h in range(HOLDERS):
            first, n = h * per, min(per, count - h * per)
            args = ["hold", "--keys-dir", keys_dir, "--peer-pem", node_key[1], "--port", s.port]
            args += ["--n", n, "--first", first, "--per-address", SESSIONS_PER_ADDRESS]
            holders.append(ref(f"hold{h}", tmp, *args, "--concurrency", 4))  # 8 = crypto_queue
        held = [h.line(120 + count / 20) for h in holders]
        seconds = time.monotonic() - t0
        sessions = s.request("stats")["node"]["sessions"]
        rss_after = process_rss_kb(s.pid)
        return {
            "requested": count,
            "held": sum(x["ok"] for x in held),
            "outcomes": [x["outcomes"] for x in held],
            "sessions": sessions,
            "seconds_to_establish": seconds,
            "rss_before_kb": rss_before,
            "rss_after_kb": rss_after,
            "rss_per_session_kb": (rss_after - rss_before) / max(1, sessions),
            "initiator_keys": len(keys),
        }
    finally:
        for h in holders:
            h.close()
        stop(s)
