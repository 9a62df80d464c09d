"""Microbenchmarks of file transfer's digests: SHA-256 (OpenSSL) against BLAKE3 on
1 MiB chunks, the default chunk size (docs/PROTOCOL.md, "Digest choice").

Run: ``pytest bench/bench_files.py --benchmark-only``; one timed call digests one
1 MiB chunk, so the median in milliseconds is ms per MiB.
"""

import hashlib
import os

import blake3
import pytest

from enclave.protocol import files
from enclave.protocol.file_messages import BLAKE3, SHA256

CHUNK = os.urandom(1 << 20)


@pytest.mark.parametrize(
    "name,fn",
    [
        ("sha256", lambda data: hashlib.sha256(data).digest()),
        ("blake3", lambda data: blake3.blake3(data).digest()),  # one thread, the default
        ("blake2b-256", lambda data: hashlib.blake2b(data, digest_size=32).digest()),
    ],
)
def test_digest_1mib(benchmark, name, fn):
    benchmark.extra_info["ops"] = 1
    benchmark.extra_info["unit"] = f"{name} of one 1 MiB chunk"
    benchmark(fn, CHUNK)


@pytest.mark.parametrize("algorithm", [SHA256, BLAKE3])
def test_offer_for_8mib(benchmark, algorithm):
    data = CHUNK * 8
    benchmark.extra_info["ops"] = 8
    benchmark.extra_info["unit"] = "make_offer of 8 MiB (8 chunk digests and the whole file's)"
    benchmark(files.make_offer, bytes(16), "f", data, algorithm=algorithm)
