"""The microbenchmarks: pytest-benchmark on bench_*.py in a subprocess, read back.

They run first and alone (no node process runs meanwhile). Cases are read generically
from their ``extra_info``, by bench/conftest.py's convention: ``ops`` (operations per
timed call) with ``twin`` ("native" or "pure", paired by benchmark group) makes a
``_fast`` pair; ``ops`` without ``twin`` (with ``unit``, what one call covers, and
``each``, what one operation is) a per-op row. A new case joins the table by following
the convention, with no change here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from endtoend import BENCH, REPO

MICRO_FILES = ("bench_fast.py", "bench_protocol.py", "bench_store.py")
MICRO_OPTIONS = {
    # pytest-benchmark's defaults, pinned (about 20-30 s here for both files)
    "full": ["--benchmark-max-time=1.0", "--benchmark-min-rounds=5"],
    # a few rounds per case (about 8 s, most of it the cases' own fixed pedantic rounds):
    # enough to produce every row, too few to judge one
    "quick": ["--benchmark-max-time=0.01", "--benchmark-min-rounds=1"],
}


def microbenchmarks(tmp: Path, quick: bool) -> dict:
    """Run MICRO_FILES under pytest-benchmark in a subprocess; the medians per operation."""
    mode = "quick" if quick else "full"
    out = tmp / "micro.json"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    argv += [str(BENCH / f) for f in MICRO_FILES]
    argv += ["--benchmark-only", f"--benchmark-json={out}", *MICRO_OPTIONS[mode]]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    t0 = time.monotonic()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - t0
    if done.returncode != 0 or not out.exists() or not out.stat().st_size:
        tail = (done.stdout + done.stderr)[-4000:]
        raise RuntimeError(f"microbenchmarks: pytest exited {done.returncode}\n{tail}")
    data = json.loads(out.read_text())
    benches = data["benchmarks"]
    return {
        "mode": mode,
        "files": [f"bench/{f}" for f in MICRO_FILES],
        "options": MICRO_OPTIONS[mode],
        "pytest_benchmark": data.get("version"),
        "seconds": round(seconds, 1),
        "twins": twin_pairs(benches),
        "per_op": per_op_cases(benches),
    }


def _case(bench: dict) -> str:
    return bench.get("group") or bench["name"].split("[", 1)[0]


def twin_pairs(benches: list[dict]) -> list[dict]:
    """One row per benchmark group whose cases name a twin: the per-op median of each
    twin and the speed-up, pure time / native time (None if a twin is missing)."""
    groups: dict[str, dict] = {}
    for bench in benches:
        info = bench.get("extra_info", {})
        if not (info.get("ops") and info.get("twin")):
            continue
        pair = groups.setdefault(_case(bench), {"rounds": {}})
        pair[info["twin"]] = bench["stats"]["median"] / info["ops"]
        pair["rounds"][info["twin"]] = bench["stats"]["rounds"]
    rows = []
    for case, pair in sorted(groups.items()):
        native, pure = pair.get("native"), pair.get("pure")
        rows.append(
            {
                "case": case,
                "native_s": native,
                "pure_s": pure,
                "speedup": pure / native if native and pure else None,
                "rounds": pair["rounds"],
            }
        )
    return rows


def per_op_cases(benches: list[dict]) -> list[dict]:
    """Every other case that says how many operations one timed call covers, in run order."""
    rows = []
    for bench in benches:
        info = bench.get("extra_info", {})
        if not info.get("ops") or info.get("twin"):
            continue
        rows.append(
            {
                "case": info.get("unit") or _case(bench),
                "test": bench["fullname"],
                "each": info.get("each", "op"),
                "ops": info["ops"],
                "per_op_s": bench["stats"]["median"] / info["ops"],
                "rounds": bench["stats"]["rounds"],
            }
        )
    return rows
