"""Real nodes on 127.0.0.1 inside the test process, and a recorder of their events."""

import contextlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from enclave.node import Node
from enclave.node.events import DeliveryChanged, MessageReceived
from enclave.node.settings import Settings
from support.waiting import Watched

FAST = Settings()
# For tests that count handshakes, private operations or connections from the first
# message on, or that want no session between two nodes until one sends: without
# presence a node dials a peer only when something waits for it.
NO_PRESENCE = Settings(presence=False)


def public_pem(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def small_key():
    """RSA-2048: the smallest key Enclave accepts from a peer; cheap for many-node tests."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Recorder(Watched):
    """Collects a node's events; ``until(predicate)`` waits for a condition on them."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.events: list = []
        node.subscribe(self._on)

    def _on(self, event) -> None:
        self.events.append(event)
        self.changed()

    def received(self) -> list[MessageReceived]:
        return [e for e in self.events if isinstance(e, MessageReceived)]

    def states(self, state: str) -> list[DeliveryChanged]:
        return [e for e in self.events if isinstance(e, DeliveryChanged) and e.state == state]


async def start(home, key, settings=FAST, clock=None) -> Node:
    node = Node(home, key, settings, clock=clock)
    await node.start("127.0.0.1", 0)
    return node


def introduce(a: Node, b: Node, a_key, b_key, *, names=("alice", "bob")) -> None:
    a.add_peer(public_pem(b_key), f"127.0.0.1:{b.address[1]}", names[1])
    b.add_peer(public_pem(a_key), f"127.0.0.1:{a.address[1]}", names[0])


@contextlib.asynccontextmanager
async def alice_and_bob(tmp_path, rsa_keys, bob_settings=FAST, alice_settings=FAST):
    """Alice and Bob running and introduced to each other; both stopped afterwards."""
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a = await start(tmp_path / "a", ka, alice_settings)
    b = await start(tmp_path / "b", kb, bob_settings)
    try:
        introduce(a, b, ka, kb)
        yield a, b
    finally:
        await a.stop()
        await b.stop()
