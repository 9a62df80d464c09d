"""Two nodes, A and B: durable throughput, one-way latency and new sessions per second.

A sends, B receives; both are node processes (``processes.node``), warmed before any
measured run (``warm_up``: the first session's handshake and a short burst). The
handshake rate is set beside the RSA private-operation rate measured right before and
right after it, since the machine is shared and its rate drifts.
"""

from __future__ import annotations

import time
from pathlib import Path

from support.procs import BULK_RECEIVER, NodeProc

from endtoend.measure import cpu_delta, machine_busy, machine_cpu, percentiles_us
from endtoend.processes import introduce, node, ref, stop

# Node B also takes the handshake run. Its abuse budgets (per-address verifies, per-peer
# handshakes: PROTOCOL.md b.4) would otherwise cap one dialer at a few handshakes per
# second, which measures the budget, not the node; they do not touch the message path.
# Its receive quotas per contact (PROTOCOL.md "Receive quotas") are raised too
# (BULK_RECEIVER): at their defaults (1,000 chats/s per contact) the throughput case
# would measure the quota, not the node. The flooding case (V) keeps every default.
B_SETTINGS = {
    "verify_rate_per_address": 100000.0,
    "verify_burst_per_address": 100000.0,
    "handshake_rate_per_peer": 100000.0,
    "handshake_burst_per_peer": 100000.0,
    **BULK_RECEIVER,
}
RSA_OPS = ("ops_per_s_1_threads", "ops_per_s_2_threads")


def warm_up(a: NodeProc, b: NodeProc, n: int) -> float:
    """A's first message to B, then a burst of up to 2,000: the first one's seconds
    (connect, handshake, delivered)."""
    first = a.request("warm", peer_fp=b.fp)["seconds"]
    a.request("throughput", peer_fp=b.fp, n=min(n, 2000), prefix="w")
    return first


def enclave_throughput(a: NodeProc, b: NodeProc, n: int) -> dict:
    received_before = b.request("stats")["received"]
    cpu_a, cpu_b = a.request("cpu")["threads"], b.request("cpu")["threads"]
    r = a.request("throughput", timeout=60 + n / 500, peer_fp=b.fp, n=n)
    stats_b = b.request("stats")
    seconds = r["seconds"]
    received = stats_b["received"] - received_before
    if received != n:
        raise RuntimeError(f"B showed {received} of {n} messages")
    shares = {
        "A": cpu_delta(cpu_a, a.request("cpu")["threads"], seconds),
        "B": cpu_delta(cpu_b, b.request("cpu")["threads"], seconds),
    }
    cores = sum(sum(threads.values()) for threads in shares.values())
    return {
        "n": n,
        "seconds": seconds,
        "rate": n / seconds,
        "durable_seconds": r["durable_seconds"],
        "submit_seconds": r["submit_seconds"],
        "cpu_share": shares,
        # every thread of both processes, harness included (it idles while it waits)
        "cpu_us_per_msg": cores * seconds / n * 1e6,
        "node_stats": {"A": a.request("stats")["node"], "B": stats_b["node"]},
    }


def enclave_latency(a: NodeProc, b: NodeProc, rate: float, n: int) -> dict:
    b.request("record", prefix="L")
    sent = a.request("pace", timeout=60 + n / rate, peer_fp=b.fp, rate=rate, n=n, prefix="L")
    reply = b.request("received")
    got, arrived = reply["times"], reply["arrived"]
    missing = [k for k in sent["sent"] if k not in got]
    if missing:
        raise RuntimeError(f"B did not report {len(missing)} of {n} paced messages")
    one_way = [got[k] - t for k, t in sent["sent"].items()]
    # Where the time goes, per message: A hands the message to its link while its
    # enqueue commit runs, so A's commit ("queued") is off the path; B's commit is on it.
    keys = list(sent["sent"])
    segments = {
        "A submit -> B decrypted": [arrived[k] - sent["sent"][k] for k in keys],
        "B decrypted -> shown": [got[k] - arrived[k] for k in keys],
        "A submit -> A committed": [sent["durable"][k] - sent["sent"][k] for k in keys],
    }
    return {
        "rate": rate,
        **percentiles_us(one_way),
        "segments": {name: percentiles_us(v) for name, v in segments.items()},
    }


def sync_normal(tmp: Path, keys, n: int, lat_n: int) -> dict:
    """Throughput and latency again between two fresh nodes with store_sync = "normal"
    (safe against a crash of Enclave, not against power loss), for the side-by-side table."""
    a = node("An", tmp, keys["alice"][0], {"store_sync": "normal"})
    b = node("Bn", tmp, keys["bob"][0], {**B_SETTINGS, "store_sync": "normal"})
    try:
        introduce(a, keys["alice"][1], b, keys["bob"][1])
        warm_up(a, b, n)
        return {
            "throughput": enclave_throughput(a, b, n),
            "latency": enclave_latency(a, b, 1000.0, lat_n),
        }
    finally:
        stop(a, b)


def rsa_rate(tmp: Path, key_file: Path, seconds: float) -> dict:
    p = ref("rsa", tmp, "rsa", "--key-file", key_file, "--seconds", seconds)
    try:
        return p.line(60 + 4 * seconds)
    finally:
        p.close()


def rsa_summary(before: dict, after: dict) -> dict:
    """The rates before and after the handshakes, and their mean (the handshake target
    is judged against the mean)."""
    mean = {k: (before[k] + after[k]) / 2 for k in RSA_OPS}
    return {"bits": before["bits"], "before": before, "after": after, **mean}


def handshakes(tmp: Path, b: NodeProc, keys, seconds: float, concurrency: int) -> dict:
    before = b.request("stats")["node"]["handshakes"]
    cpu_b = b.request("cpu")["threads"]
    machine = machine_cpu()
    args = ["dial", "--key-file", keys["dialer"][0], "--peer-pem", keys["bob"][1]]
    args += ["--port", b.port, "--seconds", seconds, "--concurrency", concurrency]
    p = ref("dial", tmp, *args)
    try:
        r = p.line(120 + seconds)
    finally:
        p.close()
    r.pop("ev")
    r["machine_busy"] = machine_busy(machine, machine_cpu())  # cores, anyone's
    # The figure is what the node established (it verified each initiator's Finished);
    # the last few HS3 may still be in flight when the dialer reports.
    deadline = time.monotonic() + 5
    while True:
        after = b.request("stats")["node"]
        if after["handshakes"] - before >= r["ok"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    r["node_handshakes"] = after["handshakes"] - before
    r["node_closed"] = after["closed"]
    r["rate"] = r["node_handshakes"] / r["seconds"]
    r["cpu_share_B"] = cpu_delta(cpu_b, b.request("cpu")["threads"], r["seconds"])
    r["concurrency"] = concurrency
    if r["node_handshakes"] and r["ok"]:
        r["cpu_per_handshake"] = cpu_per_handshake(r)
    return r


def cpu_per_handshake(r: dict) -> dict:
    """CPU milliseconds per handshake: B's threads, the initiator process, and of their
    sum the share its 4 private operations took (B's crypto threads' time per operation,
    counted for both sides). With both processes on the same cores and the cores full,
    that share is the most the handshake rate can be of what the RSA rate allows."""
    ms = 1000 * r["seconds"]
    b = {k: round(v * ms / r["node_handshakes"], 3) for k, v in r["cpu_share_B"].items()}
    initiator = r["initiator_cpu_share"] * ms / r["ok"]
    private_op = sum(v for k, v in b.items() if k.startswith("enclave-crypto")) / 2
    total = sum(b.values()) + initiator
    return {
        "B": b,
        "initiator": round(initiator, 3),
        "total": round(total, 3),
        "private_op": round(private_op, 3),
        "private_share": round(4 * private_op / total, 3),
    }
