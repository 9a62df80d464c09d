"""What every role of bench/ref_worker.py shares: its output, its clock figures, keys.

A role reports by printing one JSON object per line (``emit``), read by the harness's
``Proc``; a role that serves runs until its stdin closes (``until_stdin_closes``).
"""

import asyncio
import json
import socket
import statistics
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization

BODY = "x" * 100  # a chat's body, as the node cases' (100 characters)


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def percentiles_us(values_ns: list[int]) -> dict:
    if not values_ns:
        return {}
    v = sorted(values_ns)

    def at(q: float) -> float:
        return v[min(len(v) - 1, int(q * len(v)))] / 1000

    return {
        "count": len(v),
        "p50_us": at(0.50),
        "p99_us": at(0.99),
        "p999_us": at(0.999),
        "max_us": v[-1] / 1000,
        "mean_us": statistics.fmean(v) / 1000,
    }


def nodelay(transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def until_stdin_closes() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def load_key(path: str):
    return serialization.load_pem_private_key(Path(path).read_bytes(), None)
