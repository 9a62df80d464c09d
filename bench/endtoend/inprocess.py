"""Two Enclave nodes in this process on 127.0.0.1, each the other's contact ("alice"
and "bob"): the in-process cases (rotation, receipts) start from here."""

from __future__ import annotations

from pathlib import Path


async def contacts(tmp: Path, a_key, b_key, tag: str, settings=None, clocks=(None, None)):
    """(alice, bob), started, in ``tmp/TAG-a`` and ``tmp/TAG-b``; the caller stops them.
    ``settings`` (a ``Settings``, both nodes; None: their defaults); ``clocks``: each
    node's clock (``enclave.node.clock.Clock``; None: the real one)."""
    from cryptography.hazmat.primitives import serialization

    from enclave.node import Node

    a = Node(tmp / f"{tag}-a", a_key, settings, clock=clocks[0])
    b = Node(tmp / f"{tag}-b", b_key, settings, clock=clocks[1])
    await a.start("127.0.0.1", 0)
    await b.start("127.0.0.1", 0)
    pem = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    a.add_peer(b_key.public_key().public_bytes(*pem).decode(), f"127.0.0.1:{b.address[1]}", "bob")
    b.add_peer(a_key.public_key().public_bytes(*pem).decode(), f"127.0.0.1:{a.address[1]}", "alice")
    return a, b
