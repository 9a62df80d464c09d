"""Microbenchmarks of key succession: what a contact spends on one statement.

Run: ``pytest bench/bench_succession.py --benchmark-only``. One timed call decodes and
judges one statement (two RSA-4096 public verifies and a canonical PEM check), or
decodes and judges one revocation certificate (one verify). A statement arrives once
per rotation per contact, so the figure matters only against a hostile contact who
sends many: each costs no private-key work and is refused before anything is stored.
"""

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from enclave.protocol.crypto import Identity
from enclave.protocol.succession import (
    Chain,
    decode_revocation,
    decode_succession,
    encode_revocation,
    encode_succession,
    judge,
    judge_revocation,
    sign_revocation,
    sign_succession,
)

T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def pair() -> tuple[Identity, Identity]:
    def make() -> Identity:
        return Identity(rsa.generate_private_key(public_exponent=65537, key_size=4096))

    return make(), make()


def test_judge_succession(benchmark, pair):
    old, new = pair
    data = encode_succession(sign_succession(old, new, 1, T0))
    chain = Chain(old.peer_key)
    benchmark.extra_info.update(unit="statement", ops=1)
    key = benchmark(lambda: judge(decode_succession(data), chain))
    assert key.fingerprint == new.fingerprint


def test_judge_revocation(benchmark, pair):
    old, _ = pair
    data = encode_revocation(sign_revocation(old, T0))
    chain = Chain(old.peer_key)
    benchmark.extra_info.update(unit="certificate", ops=1)
    benchmark(lambda: judge_revocation(decode_revocation(data), chain))
