"""Receive quotas on real nodes over loopback (PROTOCOL.md, "Receive quotas and THROTTLE").

A hostile authenticated contact (Mallory, driving Enclave's own Connection over a raw
socket from 127.0.0.2, ignoring what it is told) floods Bob's node past its message rate
and fills its stored-bytes quota, while Alice, an honest contact, keeps chatting
(``Chatter``: each of her messages must arrive exactly once and be acked). Mallory must
be throttled and told why, nothing of hers beyond her quota may be stored or acked, and
what waited must pass exactly once when the quota allows it. Then two real nodes: a
sender that is throttled shows it as a node event and delivers everything exactly once
after the window.
"""

import collections

import pytest
from support.attackers import Chatter, RawPeer
from support.nodes import Recorder, alice_and_bob, introduce, public_pem, start

import enclave.node.quotas as quotas_module
from enclave.node.events import MessageReceived, NodeProblem, Throttled
from enclave.node.settings import Settings
from enclave.protocol.events import Acked
from enclave.protocol.events import Throttled as WireThrottled
from enclave.protocol.messages import THROTTLE_RATE, THROTTLE_STORAGE, Chat

# Bob takes 100 chats a second from one contact after a burst of one full batch.
SLOW_BOB = Settings(receive_rate_per_peer=100.0, receive_burst_per_peer=1024.0)
# Bob keeps 1 MiB of one contact's messages: 104 chats of 10,000 characters (+64 each).
SMALL_BOB = Settings(stored_bytes_per_peer=1 << 20)
BIG = "m" * 9_990  # with its " k" suffix, under the 10,000-character limit


def mallory_chats(mallory: RawPeer, bob, first: int, n: int, body: str = "flood") -> list:
    to = bytes.fromhex(bob.fingerprint)
    return [
        Chat(k.to_bytes(16, "big"), mallory.fingerprint, to, 1_000 + k, f"{body} {k}")
        for k in range(first, first + n)
    ]


def acked_upto(peer: RawPeer) -> int:
    return max((e.upto for e in peer.events if type(e) is Acked), default=-1)


def told(peer: RawPeer) -> list:
    return [e for e in peer.events if type(e) is WireThrottled]


def stored_from(node, fingerprint: bytes) -> collections.Counter:
    """How often each message id of this sender is in the node's store."""
    history = node.store.history(fingerprint.hex(), 10**6)
    return collections.Counter(m.id for m in history if m.direction == "in")


def link_of(node, fingerprint: bytes):
    (link,) = [
        link
        for link in node.sessions.links.values()
        if link.conn is not None and link.conn.peer == fingerprint and link.conn.established
    ]
    return link


@pytest.mark.asyncio
async def test_a_flooding_contact_is_throttled_told_why_and_loses_nothing(tmp_path, rsa_keys):
    """Mallory sends 1,024 chats (her whole burst), then 3 x 100 more at once. Bob takes
    the first batch (stored, acked), tells her THROTTLE rate with the time the next one
    needs, acks nothing beyond it and stops reading her link, while Alice's messages keep
    arriving. As the bucket refills, each waiting batch passes in order: in the end every
    one of Mallory's chats is stored and acked once, on the same session."""
    async with alice_and_bob(tmp_path, rsa_keys, SLOW_BOB) as (a, b):
        b.add_peer(public_pem(rsa_keys["mallory"]), None, "mallory")
        chatter = Chatter(a, b, "bob")
        await chatter.start()
        mallory = RawPeer(rsa_keys["mallory"], b, source="127.0.0.2")
        await mallory.handshake()
        mallory_link = link_of(b, mallory.fingerprint)
        # Which of Alice's messages Bob showed while Mallory's batches were held.
        during_hold = []
        alice = a.fingerprint

        def note(event) -> None:
            if isinstance(event, MessageReceived) and event.peer == alice:
                during_hold.append(b.delivery.intake.holding(mallory_link))

        b.subscribe(note)
        sent = mallory_chats(mallory, b, 0, 1024)
        mallory.send_chats(sent)
        for k in range(3):
            more = mallory_chats(mallory, b, 1024 + 100 * k, 100)
            mallory.send_chats(more)
            sent += more

        await mallory.until(lambda p: told(p) and acked_upto(p) >= 1023)
        first = told(mallory)[0]
        assert first.reason == THROTTLE_RATE
        assert 500 <= first.retry_after_ms <= 1100  # 100 chats at 100/s, from a near-empty bucket
        # Beyond the quota: nothing stored, nothing acked; her link is not read.
        assert acked_upto(mallory) == 1023
        assert sum(stored_from(b, mallory.fingerprint).values()) == 1024
        assert b.delivery.intake.holding(mallory_link) and not mallory_link.reading
        # Alice is not held up behind her.
        await chatter.roundtrip()
        await chatter.roundtrip()
        assert any(during_hold), "no honest message arrived while Mallory was held"

        await mallory.until(lambda p: acked_upto(p) == len(sent) - 1, timeout=30)
        stored = stored_from(b, mallory.fingerprint)
        assert stored == collections.Counter(c.id for c in sent)  # each once
        shown = [
            e.id for e in chatter.at_receiver.received() if e.peer == mallory.fingerprint.hex()
        ]
        assert shown == [c.id for c in sent]  # in order, none twice
        assert mallory.conn.established and mallory_link.reading  # held, never dropped
        assert len(told(mallory)) >= 3 and b.stats()["throttled"] >= 3
        await chatter.finish()
        await mallory.close()


@pytest.mark.asyncio
async def test_a_contact_that_fills_its_storage_quota_is_told_and_refused(tmp_path, rsa_keys):
    """Mallory sends 6 batches of 20 chats of about 10,000 characters; Bob keeps at most
    1 MiB of hers. The first 5 (about 1,005,700 bytes) are stored and acked; the 6th would
    pass the quota: Bob tells her THROTTLE storage, closes the session, stores and acks nothing
    more, and tells his user once. Alice chats on. After a restart the quota still holds
    (the count comes back from the store); with a larger quota her queue passes."""
    async with alice_and_bob(tmp_path, rsa_keys, SMALL_BOB) as (a, b):
        b.add_peer(public_pem(rsa_keys["mallory"]), None, "mallory")
        problems = Recorder(b)
        chatter = Chatter(a, b, "bob")
        await chatter.start()
        mallory = RawPeer(rsa_keys["mallory"], b, source="127.0.0.2")
        await mallory.handshake()
        sent = []
        for k in range(6):
            batch = mallory_chats(mallory, b, 20 * k, 20, BIG)
            mallory.send_chats(batch)
            sent += batch
        await mallory.until(lambda p: p.eof.is_set(), timeout=20)
        assert [(e.reason, e.retry_after_ms) for e in told(mallory)] == [
            (THROTTLE_STORAGE, 300_000)
        ]
        assert mallory.conn.close_reason == "peer_closed"
        assert acked_upto(mallory) == 99
        assert stored_from(b, mallory.fingerprint) == collections.Counter(c.id for c in sent[:100])
        assert b.stats()["closed"].get("throttled") == 1
        notes = [e.text for e in problems.events if isinstance(e, NodeProblem)]
        assert len(notes) == 1 and "storage quota" in notes[0], notes
        await chatter.finish()
        await mallory.close()

        # A new session from Mallory is refused too: the quota is the store's count.
        again = RawPeer(rsa_keys["mallory"], b, source="127.0.0.2")
        await again.handshake()
        again.send_chats(mallory_chats(again, b, 100, 5, BIG))
        await again.until(lambda p: p.eof.is_set())
        assert [e.reason for e in told(again)] == [THROTTLE_STORAGE] and acked_upto(again) == -1
        await again.close()
    assert sum(stored_from_home(tmp_path / "b", mallory.fingerprint).values()) == 100

    # After a restart the count is read back from the store before her first batch.
    kb = rsa_keys["bob"]
    b = await start(tmp_path / "b", kb, SMALL_BOB)
    try:
        third = RawPeer(rsa_keys["mallory"], b, source="127.0.0.2")
        await third.handshake()
        third.send_chats(mallory_chats(third, b, 100, 5, BIG))
        await third.until(lambda p: p.eof.is_set())
        assert [e.reason for e in told(third)] == [THROTTLE_STORAGE] and acked_upto(third) == -1
        await third.close()
    finally:
        await b.stop()
    b = await start(tmp_path / "b", kb, Settings(stored_bytes_per_peer=2 << 20))
    try:
        fourth = RawPeer(rsa_keys["mallory"], b, source="127.0.0.2")
        await fourth.handshake()
        rest = sent[100:]
        fourth.send_chats(mallory_chats(fourth, b, 100, 20, BIG))
        await fourth.until(lambda p: acked_upto(p) == 19)
        assert not told(fourth)
        assert stored_from(b, fourth.fingerprint) == collections.Counter(
            c.id for c in sent[:100] + rest
        )
        await fourth.close()
    finally:
        await b.stop()


def stored_from_home(home, fingerprint: bytes) -> collections.Counter:
    from enclave.identity.home import Home
    from enclave.store import Store

    with Store.open(Home(home).db_path) as store:
        history = store.history(fingerprint.hex(), 10**6)
    return collections.Counter(m.id for m in history if m.direction == "in")


@pytest.mark.asyncio
async def test_a_throttled_node_shows_why_and_delivers_everything_once(tmp_path, rsa_keys):
    """Alice's node queues 3,000 messages for Bob's, which takes 1,000 a second after a
    burst of 1,024. Alice's node publishes Throttled (bob, rate, the wait) for its faces
    and holds back; every message arrives exactly once, in order, and is delivered."""
    bob = Settings(receive_rate_per_peer=1000.0, receive_burst_per_peer=1024.0)
    async with alice_and_bob(tmp_path, rsa_keys, bob) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        bodies = [f"bulk {k}" for k in range(3000)]
        await a.submit_many(bytes.fromhex(b.fingerprint), bodies)
        await ra.until(lambda r: any(isinstance(e, Throttled) for e in r.events), timeout=10)
        (first, *_) = [e for e in ra.events if isinstance(e, Throttled)]
        assert first.peer == b.fingerprint and first.reason == "rate"
        assert 0 < first.retry_after <= 1.1
        assert bytes.fromhex(b.fingerprint) in a.delivery.throttles  # nothing new goes out
        await ra.until(lambda r: len(r.states("delivered")) == 3000, timeout=30)
        assert [m.body for m in rb.received()] == bodies
        assert b.stats()["dupes"] == 0 and a.stats()["queued"] == 0
        assert {m.state for m in a.history("bob", 5000)} == {"delivered"}
        assert b.stats()["throttled"] >= 1


@pytest.mark.asyncio
async def test_a_node_throttled_for_storage_waits_and_then_delivers(
    tmp_path, rsa_keys, monkeypatch
):
    """Bob's node keeps 1 MiB of Alice's messages; she sends 150 of 10,000 characters.
    Bob stores what fits, tells her THROTTLE storage and closes; her node shows it and
    keeps the rest queued (neither delivered nor failed), dialling no one until the
    wait is over. Bob restarts with a larger quota: the rest arrives exactly once."""
    monkeypatch.setattr(quotas_module, "STORAGE_RETRY", 3.0)
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    fast = Settings(reconnect_min=0.1, reconnect_max=0.5)
    a = await start(tmp_path / "a", ka, fast)
    b = await start(tmp_path / "b", kb, SMALL_BOB)
    try:
        introduce(a, b, ka, kb)
        ra = Recorder(a)
        bodies = [f"{k:03d} " + "s" * 9_996 for k in range(150)]
        await a.submit_many(bytes.fromhex(b.fingerprint), bodies)
        await ra.until(lambda r: any(isinstance(e, Throttled) for e in r.events))
        throttled = next(e for e in ra.events if isinstance(e, Throttled))
        assert (throttled.peer, throttled.reason, throttled.retry_after) == (
            b.fingerprint,
            "storage",
            3.0,
        )
        bob_fp = bytes.fromhex(b.fingerprint)
        await ra.until(lambda r: not a.sessions.online(bob_fp))
        # The session is gone and messages wait, yet Alice's node does not dial Bob again
        # before the wait is over.
        assert bob_fp in a.delivery.throttles and bob_fp not in a.sessions.dialing
        # What Bob stored he acked before he closed: exactly that is delivered at Alice.
        delivered = sum(stored_from(b, a.identity.fingerprint).values())
        assert 0 < delivered < 150
        await ra.until(lambda r: len(r.states("delivered")) == delivered)
        assert a.stats()["queued"] == 150 - delivered and not ra.states("failed")
        await b.stop()
        b = await start(tmp_path / "b", kb, Settings(stored_bytes_per_peer=4 << 20))
        a.add_peer(public_pem(kb), f"127.0.0.1:{b.address[1]}", "bob")
        rb = Recorder(b)
        await ra.until(lambda r: len(r.states("delivered")) == 150, timeout=30)
        shown = [m.body for m in rb.received()]
        assert shown == bodies[delivered:]  # the rest, once each, in order
        assert b.stats()["dupes"] == 0
    finally:
        await a.stop()
        await b.stop()
