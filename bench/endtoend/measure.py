"""Turning samples into figures: percentiles, CPU shares, a process's CPU and memory.

Times are seconds in, microseconds out. CPU and memory are read from /proc (Linux), of
a worker process by its pid, so that the reading costs the measured process nothing.
"""

from __future__ import annotations

import os
from pathlib import Path


def percentiles_us(values: list[float]) -> dict:
    v = sorted(values)

    def at(q: float) -> float:
        return v[min(len(v) - 1, int(q * len(v)))] * 1e6

    return {
        "count": len(v),
        "p50_us": at(0.50),
        "p99_us": at(0.99),
        "p999_us": at(0.999),
        "max_us": v[-1] * 1e6,
    }


def cpu_delta(before: dict, after: dict, seconds: float) -> dict:
    """Share of one core each thread used over ``seconds`` (threads under 0.5% left out)."""
    return {
        name: round((after[name] - before.get(name, 0.0)) / seconds, 3)
        for name in sorted(after)
        if after[name] - before.get(name, 0.0) > 0.005 * seconds
    }


def machine_cpu() -> tuple[int, int]:
    """(busy, all) clock ticks of every CPU of the machine so far (/proc/stat): what
    every process used, this run's and anyone else's (steal counts as busy)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks) - idle, sum(ticks)


def machine_busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Cores busy on average between two ``machine_cpu`` readings."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return round((os.cpu_count() or 1) * busy / total, 3) if total else 0.0


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a whole process so far (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
