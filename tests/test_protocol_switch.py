"""Switching a peer between v2 and legacy v1 (issue 14, item 6): no silent downgrade, and
no message lost by a switch, with real nodes on 127.0.0.1 in this process."""

import asyncio

import pytest
from support import seed_client
from support.nodes import Recorder, introduce, public_pem, start
from test_node_legacy import SeedReceiver, seed_send

from enclave.node import DowngradeRefused, Node, legacy_send
from enclave.node.settings import Settings

QUICK = Settings(reconnect_min=0.1, reconnect_max=1.0)


async def spoke_v2(a, b, ra, rb) -> None:
    """Alice and Bob exchange one v2 message, so each has seen the other speak v2."""
    await a.send("bob", "over v2")
    await ra.until(lambda r: r.states("delivered"))
    await rb.until(lambda r: r.received())
    assert a.resolve("bob").protocol == "v2" and b.resolve("alice").protocol == "v2"


def received(recorder) -> list[tuple[str, bool]]:
    return [(m.body, m.legacy) for m in recorder.received()]


def legacy_sent(recorder) -> list:
    return [e for e in recorder.states("sent") if e.reason == "legacy, unconfirmed"]


async def seed_texts(seed: SeedReceiver, count: int) -> list[str]:
    """What the original client read, once it read ``count`` messages (it may also see,
    and drop, v2 handshakes dialled before the switch)."""
    while len(seed.texts) < count:
        seed.got.clear()
        await asyncio.wait_for(seed.got.wait(), 20)
    return seed.texts


@pytest.mark.asyncio
async def test_a_peer_that_spoke_v2_is_not_marked_v1_without_force(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    try:
        introduce(a, b, ka, kb)
        await spoke_v2(a, b, Recorder(a), Recorder(b))
        with pytest.raises(DowngradeRefused, match="has spoken Enclave's own protocol"):
            a.set_protocol("bob", "v1")
        with pytest.raises(DowngradeRefused):  # re-adding it as v1 is the same downgrade
            a.add_peer(public_pem(kb), "10.9.9.9:1", "bob", "v1")
        peer = a.resolve("bob")
        assert (peer.proto, peer.protocol, peer.address) == (
            "auto",
            "v2",
            f"127.0.0.1:{b.address[1]}",
        )
        assert a.set_protocol("bob", "auto").protocol == "v2"  # no downgrade: always fine
        forced = a.set_protocol("bob", "v1", force=True)
        assert (forced.proto, forced.protocol, forced.v2_seen) == ("v1", "v1", False)
        assert a.set_protocol("bob", "v1").protocol == "v1"  # already v1: nothing to refuse
        a.set_protocol("bob", "v2")  # pinned by the user: the same rule
        with pytest.raises(DowngradeRefused, match="bob is marked v2"):
            a.set_protocol("bob", "v1")
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_queued_messages_follow_a_forced_switch_to_v1(rsa_keys, tmp_path):
    """Bob spoke v2, then went back to the original client. What waited for him in the
    outbox leaves as v1 once Alice forces it, and his v1 envelopes are accepted again."""
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka, QUICK), await start(tmp_path / "b", kb)
    ra = Recorder(a)
    introduce(a, b, ka, kb)
    await spoke_v2(a, b, ra, Recorder(b))
    port = b.address[1]
    await b.stop()
    seed = SeedReceiver(kb, ka.public_key())
    server = None
    try:
        await a.send("bob", "waited in the outbox")
        await ra.until(lambda r: r.states("queued")[1:])
        with pytest.raises(DowngradeRefused):
            a.set_protocol("bob", "v1")
        server = await asyncio.start_server(seed.handle, "127.0.0.1", port)
        a.set_protocol("bob", "v1", force=True)
        assert await seed_texts(seed, 1) == ["waited in the outbox"]
        await ra.until(legacy_sent)
        assert a.stats()["queued"] == 0
        # Bob's original client writes to Alice: accepted, shown as legacy.
        await seed_send(a.address[1], seed_client.seal(kb, ka.public_key(), "old client here"))
        await ra.until(lambda r: r.received())
        assert received(ra) == [("old client here", True)]
    finally:
        await a.stop()
        if server is not None:
            server.close()


@pytest.mark.asyncio
async def test_queued_messages_follow_a_switch_back_to_v2(rsa_keys, tmp_path):
    """Alice forced Bob to v1 by mistake while he was away; the v1 sender kept retrying
    her message. She switches him back: the message goes over v2 when he returns, never
    as a v1 envelope his node would drop (he has seen her speak v2)."""
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka, QUICK), await start(tmp_path / "b", kb)
    ra = Recorder(a)
    introduce(a, b, ka, kb)
    await spoke_v2(a, b, ra, Recorder(b))
    port = b.address[1]
    await b.stop()
    b = None
    try:
        a.set_protocol("bob", "v1", force=True)
        await a.send("bob", "sent while v1")
        await ra.until(lambda r: r.states("queued")[1:])
        a.set_protocol("bob", "auto")
        # Bob is back at his address, with his home: he remembers that Alice spoke v2.
        b = Node(tmp_path / "b", kb, QUICK)
        await b.start("127.0.0.1", port)
        rb = Recorder(b)
        await rb.until(lambda r: r.received())
        await ra.until(lambda r: len(r.states("delivered")) >= 2)
        assert received(rb) == [("sent while v1", False)]
        assert not legacy_sent(ra)
    finally:
        await a.stop()
        if b is not None:
            await b.stop()


class HeldWrite:
    """Stands in for the v1 sender's socket write: it waits until the test says how it
    ended, so a switch can land while an envelope is on the wire."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.outcome: asyncio.Future | None = None
        self.calls = 0

    async def __call__(self, address: str, envelope: bytes) -> bool:
        self.calls += 1
        self.outcome = asyncio.get_running_loop().create_future()
        self.started.set()
        return await self.outcome


@pytest.mark.asyncio
@pytest.mark.parametrize("written", [True, False], ids=["written", "failed"])
async def test_a_switch_during_a_v1_write_sends_that_message_once(
    rsa_keys, tmp_path, monkeypatch, written
):
    """The envelope on the wire when the user switches to v2 is settled by its write:
    written, it stays "sent (legacy)" and v2 never repeats it; failed, it goes back to
    the queue and leaves once over v2."""
    held = HeldWrite()
    monkeypatch.setattr(legacy_send, "_send", held)
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka, QUICK), await start(tmp_path / "b", kb)
    try:
        introduce(a, b, ka, kb)
        ra, rb = Recorder(a), Recorder(b)
        a.set_protocol("bob", "v1")  # never spoke v2: no force needed
        await a.send("bob", "on the wire")
        await asyncio.wait_for(held.started.wait(), 20)
        a.set_protocol("bob", "auto")
        await a.send("bob", "after the switch")
        await rb.until(lambda r: r.received())
        held.outcome.set_result(written)
        if written:
            await ra.until(legacy_sent)
            expected = [("after the switch", False)]
        else:
            await rb.until(lambda r: len(r.received()) >= 2)
            expected = [("after the switch", False), ("on the wire", False)]
        # (Bob shows a chat before its commit: Alice hears "delivered" once it is stored.)
        await ra.until(lambda r: len(r.states("delivered")) == (1 if written else 2))
        await a.delivery.flush()
        await b.delivery.flush()
        assert received(rb) == expected and held.calls == 1
        assert a.stats()["queued"] == 0
        states = {m.body: m.state for m in a.history("bob")}
        assert states == {
            "on the wire": "sent" if written else "delivered",
            "after the switch": "delivered",
        }
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_a_switch_back_to_v1_during_a_write_keeps_the_v1_sender_going(
    rsa_keys, tmp_path, monkeypatch
):
    held = HeldWrite()
    monkeypatch.setattr(legacy_send, "_send", held)
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a = await start(tmp_path / "a", ka, QUICK)
    try:
        a.add_peer(public_pem(kb), "127.0.0.1:9", "bob", "v1")
        ra = Recorder(a)
        await a.send("bob", "first")
        await a.send("bob", "second")
        await asyncio.wait_for(held.started.wait(), 20)
        a.set_protocol("bob", "auto")
        a.set_protocol("bob", "v1")  # changed their mind before the write ended
        held.started.clear()
        held.outcome.set_result(True)
        await asyncio.wait_for(held.started.wait(), 20)  # the v1 sender took the next one
        held.outcome.set_result(True)
        await ra.until(lambda r: len(legacy_sent(r)) == 2)
        assert held.calls == 2 and a.stats()["queued"] == 0
    finally:
        await a.stop()
