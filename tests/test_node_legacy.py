"""Legacy v1 at the node (PROTOCOL.md d; rows F9 and F10, node parts)."""

import asyncio
import time

import pytest
from support import seed_client
from support.nodes import Recorder, introduce, public_pem, start
from support.waiting import eventually

from enclave.identity import keys
from enclave.node.events import MessageReceived


async def seed_send(port: int, payload: bytes, *, reset: bool = False) -> None:
    """What the original client's plain send does: connect, write one framed envelope
    and close at once, reading nothing (``reset``: end with a RST instead of a FIN)."""
    await asyncio.to_thread(seed_client.send, "127.0.0.1", port, payload, reset=reset)


class SeedReceiver:
    """A receiver that implements only the original client's layout."""

    def __init__(self, private_key, sender_public) -> None:
        self.key, self.sender = private_key, sender_public
        self.texts: list[str] = []
        self.first_bytes: list[bytes] = []
        self.got = asyncio.Event()

    async def handle(self, reader, writer) -> None:
        try:
            head = await reader.readexactly(4)
            payload = await reader.readexactly(int.from_bytes(head, "big"))
            self.first_bytes.append(payload[:4])
            self.texts.append(seed_client.read(self.key, self.sender, payload, time.time()))
            self.got.set()
        except (asyncio.IncompleteReadError, seed_client.SeedReject, ConnectionError):
            self.first_bytes.append(b"?")
            self.got.set()
        finally:
            writer.close()


@pytest.mark.asyncio
async def test_seed_envelope_is_accepted_and_shown_as_legacy(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    b = await start(tmp_path / "b", kb)
    try:
        b.add_peer(public_pem(ka), "127.0.0.1:9", "alice")
        rb = Recorder(b)
        envelope = seed_client.seal(ka, kb.public_key(), "hello from the seed")
        await seed_send(b.address[1], envelope)
        await rb.until(lambda r: r.received())
        [msg] = rb.received()
        assert (msg.body, msg.legacy) == ("hello from the seed", True)
        [stored] = b.history("alice")
        assert stored.legacy and stored.body == "hello from the seed"
        # The same envelope again (a replay) is refused and not shown twice.
        await seed_send(b.address[1], envelope)
        await b.delivery.flush()
        assert len(rb.received()) == 1 and len(b.history("alice")) == 1
    finally:
        await b.stop()


@pytest.mark.asyncio
async def test_v1_send_to_a_peer_marked_v1_is_read_by_a_seed_receiver(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    seed = SeedReceiver(kb, ka.public_key())
    server = await asyncio.start_server(seed.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    a = await start(tmp_path / "a", ka)
    try:
        a.add_peer(public_pem(kb), f"127.0.0.1:{port}", "bob")
        a.set_protocol("bob", "v1")
        ra = Recorder(a)
        await a.send("bob", "hi seed")
        await asyncio.wait_for(seed.got.wait(), 20)
        assert seed.texts == ["hi seed"]
        await ra.until(lambda r: any(e.reason == "legacy, unconfirmed" for e in r.states("sent")))
        [row] = a.history("bob")
        assert (row.state, row.legacy, row.reason) == ("sent", True, "legacy, unconfirmed")
        assert not ra.states("delivered")
    finally:
        await a.stop()
        server.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "answer",
    [None, b"ENC2\x7f\x01\x00\x00", b"ENC2\x7f\x03\x00\x00"],
    ids=["reset", "alert-generic", "alert-busy"],
)
async def test_v2_capable_peer_is_never_sent_v1(rsa_keys, tmp_path, answer):
    """The peer answers every handshake with a reset or an ALERT: Enclave keeps
    trying v2 and the message stays queued; no v1 envelope is ever written."""
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    seen: list[bytes] = []
    attempts = asyncio.Event()

    async def refuse(reader, writer):
        seen.append(await reader.read(4 + 4))
        if len(seen) >= 2:  # a retry happened too: still v2
            attempts.set()
        if answer is not None:
            writer.write(seed_client.frame(answer))
            await writer.drain()
            writer.close()
        else:
            writer.transport.abort()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    a = await start(tmp_path / "a", ka)
    try:
        a.add_peer(public_pem(kb), f"127.0.0.1:{port}", "bob")
        await a.send("bob", "only over v2")
        await asyncio.wait_for(attempts.wait(), 20)
        assert all(chunk[4:8] == b"ENC2" for chunk in seen), seen
        assert [m.state for m in a.history("bob")] in (["queued"], ["sent"])
        assert a.stats()["queued"] == 1
    finally:
        await a.stop()
        server.close()


@pytest.mark.asyncio
async def test_after_a_v2_session_v1_from_that_peer_is_refused(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    try:
        introduce(a, b, ka, kb)
        ra, rb = Recorder(a), Recorder(b)
        await a.send("bob", "v2 first")
        await ra.until(lambda r: r.states("delivered"))
        envelope = seed_client.seal(ka, kb.public_key(), "a v1 afterwards")
        await seed_send(b.address[1], envelope)
        await b.delivery.flush()
        assert [m.body for m in rb.received()] == ["v2 first"]
        assert not any(isinstance(e, MessageReceived) and e.legacy for e in rb.events)
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_seed_envelope_over_the_storage_quota_is_not_stored(rsa_keys, tmp_path):
    """A legacy contact counts toward the same stored-bytes quota (read from the store
    at its first envelope): one over it is not stored, and its connection is closed (the
    original client reads no reply to be told anything). The user is told once."""
    from enclave.identity.home import Home, prepare
    from enclave.node.events import NodeProblem
    from enclave.node.settings import Settings
    from enclave.store import Store

    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    alice_fp = keys.fingerprint(ka.public_key())
    with Store.open(prepare(Home(tmp_path / "b")).db_path) as store:  # 1,040,000 bytes kept
        store.upsert_peer(alice_fp, public_pem(ka), "127.0.0.1:9", "alice", 1.0)
        rows = [(alice_fp, k.to_bytes(16, "big"), "x" * 9_936, k, k, True) for k in range(104)]
        store.store_incoming(rows)
    b = await start(tmp_path / "b", kb, Settings(stored_bytes_per_peer=1 << 20))
    try:
        rb = Recorder(b)
        small = seed_client.seal(ka, kb.public_key(), "fits")  # 4 + 64 bytes: fits
        await seed_send(b.address[1], small)
        await rb.until(lambda r: r.received())
        big = seed_client.seal(ka, kb.public_key(), "y" * 9_000)
        await seed_send(b.address[1], big)
        await rb.until(lambda r: any(isinstance(e, NodeProblem) for e in r.events))
        await b.delivery.flush()
        assert [m.body for m in rb.received()] == ["fits"]
        assert len(b.history("alice", 1000)) == 105
        assert b.stats()["refused_legacy"] == 1
    finally:
        await b.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("reset", [False, True], ids=["fin", "reset"])
async def test_plain_sends_closed_at_once_are_all_shown(rsa_keys, tmp_path, reset):
    """The original client closes (or resets) right after its last byte, while the node
    is still checking the envelope: every one is still verified, stored and shown."""
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    b = await start(tmp_path / "b", kb)
    try:
        b.add_peer(public_pem(ka), "127.0.0.1:9", "alice")
        rb = Recorder(b)
        texts = [f"plain {i}" for i in range(10)]
        for text in texts:
            await seed_send(b.address[1], seed_client.seal(ka, kb.public_key(), text), reset=reset)
        await rb.until(lambda r: len(r.received()) == len(texts))
        assert sorted(m.body for m in rb.received()) == sorted(texts)
        assert len(b.history("alice")) == len(texts)
    finally:
        await b.stop()


@pytest.mark.asyncio
async def test_pooled_sends_on_one_socket_are_all_shown_in_order(rsa_keys, tmp_path):
    """The original client's pooling: envelopes back to back on one socket that it
    never reads from; none may be refused, and they are shown in the order sent."""
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    b = await start(tmp_path / "b", kb)
    try:
        b.add_peer(public_pem(ka), "127.0.0.1:9", "alice")
        rb = Recorder(b)
        texts = [f"pooled {i}" for i in range(10)]
        envelopes = [seed_client.seal(ka, kb.public_key(), t) for t in texts]
        pool = seed_client.PooledSender("127.0.0.1", b.address[1], sockets=1)
        try:
            for env in envelopes:
                await asyncio.to_thread(pool.send, env)
            await rb.until(lambda r: len(r.received()) == len(texts))
        finally:
            pool.close()
        assert [m.body for m in rb.received()] == texts
        assert [m.body for m in b.history("alice")] == texts
    finally:
        await b.stop()


@pytest.mark.asyncio
async def test_every_dropped_envelope_is_logged_with_its_reason(rsa_keys, tmp_path, caplog):
    """The original client never hears why: the node says it, one warning line each
    (here: an envelope cut short by the end of its stream, and a replay)."""
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    b = await start(tmp_path / "b", kb)
    try:
        b.add_peer(public_pem(ka), "127.0.0.1:9", "alice")
        rb = Recorder(b)
        envelope = seed_client.seal(ka, kb.public_key(), "once")
        cut = seed_client.frame(envelope)[:-10]
        with caplog.at_level("WARNING", logger="enclave.node.sessions"):
            reader, writer = await asyncio.open_connection("127.0.0.1", b.address[1])
            writer.write(cut)  # then the end of the stream: 10 bytes short
            await writer.drain()
            writer.close()
            await seed_send(b.address[1], envelope)
            await rb.until(lambda r: r.received())
            await seed_send(b.address[1], envelope)  # the same bytes again: a replay

            def dropped():
                return [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]

            await eventually(lambda: len(dropped()) == 2, 10, "two warnings")  # no event
        lines = dropped()
        assert len(lines) == 2, lines
        assert "truncated" in lines[0] and "v1_replay" in lines[1]
        assert [m.body for m in rb.received()] == ["once"]
    finally:
        await b.stop()
