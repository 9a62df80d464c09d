"""Key rotation between two real nodes on 127.0.0.1 (enclave/node/key_handover.py).

Alice rotates while her node is down and comes back with the new key and the retired
one. Bob still knows only the old key: the session (whoever opens it) is under the old
key, carries the signed statement, Bob switches without a warning, and from then on
both write under the new key. Then what a hostile contact may try: a statement for
another's key, a bad signature, a replay, a fork, garbage."""

import time

import pytest
from support.nodes import FAST, NO_PRESENCE, Recorder, alice_and_bob, public_pem
from support.waiting import eventually

from enclave.errors import UserError
from enclave.node import Node
from enclave.node.events import KeyChanged, NodeProblem
from enclave.protocol import succession as sc
from enclave.protocol.crypto import Identity


def statement(old_key, new_key, seq=1) -> bytes:
    s = sc.sign_succession(Identity(old_key), Identity(new_key), seq, int(time.time() * 1000))
    return sc.encode_succession(s)


async def rotated(tmp_path, a: Node, old_key, new_key, settings=FAST, while_down=None) -> Node:
    """Alice's node, stopped and started again on the same port with ``new_key``
    (``while_down()`` is awaited in between)."""
    port = a.address[1]
    await a.stop()
    if while_down is not None:
        await while_down()
    again = Node(
        tmp_path / "a", new_key, settings, retired=[(1, old_key, statement(old_key, new_key))]
    )
    await again.start("127.0.0.1", port)
    return again


def fingerprints(node: Node) -> list[str]:
    return [p.fingerprint for p in node.contacts()]


def key_changes(rec: Recorder) -> list[KeyChanged]:
    return [e for e in rec.events if isinstance(e, KeyChanged)]


def problems(rec: Recorder) -> list[str]:
    return [e.text for e in rec.events if isinstance(e, NodeProblem)]


@pytest.mark.asyncio
@pytest.mark.parametrize("opener", ["alice", "bob"])
async def test_after_a_rotation_messages_flow_both_ways_and_bob_lists_only_the_new_key(
    rsa_keys, tmp_path, opener
):
    ka, kc = rsa_keys["alice"], rsa_keys["carol"]  # carol's key is Alice's new one
    async with alice_and_bob(tmp_path, rsa_keys, NO_PRESENCE, NO_PRESENCE) as (a, b):
        rb = Recorder(b)
        await a.send("bob", "before")
        await rb.until(lambda r: len(r.received()) == 1)
        old_fp = a.fingerprint

        async def queue_for_the_old_key():  # Bob writes while Alice is away
            await b.send("alice", "queued for the old key")

        a = await rotated(tmp_path, a, ka, kc, NO_PRESENCE, queue_for_the_old_key)
        try:
            ra = Recorder(a)
            assert a.fingerprint == Identity(kc).fingerprint.hex() != old_fp
            if opener == "alice":
                await a.send("bob", "after, from alice")
            else:
                await b.send("alice", "after, from bob")  # Bob dials the old key
            await rb.until(lambda r: key_changes(r), what="Bob applying the succession")
            [change] = key_changes(rb)
            assert (change.old, change.peer, change.name) == (old_fp, a.fingerprint, "alice")
            assert fingerprints(b) == [a.fingerprint]  # the old one only in the audit line
            assert b.key_history("alice")[0][1:3] == (old_fp, a.fingerprint)
            await a.send("bob", "under the new key")
            await b.send("alice", "to the new key")
            await rb.until(lambda r: "under the new key" in [m.body for m in r.received()])
            await ra.until(lambda r: "to the new key" in [m.body for m in r.received()])
            got = [m.body for m in ra.received()]
            assert got.count("queued for the old key") == 1  # re-sent under the new key
            await eventually(lambda: a.store.handover_pending(b.fingerprint) is None)
            # Every session now is under the new key, and nobody was warned.
            await eventually(
                lambda: all(
                    link.conn.identity.fingerprint.hex() == a.fingerprint
                    for link in a.sessions.links.values()
                    if link.conn is not None and link.conn.established
                )
            )
            assert problems(ra) == problems(rb) == []
            bodies = [m.body for m in b.history("alice")]
            assert bodies[0] == "before" and "under the new key" in bodies
        finally:
            await a.stop()


async def _rotated_pair(tmp_path, rsa_keys, a, b):
    rb = Recorder(b)
    a = await rotated(tmp_path, a, rsa_keys["alice"], rsa_keys["carol"])
    await a.send("bob", "hello")
    await rb.until(lambda r: key_changes(r) and r.received())
    return a, rb


def _inject(node: Node, peer_fp: str, data: bytes) -> None:
    link = node.sessions.pick(bytes.fromhex(peer_fp))
    link.conn.send_key_succession(data)
    link.schedule_flush()


@pytest.mark.asyncio
async def test_hostile_successions_are_refused_and_the_node_keeps_serving(rsa_keys, tmp_path):
    ka, kb, km = rsa_keys["alice"], rsa_keys["bob"], rsa_keys["mallory"]
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        rb = Recorder(b)
        await a.send("bob", "first")
        await rb.until(lambda r: r.received())
        contacts = fingerprints(b)

        def refused(n: int) -> bool:
            return b.sessions.successions.refused >= n

        # A statement handing over a key that is not the sender's: Alice names Bob's.
        _inject(a, b.fingerprint, statement(kb, km))
        await eventually(lambda: refused(1))
        # A forged statement: Alice's key "hands over" to Mallory's, signatures swapped.
        honest = sc.decode_succession(statement(ka, km))
        forged = sc.Succession(honest.old_fp, honest.new_fp, honest.new_key_pem, 1,
                               honest.time_ms, honest.sig_new, honest.sig_old)  # fmt: skip
        _inject(a, b.fingerprint, sc.encode_succession(forged))
        await eventually(lambda: refused(2))
        # Garbage, and a statement signed by a stranger's key (not Alice's).
        _inject(a, b.fingerprint, b"\x98garbage")
        _inject(a, b.fingerprint, statement(rsa_keys["carol"], km))
        await eventually(lambda: refused(4))
        assert fingerprints(b) == contacts and key_changes(rb) == []
        [told] = problems(rb)  # the bad signature is the one the user must hear of
        assert "not signed by their previous key" in told and "pair again" in told
        await a.send("bob", "still served")
        await rb.until(lambda r: "still served" in [m.body for m in r.received()])


@pytest.mark.asyncio
async def test_a_replayed_or_forking_statement_after_the_rotation_is_refused(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        a, rb = await _rotated_pair(tmp_path, rsa_keys, a, b)
        try:
            await eventually(lambda: a.store.handover_pending(b.fingerprint) is None)
            await a.send("bob", "on the new key")
            await rb.until(lambda r: "on the new key" in [m.body for m in r.received()])
            before = b.sessions.successions.refused
            _inject(a, b.fingerprint, statement(rsa_keys["alice"], rsa_keys["carol"]))
            _inject(a, b.fingerprint, statement(rsa_keys["alice"], rsa_keys["mallory"]))
            await eventually(lambda: b.sessions.successions.refused == before + 2)
            assert fingerprints(b) == [a.fingerprint] and len(key_changes(rb)) == 1
            [told] = problems(rb)  # the fork is told, the replay only logged
            assert "fork" in told
        finally:
            await a.stop()


def test_the_new_key_the_rotated_node_shows_is_its_public_key(rsa_keys, tmp_path):
    node = Node(
        tmp_path,
        rsa_keys["carol"],
        FAST,
        retired=[(1, rsa_keys["alice"], statement(rsa_keys["alice"], rsa_keys["carol"]))],
    )
    assert node.public_key_pem() == public_pem(rsa_keys["carol"])


@pytest.mark.asyncio
async def test_a_running_node_rotates_and_its_open_sessions_hand_the_key_over(rsa_keys, tmp_path):
    """``Node.rotate_key`` while sessions are open (presence keeps one to Bob): the files
    rotate, the node takes the new key over, Bob switches on the open session and
    messages go on both ways; a wrong password changes nothing."""
    from enclave.identity import home as homes
    from enclave.identity import keys

    place = homes.Home(tmp_path / "a")
    keys.save_identity(place, rsa_keys["alice"], "correct horse battery")
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        rb = Recorder(b)
        await a.send("bob", "before")
        await rb.until(lambda r: r.received())
        old_fp = a.fingerprint
        with pytest.raises(UserError):
            await a.rotate_key("wrong password", new_key=rsa_keys["carol"])
        assert a.fingerprint == old_fp and keys.read_public_identity(place).fingerprint == old_fp
        done = await a.rotate_key("correct horse battery", new_key=rsa_keys["carol"])
        assert (done.old_fp, done.new_fp, done.seq) == (old_fp, a.fingerprint, 1)
        assert keys.read_public_identity(place).fingerprint == a.fingerprint != old_fp
        assert (place.path / "revocation.cert").is_file()
        await rb.until(lambda r: key_changes(r), what="Bob switching on the open session")
        assert fingerprints(b) == [a.fingerprint]
        await b.send("alice", "to the new key")
        ra = Recorder(a)
        await ra.until(lambda r: "to the new key" in [m.body for m in r.received()])
        await a.send("bob", "from the new key")
        await rb.until(lambda r: "from the new key" in [m.body for m in r.received()])
        await eventually(lambda: a.store.handover_pending(b.fingerprint) is None)
        # Restarted with the files as they are now: the new key, the old one retired.
        unlocked = keys.load_identity(place, "correct horse battery")
        assert unlocked.fingerprint == a.fingerprint
        assert [(r.seq, Identity(r.private_key).fingerprint.hex()) for r in unlocked.retired] == [
            (1, old_fp)
        ]


async def _hand(port: int, payload: bytes) -> bytes:
    """One connection to a node's port: ``payload`` as the first frame; its answer."""
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(len(payload).to_bytes(4, "big") + payload)
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


@pytest.mark.asyncio
async def test_a_revocation_makes_the_contact_a_stranger_and_forgeries_change_nothing(
    rsa_keys, tmp_path
):
    from enclave.node.events import ContactChanged
    from enclave.node.key_rotation import send_revocation

    ka, km = rsa_keys["alice"], rsa_keys["mallory"]
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        rb = Recorder(b)
        await a.send("bob", "before")
        await rb.until(lambda r: r.received())
        port = b.address[1]
        received = sc.REVOKE_MAGIC + sc.RECEIVED
        honest = sc.sign_revocation(Identity(ka), 1000)
        forged = sc.Revocation(
            honest.fp, honest.key_pem, 1000, sc.sign_revocation(Identity(km), 1000).sig
        )
        stranger = sc.encode_revocation(sc.sign_revocation(Identity(rsa_keys["carol"]), 1000))
        # Every answer is the same "received": a prober learns nothing of the book.
        for bad in (sc.encode_revocation(forged), stranger):
            assert (await _hand(port, sc.REVOKE_MAGIC + bad))[4:] == received
        garbage = await _hand(port, sc.REVOKE_MAGIC + b"\x95garbage")
        assert garbage == b""  # not a certificate at all: closed unanswered
        assert b.sessions.revocations.refused == 3
        assert not b.resolve("alice").revoked and problems(rb) == []
        await a.send("bob", "still served")
        await rb.until(lambda r: "still served" in [m.body for m in r.received()])
        told = await send_revocation(tmp_path / "a" / "enclave.db", sc.encode_revocation(honest), 5)
        assert told.told == ["bob"] and told.unreachable == []
        await rb.until(
            lambda r: any(isinstance(e, ContactChanged) and e.change == "revoked" for e in r.events)
        )
        assert b.resolve("alice").revoked
        [told_user] = problems(rb)
        assert "alice revoked their key" in told_user and "pair again" in told_user
        with pytest.raises(UserError, match="revoked this key"):
            await b.send("alice", "to a revoked key")
        ops = b.identity.private_ops
        await a.send("bob", "from a revoked key")
        await eventually(lambda: b.stats()["closed"].get("unknown_peer", 0) >= 1)
        assert b.identity.private_ops == ops  # refused before any private-key work
        assert "from a revoked key" not in [m.body for m in rb.received()]
        replay = await _hand(port, sc.REVOKE_MAGIC + sc.encode_revocation(honest))
        assert replay[4:] == received and b.sessions.revocations.refused == 4


@pytest.mark.asyncio
async def test_a_lost_key_switched_costs_one_refused_dial(rsa_keys, tmp_path):
    """Bob applied the statement but his answer never reached Alice: her next dial shows
    the retired key, Bob refuses it as unknown, and the dial after shows the current
    one. The message gets through; nothing is sent twice."""
    async with alice_and_bob(tmp_path, rsa_keys, NO_PRESENCE, NO_PRESENCE) as (a, b):
        rb = Recorder(b)
        a = await rotated(tmp_path, a, rsa_keys["alice"], rsa_keys["carol"], NO_PRESENCE)
        try:
            await a.send("bob", "first")
            await rb.until(lambda r: key_changes(r) and r.received())
            bob = bytes.fromhex(b.fingerprint)
            await eventually(lambda: bob not in a.sessions.handover.pending)
            a.sessions.handover.pending[bob] = 1  # as if KEY_SWITCHED was lost
            a.sessions.drop_peer(bob)
            b.sessions.drop_peer(bytes.fromhex(a.fingerprint))
            await eventually(lambda: not a.sessions.online(bob))
            refused = b.stats()["closed"].get("unknown_peer", 0)
            await a.send("bob", "after a lost answer")
            await rb.until(lambda r: "after a lost answer" in [m.body for m in r.received()])
            assert b.stats()["closed"].get("unknown_peer", 0) == refused + 1
            assert [m.body for m in rb.received()].count("after a lost answer") == 1
            await eventually(lambda: bob not in a.sessions.handover.pending)
        finally:
            await a.stop()


@pytest.mark.asyncio
async def test_a_dial_whose_task_was_cancelled_leaves_the_pool_cleanly(rsa_keys, tmp_path):
    """A dial cancelled because another session came first leaves its ``established``
    future cancelled: closing that link must still take it out of the pool (a stale
    entry would carry messages and file requests into a closed socket)."""
    import asyncio

    from enclave.node.key_handover import Handover

    class Link:
        dialled = b"\x01" * 32
        conn = object()
        established = asyncio.get_running_loop().create_future()

    Link.established.cancel()
    handover = Handover(None, Identity(rsa_keys["alice"]), [], lambda e: None)
    handover.pending[Link.dialled] = 1
    handover.dial_ended(Link())  # no CancelledError, nothing decided
    assert Link.dialled not in handover._use_current


@pytest.mark.asyncio
async def test_a_session_closed_behind_the_event_being_handled_is_not_written_to(
    rsa_keys, tmp_path
):
    """The hand-over's race: Bob's KEY_SWITCHED and CLOSE arrive in one read, so Alice's
    session is closed while she handles KEY_SWITCHED, its ConnectionClosed queued behind
    it and the link still pooled; closing her other retired session then dispatches
    her queue. Here that moment is made directly: the session's connection is closed
    (as the CLOSE record closes it) and its events are held back while a message is
    sent. Nothing is written to the closed session; once its ConnectionClosed is
    handled, the message goes out on a new one, once."""
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        rb = Recorder(b)
        await a.send("bob", "first")
        await rb.until(lambda r: r.received())
        sessions, bob = a.sessions, bytes.fromhex(b.fingerprint)
        link = sessions.links[sessions.pool.connections(bob)[0]]
        held = link.conn.close(time.time(), "peer_close")
        assert link.conn.closed and link.id in sessions.pool.connections(bob)
        await a.send("bob", "second")  # durable; its dispatch met the closed link
        link.handle(held)  # the ConnectionClosed that was queued behind
        await rb.until(lambda r: [m.body for m in r.received()] == ["first", "second"])
        assert link.id not in sessions.pool.connections(bob)


@pytest.mark.asyncio
async def test_every_picker_passes_over_a_session_closed_behind_the_event_being_handled(
    rsa_keys, tmp_path
):
    """The same moment with more than one session to Bob: the pickers for messages,
    chats, file requests (also the session earlier requests were asked on, and the one
    file data took before) and hints take a session still up, never the closed one
    still pooled; with every session in that state they find none."""
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        rb = Recorder(b)
        s, bob = a.sessions, bytes.fromhex(b.fingerprint)
        if s.pool.count(bob) < 2:
            assert await s.dialer._dial_at(bob, s.policy.keys[bob], f"127.0.0.1:{b.address[1]}")
        await eventually(lambda: s.pool.count(bob) >= 2, what="two sessions pooled")
        ids = s.pool.connections(bob)
        closed = ids[0]  # the pool's own pick: the earliest of equally idle sessions
        s._bulk[bob] = closed
        held = {closed: s.links[closed].conn.close(time.time(), "peer_close")}
        assert s.pool.pick(bob) == closed and closed in s.pool.connections(bob)

        def up(link) -> bool:
            return link is not None and link.id != closed and link.conn.established

        assert up(s.pick(bob)) and up(s.pick_chat(bob))
        assert up(s.pick_bulk(bob)) and up(s.pick_bulk(bob, asked_on=closed))
        assert s.send_typing(bob, True)
        for conn_id in ids[1:]:
            held[conn_id] = s.links[conn_id].conn.close(time.time(), "peer_close")
        assert s.pick(bob) is None and s.pick_chat(bob) is None
        assert s.pick_bulk(bob) is None and s.pick_bulk(bob, asked_on=ids[-1]) is None
        assert not s.send_typing(bob, True)
        for conn_id, events in held.items():
            s.links[conn_id].handle(events)
        await a.send("bob", "after")
        await rb.until(lambda r: [m.body for m in r.received()] == ["after"])
