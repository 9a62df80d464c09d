"""Helpers for tests that run real nodes on 127.0.0.1 inside the test process."""

import asyncio

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from enclave.node import Node
from enclave.node_events import DeliveryChanged, MessageReceived
from enclave.settings import Settings

FAST = Settings()


def public_pem(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def small_key():
    """RSA-2048: the smallest key Enclave accepts from a peer; cheap for many-node tests."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Recorder:
    """Collects a node's events and lets a test await a condition on them."""

    def __init__(self, node: Node) -> None:
        self.events: list = []
        self._changed = asyncio.Event()
        node.subscribe(self._on)

    def _on(self, event) -> None:
        self.events.append(event)
        self._changed.set()

    async def until(self, predicate, timeout: float = 20.0):
        async def wait():
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)

    def received(self) -> list[MessageReceived]:
        return [e for e in self.events if isinstance(e, MessageReceived)]

    def states(self, state: str) -> list[DeliveryChanged]:
        return [e for e in self.events if isinstance(e, DeliveryChanged) and e.state == state]


async def start(home, key, settings=FAST) -> Node:
    node = Node(home, key, settings)
    await node.start("127.0.0.1", 0)
    return node


def introduce(a: Node, b: Node, a_key, b_key, *, names=("alice", "bob")) -> None:
    a.add_peer(public_pem(b_key), f"127.0.0.1:{b.address[1]}", names[1])
    b.add_peer(public_pem(a_key), f"127.0.0.1:{a.address[1]}", names[0])
