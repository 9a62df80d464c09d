"""Where the time goes in one more throughput pass (``--profile``), and how it is shown.

``cprofile``: cProfile in both nodes' event-loop and store-writer threads (the node
worker's ``profile`` command), top functions by self time. ``py-spy``: both processes
sampled from outside (``pip install py-spy``), self and inclusive shares by function.
The pass is not one of the reported figures: a profiler slows what it watches.
"""

from __future__ import annotations

import collections
import pstats
import signal
import subprocess
import time
from pathlib import Path


def profile_cprofile(a, b, n: int, tmp: Path) -> dict:
    a.request("profile", on=True)
    b.request("profile", on=True)
    r = a.request("throughput", timeout=120 + n / 200, peer_fp=b.fp, n=n, prefix="p")
    files = {
        "A": a.request("profile", on=False, out=str(tmp / "A"))["files"],
        "B": b.request("profile", on=False, out=str(tmp / "B"))["files"],
    }
    out = {"n": n, "seconds": r["seconds"], "rate": n / r["seconds"]}
    for side, paths in files.items():
        for thread, path in paths.items():
            out[f"{side} {thread}"] = top_cprofile(path, r["seconds"])
    return out


def profile_handshakes(tmp: Path, b, keys, size, args) -> dict:
    """One more handshake pass (``--only handshakes --profile cprofile``) with cProfile in
    B's loop thread: where B's loop spends its share of a handshake."""
    from endtoend import scenarios

    b.request("profile", on=True)
    r = scenarios.handshakes(tmp, b, keys, size.hs_seconds, args.hs_concurrency)
    files = b.request("profile", on=False, out=str(tmp / "B-hs"))["files"]
    return {
        "tool": "cprofile",
        "case": "handshakes",
        "n": r["node_handshakes"],
        "seconds": r["seconds"],
        "rate": r["rate"],
        "cpu_share_B": r["cpu_share_B"],
        "initiator_cpu_share": r["initiator_cpu_share"],
        "B loop": top_cprofile(files["loop"], r["seconds"], 25),
    }


def top_cprofile(path: str, seconds: float, count: int = 15) -> list[dict]:
    stats = pstats.Stats(path)
    rows = []
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():
        rows.append(
            {
                "function": f"{func} ({_short(file)}:{line})",
                "calls": ncalls,
                "self_s": round(tottime, 3),
                "cum_s": round(cumtime, 3),
                "self_share": round(tottime / seconds, 3),
            }
        )
    rows.sort(key=lambda r: r["self_s"], reverse=True)
    return rows[:count]


def _short(file: str) -> str:
    for marker in ("/enclave/", "/site-packages/", "/lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def profile_pyspy(a, b, n: int, tmp: Path, rate: int = 250) -> dict:
    spies = {}
    for side, p in (("A", a), ("B", b)):
        out = tmp / f"{side}.pyspy.txt"
        cmd = ["py-spy", "record", "-p", str(p.pid), "-r", str(rate), "-f", "raw"]
        cmd += ["-o", str(out), "--nonblocking", "--threads", "--function"]
        spies[side] = (
            subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            out,
        )
    time.sleep(1.0)  # py-spy attaches
    r = a.request("throughput", timeout=120 + n / 500, peer_fp=b.fp, n=n, prefix="p")
    result = {"n": n, "seconds": r["seconds"], "rate": n / r["seconds"], "sample_rate": rate}
    for side, (spy, out) in spies.items():
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
        result[side] = top_pyspy(out)
    return result


PROFILERS = {"cprofile": profile_cprofile, "py-spy": profile_pyspy}


def top_pyspy(path: Path, count: int = 18) -> dict:
    """Self samples by leaf function (Python frames; C calls count in their caller),
    and inclusive samples by function, as shares of all samples of the process."""
    leaf, inclusive, threads = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    if not path.exists():
        return {"error": "py-spy wrote nothing"}
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";")
        k = int(samples)
        total += k
        threads[frames[0]] += k
        leaf[frames[-1]] += k
        for f in set(frames[1:]):
            inclusive[f] += k
    return {
        "samples": total,
        "threads": {t: round(k / total, 3) for t, k in threads.most_common()},
        "self": [(f, round(k / total, 3)) for f, k in leaf.most_common(count)],
        "inclusive": [(f, round(k / total, 3)) for f, k in inclusive.most_common(count)],
    }


def print_profile(p: dict) -> None:
    if p.get("case") == "handshakes":
        print(f"\nprofile ({p['tool']}) of a handshake pass: {p['n']:,} at {p['rate']:,.0f}/s")
        print(f"   CPU (share of a core): B {p['cpu_share_B']}, dialer {p['initiator_cpu_share']}")
    else:
        print(
            f"\nprofile ({p['tool']}) of a throughput pass: {p['n']:,} messages"
            f" at {p['rate']:,.0f} msg/s"
        )
    for key, value in p.items():
        if isinstance(value, list):
            print(f"-- {key}: top self time (s, share of the pass's wall time)")
            for row in value:
                print(
                    f"   {row['self_s']:7.3f} {row['self_share']:6.1%} {row['calls']:>9} {row['function']}"
                )
        elif isinstance(value, dict) and "self" in value:
            print(f"-- {key}: {value['samples']} samples; threads {value['threads']}")
            for f, share in value["self"]:
                print(f"   self {share:6.1%}  {f}")
            for f, share in value["inclusive"][:10]:
                print(f"   incl {share:6.1%}  {f}")
