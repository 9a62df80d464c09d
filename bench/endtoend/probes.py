"""What the figures depend on besides Enclave: the machine, its disk, the code measured,
and how long an interpreter takes to start ``enclave --help``.

The probes only read (read-only git queries, /proc/cpuinfo, package versions), apart
from the fsync probe's one file in the run's own folder, removed when done.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from endtoend import REPO
from endtoend.measure import percentiles_us


def fsync_probe(folder: Path, count: int = 200) -> dict:
    """What one durable commit costs at least here: write 4 KiB + fsync, in the folder
    the nodes' stores live in (SQLite runs synchronous=FULL: one fsync per commit)."""
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    times = []
    try:
        for _ in range(count):
            os.write(fd, b"x" * 4096)
            t = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink()
    return percentiles_us(times)


def help_wall(runs: int = 7) -> dict:
    """``enclave --help`` wall time, each run a fresh interpreter (median of ``runs``)."""
    times = []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "enclave", "--help"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"runs": runs, "median_ms": 1000 * times[runs // 2], "min_ms": 1000 * times[0]}


def source_state() -> dict:
    """Which code was measured: the commit, and any files of the package that differ
    from it (read-only git queries). Outside a git checkout (e.g. a ``git archive``
    export), ``ENCLAVE_SOURCE_COMMIT`` names the commit it was exported from."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    head = git("rev-parse", "--short", "HEAD")
    if head is None:
        return {"commit": os.environ.get("ENCLAVE_SOURCE_COMMIT"), "export": True}
    changed = git("status", "--porcelain", "--", "enclave", "setup.py")
    return {"commit": head, "uncommitted": changed.splitlines() if changed else []}


def machine() -> dict:
    from importlib.metadata import version

    from cryptography.hazmat.backends.openssl import backend

    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "cryptography": version("cryptography"),
        "openssl": backend.openssl_version_text(),
        "uvloop": version("uvloop"),
        "msgpack": version("msgpack"),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"
