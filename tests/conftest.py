"""Shared fixtures: RSA-4096 test identities (cached between local runs).

This folder goes on ``sys.path`` first, so that every test module, ``tests/lab`` and
``tests/browser`` import the shared pieces as ``support.*`` (and the process harness
as ``procs``) under any import mode and from any invocation of pytest.
"""

import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
# The checks of the shared pieces report their operands as the tests' own asserts do.
pytest.register_assert_rewrite("support")

KEY_NAMES = ("alice", "bob", "carol", "mallory")


def _load_or_make(cache_dir, name: str) -> rsa.RSAPrivateKey:
    # Generating RSA-4096 costs ~1 s a key; the pytest cache keeps them between local
    # runs (CI starts clean and generates them once per session).
    path = cache_dir / f"{name}.der"
    if path.exists():
        return serialization.load_der_private_key(path.read_bytes(), None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(der)
    return key


@pytest.fixture(scope="session")
def rsa_keys(request, tmp_path_factory) -> dict[str, rsa.RSAPrivateKey]:
    """Four RSA-4096 private keys by name; treat them as read-only."""
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    if cache is not None:
        cache_dir = cache.mkdir("enclave-test-keys")
    else:
        cache_dir = tmp_path_factory.mktemp("enclave-test-keys")
    return {name: _load_or_make(cache_dir, name) for name in KEY_NAMES}


def pytest_asyncio_loop_factories(config, item):
    """Every async test runs on uvloop (what Enclave uses) and on plain asyncio."""
    import asyncio

    import uvloop

    return {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}
