"""The history sealed at rest (store/sealing.py), side by side with it in clear.

- Throughput and latency: a pair of node processes sealing (as every user's node does)
  and a pair keeping the history in clear (as the previous version did), both up at
  once, their passes alternating (``side_by_side``), measured the same way as the main
  pair (scenarios.py).
- Sealing a store the previous version wrote: ``n`` messages in clear, then the first
  open with the key seals them all (msg/s).
- Search with sealed bodies: a word no message holds, so every body is opened (ms).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from endtoend import scenarios
from endtoend.processes import introduce, node, stop

SIDES = ("clear", "sealed")


def _pair(tmp: Path, keys, sealed: bool, tag: str):
    """A warmed pair of node processes, A sending to B, sealing its history or not."""
    tag = ("S" if sealed else "C") + tag
    a = node(f"A{tag}", tmp, keys[0][0], sealed=sealed)
    pair = [a]
    try:
        pair.append(node(f"B{tag}", tmp, keys[1][0], scenarios.B_SETTINGS, sealed=sealed))
        introduce(a, keys[0][1], pair[1], keys[1][1])
        scenarios.warm_up(a, pair[1], 2000)
    except BaseException:
        _stop_all([pair])
        raise
    return tuple(pair)


def _stop_all(pairs) -> None:
    """Stop every node of ``pairs``; the nodes of a pair that fails to stop (one died
    meanwhile) are killed, and the first such error is raised once all are down."""
    error = None
    for pair in pairs:
        try:
            stop(*pair)
        except Exception as err:  # noqa: BLE001 - the others must still be stopped
            error = error or err
            for p in pair:
                if not p.reaped:
                    p.kill()
    if error is not None:
        raise error


def side_by_side(tmp: Path, keys, n: int, lat_n: int, rounds: int = 4) -> dict:
    """Clear and sealing pairs side by side, ``rounds`` times. Each round starts a
    fresh pair of each kind, both up at once (each kind with keys of its own, so
    neither reaches the other's nodes; the kind started first alternates), runs two
    throughput passes of each back to back in the order clear, sealed, sealed, clear
    (or the reverse), one latency run of each, and stops them. Why so: the machine is
    shared and its speed drifts over seconds, which the passes next to each other
    cancel; and a process's own layout moves its rate by a few percent for its whole
    life, so one pair per kind would carry that into every pass, which fresh pairs
    each round average out. The ratio is the median of the sealed ÷ clear of passes
    next to each other; each kind's figures are its best pass (the least disturbed)."""
    passes: dict[str, list[dict]] = {side: [] for side in SIDES}
    latency: dict[str, list[dict]] = {side: [] for side in SIDES}
    ratios = []
    for r in range(rounds):
        order = SIDES if r % 2 == 0 else SIDES[::-1]
        pairs: dict = {}
        try:
            for side in order:
                pair_keys = keys[SIDES.index(side)]
                pairs[side] = _pair(tmp, pair_keys, sealed=side == "sealed", tag=str(r))
            got = {side: [] for side in SIDES}
            for side in (*order, *order[::-1]):
                got[side].append(scenarios.enclave_throughput(*pairs[side], n))
            for side in order:
                latency[side].append(scenarios.enclave_latency(*pairs[side], 1000.0, lat_n))
        finally:
            _stop_all(pairs.values())
        for side in SIDES:
            passes[side] += got[side]
        # Each clear pass with the sealed one next to it: the 1st with the 2nd, the 4th with the 3rd.
        ratios += [s["rate"] / c["rate"] for c, s in zip(got["clear"], got["sealed"], strict=True)]
    p50 = [
        s["p50_us"] / c["p50_us"] for c, s in zip(latency["clear"], latency["sealed"], strict=True)
    ]
    best = {
        side: {
            "throughput": max(passes[side], key=lambda t: t["rate"]),
            "latency": min(latency[side], key=lambda lat: lat["p50_us"]),
            "rates": [t["rate"] for t in passes[side]],
        }
        for side in SIDES
    }
    return {
        **best,
        "rounds": rounds,
        "ratios": ratios,
        "throughput_ratio": statistics.median(ratios),
        "p50_ratio": statistics.median(p50),
    }


def old_store(tmp: Path, n: int) -> dict:
    """Seal ``n`` messages an older Enclave left in clear; then search them all."""
    from enclave.store import Store

    path = tmp / "old-store" / "enclave.db"
    path.parent.mkdir(mode=0o700)
    fp = "ab" * 32
    with Store.open(path, sync="normal") as store:
        store.upsert_peer(fp, "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n",
                          None, "old", 1.0)  # fmt: skip
        step = 20_000
        for start in range(0, n, step):
            rows = [(fp, i.to_bytes(16, "big"), f"message number {i} " + "x" * 80, i, i, False)
                    for i in range(start, min(n, start + step))]  # fmt: skip
            store.store_incoming(rows)
    key = os.urandom(32)
    t0 = time.perf_counter()
    with Store.open(path, key=key) as store:
        sealed_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        found = store.search_messages("no message holds this", limit=50)
        search_s = time.perf_counter() - t1
    assert not found
    return {
        "messages": n,
        "seal_s": sealed_s,
        "seal_rate": n / sealed_s,
        "search_all_ms": 1000 * search_s,
    }


def sealing_case(tmp: Path, keys, n: int, lat_n: int, old_n: int, rounds: int) -> dict:
    """``keys``: ((A's key file, A's public key file), (B's ...)) of each side, clear
    first."""
    return {**side_by_side(tmp, keys, n, lat_n, rounds), "old": old_store(tmp, old_n)}
