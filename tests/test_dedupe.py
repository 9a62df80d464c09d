"""The receiver's dedupe rule at the node (docs/PROTOCOL.md "Messages"; docs/STORE.md).

A chat is a duplicate when its (peer, created_ms, id) was stored before. The in-memory
ring in front of the store keys on the same three, so the answer does not depend on
whether the ring still holds the key or the node was restarted: a resend is acked and
never shown twice; the same id with another created_ms is another message, shown once.
"""

import os
import time

import pytest
from support.attackers import RawPeer
from support.nodes import Recorder, public_pem, start

from enclave.protocol.events import Acked
from enclave.protocol.messages import Chat


async def session(node, key) -> RawPeer:
    peer = RawPeer(key, node, source="127.0.0.3")
    await peer.handshake()
    return peer


async def acked(peer: RawPeer, upto: int) -> None:
    await peer.until(lambda p: Acked(upto) in p.events, 20)


@pytest.mark.asyncio
async def test_the_same_id_with_another_time_is_another_message_before_and_after_a_restart(
    rsa_keys, tmp_path
):
    home, kb, kc = tmp_path / "b", rsa_keys["bob"], rsa_keys["carol"]
    bob = await start(home, kb)
    peers = []
    try:
        bob.add_peer(public_pem(kc), "127.0.0.1:9", "carol")
        shown = Recorder(bob)
        carol = await session(bob, kc)
        peers.append(carol)
        me, to = carol.fingerprint, bytes.fromhex(bob.fingerprint)
        mid, t1 = os.urandom(16), int(time.time() * 1000)
        first, second = Chat(mid, me, to, t1, "first"), Chat(mid, me, to, t1 + 1, "second")

        carol.send_chats([first])
        await acked(carol, 0)
        carol.send_chats([second])  # the same id, another created_ms: a new message
        await acked(carol, 1)
        carol.send_chats([first, second])  # resends: acked, not shown again
        await acked(carol, 3)
        await bob.delivery.flush()
        assert [(m.id, m.created_ms, m.body) for m in shown.received()] == [
            (mid, t1, "first"),
            (mid, t1 + 1, "second"),
        ]
        await carol.close()
        await bob.stop()

        bob = await start(home, kb)  # an empty ring: the store alone decides, the same way
        shown = Recorder(bob)
        carol = await session(bob, kc)
        peers.append(carol)
        carol.send_chats([second, first, Chat(mid, me, to, t1 + 2, "third")])
        await acked(carol, 2)
        await bob.delivery.flush()
        assert [m.body for m in shown.received()] == ["third"]
        assert [(m.created_ms, m.body) for m in bob.history("carol")] == [
            (t1, "first"),
            (t1 + 1, "second"),
            (t1 + 2, "third"),
        ]
    finally:
        for peer in peers:
            await peer.close()
        await bob.stop()
