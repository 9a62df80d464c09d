"""The history sealed at rest (store/sealing.py), side by side with it in clear.

- Throughput and latency: a pair of node processes sealing (as every user's node does)
  and a pair keeping the history in clear (as the previous version did), in turn, twice,
  in the same run, the same way as the main pair (scenarios.py); the best of each side.
- Sealing a store the previous version wrote: ``n`` messages in clear, then the first
  open with the key seals them all (msg/s).
- Search with sealed bodies: a word no message holds, so every body is opened (ms).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from endtoend import scenarios
from endtoend.processes import introduce, node, stop


def pair_rates(tmp: Path, keys, n: int, lat_n: int, sealed: bool) -> dict:
    tag = ("S" if sealed else "C") + str(len(list(tmp.glob("A[SC]*"))))  # a fresh home each run
    a = node(f"A{tag}", tmp, keys["alice"][0], sealed=sealed)
    b = node(f"B{tag}", tmp, keys["bob"][0], scenarios.B_SETTINGS, sealed=sealed)
    try:
        introduce(a, keys["alice"][1], b, keys["bob"][1])
        scenarios.warm_up(a, b, n)
        return {
            "throughput": scenarios.enclave_throughput(a, b, n),
            "latency": scenarios.enclave_latency(a, b, 1000.0, lat_n),
        }
    finally:
        stop(a, b)


def side_by_side(tmp: Path, keys, n: int, lat_n: int, rounds: int = 2) -> dict:
    """Clear and sealed pairs in turn, ``rounds`` times; each side's best throughput and
    best p50 (the machine is shared: the best run is the one least disturbed)."""
    runs: dict[str, list[dict]] = {"clear": [], "sealed": []}
    for _ in range(rounds):
        for side in runs:
            runs[side].append(pair_rates(tmp, keys, n, lat_n, sealed=side == "sealed"))
    best = {
        side: {
            "throughput": max((r["throughput"] for r in got), key=lambda t: t["rate"]),
            "latency": min((r["latency"] for r in got), key=lambda lat: lat["p50_us"]),
            "rates": [r["throughput"]["rate"] for r in got],
        }
        for side, got in runs.items()
    }
    clear, sealed = best["clear"], best["sealed"]
    return {
        **best,
        "rounds": rounds,
        "throughput_ratio": sealed["throughput"]["rate"] / clear["throughput"]["rate"],
        "p50_ratio": sealed["latency"]["p50_us"] / clear["latency"]["p50_us"],
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


def sealing_case(tmp: Path, keys, n: int, lat_n: int, old_n: int) -> dict:
    return {**side_by_side(tmp, keys, n, lat_n), "old": old_store(tmp, old_n)}
