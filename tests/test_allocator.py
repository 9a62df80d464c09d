"""The allocator tuning (enclave/node/allocator.py): with it, a stream of file-piece
sized buffers stops faulting pages in for every buffer. Each side runs in its own
process: the settings are process-wide and stay once made."""

import subprocess
import sys

import pytest

# Opening 512 MiB of 256 KiB pieces while a window of 32 is held, as a receiver does.
PIECES = """
import os, resource, sys
from enclave.node import allocator
tuned = allocator.tune() if sys.argv[1] == "tuned" else None
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
aead, nonce = AESGCM(os.urandom(32)), os.urandom(12)
sealed = aead.encrypt(nonce, os.urandom(256 * 1024 + 30), b"")
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
held = []
for _ in range(2048):
    held.append(memoryview(aead.decrypt(nonce, sealed, b""))[1:])
    if len(held) >= 32:
        del held[:4]
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", PIECES, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_tuned_pieces_stop_faulting_pages_in():
    state, tuned = faults("tuned")
    if state != "True":
        pytest.skip("not glibc: nothing to tune")
    _, default = faults("default")
    # By default pieces keep faulting pages in (about 16,000 faults here); tuned, only
    # the window's first use does (about 2,000).
    assert default > 5 * tuned, (default, tuned)


def test_tuning_twice_is_the_first_answer():
    from enclave.node import allocator

    assert allocator.tune() is allocator.tune()
