"""File transfer's pipeline alone: two nodes in this one process, on one event loop,
their homes and the file on a RAM disk (no disk at all), one file A to B.

    python bench/file_pipeline.py [MIB] [--dir /dev/shm]

Prints the wall time from ``send_file`` to B's "delivered", the process's CPU (user and
system) and minor page faults over that time, and each thread's CPU. Both sides share
one core's worth of event loop here, so the rate is the pipeline's cost per byte, not
a transfer between two machines (bench/e2e.py measures that, with the disk).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # support.nodes: start, introduce, small_key

from support.nodes import introduce, small_key, start  # noqa: E402

from enclave.node.events import FileChanged  # noqa: E402
from enclave.node.settings import Settings  # noqa: E402

TAKE_ALL = Settings(file_auto_accept_bytes=1 << 40, file_disk_margin_bytes=0)


def thread_cpu() -> collections.Counter:
    """CPU seconds of each of this process's threads, by thread name (pool numbers off)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    per: collections.Counter = collections.Counter()
    for task in Path("/proc/self/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        name = names.get(int(task.name), "other").rstrip("_0123456789")
        per[name] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return per


async def run(mib: int, folder: str) -> None:
    work = tempfile.mkdtemp(dir=folder, prefix="enclave-pipeline-")
    try:
        source = Path(work) / "file.bin"
        with open(source, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
        ka, kb = small_key(), small_key()
        a = await start(Path(work) / "a", ka, TAKE_ALL)
        b = await start(Path(work) / "b", kb, TAKE_ALL)
        introduce(a, b, ka, kb)
        done = asyncio.Event()
        b.subscribe(lambda e: isinstance(e, FileChanged) and e.state != "transferring"
                    and e.state not in ("offered", "accepted") and done.set())  # fmt: skip
        cpu0, use0, t0 = thread_cpu(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        await a.send_file("bob", str(source))
        await done.wait()
        seconds = time.perf_counter() - t0
        use1, cpu1 = resource.getrusage(resource.RUSAGE_SELF), thread_cpu()
        print(f"{mib} MiB in {seconds:.2f} s: {mib / seconds:.0f} MiB/s")
        print(f"CPU user {use1.ru_utime - use0.ru_utime:.2f} s, system "
              f"{use1.ru_stime - use0.ru_stime:.2f} s, minor faults {use1.ru_minflt - use0.ru_minflt:,}")  # fmt: skip
        print("per thread (s):", {k: round(v - cpu0[k], 2) for k, v in cpu1.most_common()})
        await a.stop()
        await b.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mib", type=int, nargs="?", default=512)
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    args = parser.parse_args()
    import uvloop

    uvloop.run(run(args.mib, args.dir))


if __name__ == "__main__":
    main()
