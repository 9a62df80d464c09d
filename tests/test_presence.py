"""Presence: a node keeps a session to every contact, so "online" is right without a
message: at start, when a contact is added, when one stops and starts again. Down
contacts are dialled with growing pauses; blocked and v1 contacts are never dialled."""

import asyncio
import dataclasses
import time

import pytest
from support.nodes import FAST, NO_PRESENCE, Recorder, introduce, public_pem, start
from support.ports import listen_port as _free_port  # below the ephemeral range
from support.waiting import eventually

from enclave.node import Node
from enclave.node.events import PeerOffline, PeerOnline, Retrying

SEEN_WITHIN = 2.0  # seconds: a contact that starts or stops is shown so by then


def _presence(recorder: Recorder, fp: str) -> list[bool]:
    """The presence events about ``fp``, as True (online) and False (offline)."""
    return [
        isinstance(e, PeerOnline)
        for e in recorder.events
        if isinstance(e, PeerOnline | PeerOffline) and e.peer == fp
    ]


@pytest.mark.asyncio
async def test_a_contact_is_seen_online_offline_and_online_again_without_a_message(
    rsa_keys, tmp_path
):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    ra = Recorder(a)
    try:
        introduce(a, b, ka, kb)  # adding a contact dials it: no message is sent
        await ra.until(lambda r: _presence(r, b.fingerprint) == [True], SEEN_WITHIN)
        assert [p.online for p in a.peers()] == [True]
        port, bob = b.address[1], b.fingerprint
        for _ in range(2):
            await b.stop()
            await ra.until(lambda r: _presence(r, bob)[-1] is False, SEEN_WITHIN)
            assert [p.online for p in a.peers()] == [False]
            b = Node(tmp_path / "b", kb, FAST)
            began = time.monotonic()
            await b.start("127.0.0.1", port)  # B dials A at its start
            await ra.until(lambda r: _presence(r, bob)[-1] is True, SEEN_WITHIN)
            print(f"\nalice saw bob online {time.monotonic() - began:.3f} s after he started")
        assert _presence(ra, b.fingerprint) == [True, False, True, False, True]
        assert a.stats()["queued"] == 0 and not a.history("bob")
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_last_seen_is_stored_when_a_contact_goes(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    ra = Recorder(a)
    try:
        introduce(a, b, ka, kb)
        await ra.until(lambda r: _presence(r, b.fingerprint) == [True], SEEN_WITHIN)
        await eventually(lambda: a.contact(b.fingerprint).last_seen)
        before = time.time()
        await b.stop()
        await ra.until(lambda r: _presence(r, b.fingerprint)[-1] is False, SEEN_WITHIN)
        await eventually(lambda: a.contact(b.fingerprint).last_seen >= before)
        assert a.contact(b.fingerprint).last_seen <= time.time()
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_a_down_contact_is_dialled_with_growing_pauses(rsa_keys, tmp_path):
    quick = dataclasses.replace(FAST, reconnect_min=0.02, reconnect_max=0.16)
    a = await start(tmp_path / "a", rsa_keys["alice"], quick)
    dialer = a.sessions.dialer
    planned, attempts = [], []
    real_delay, real_once = dialer._delay, dialer._dial_once

    def delay(peer):
        pause = real_delay(peer)
        planned.append((dialer._backoff[peer], pause))
        return pause

    async def once(peer):
        attempts.append(peer)
        return await real_once(peer)

    dialer._delay, dialer._dial_once = delay, once
    try:
        a.add_peer(public_pem(rsa_keys["bob"]), f"127.0.0.1:{_free_port()}", "bob")
        await eventually(lambda: len(planned) >= 7, what="seven pauses")
        steps = [step for step, _ in planned[:7]]
        assert steps == [0.02, 0.04, 0.08, 0.16, 0.16, 0.16, 0.16]  # doubling, capped
        assert all(0.8 * step <= pause <= 1.2 * step for step, pause in planned)  # jitter
        assert len(attempts) <= len(planned) + 1  # one attempt per pause, no more
        assert not a.peers()[0].online
    finally:
        await a.stop()


@pytest.mark.asyncio
async def test_blocked_and_v1_contacts_are_never_dialled(rsa_keys, tmp_path):
    a = await start(tmp_path / "a", rsa_keys["alice"])
    try:
        dead = f"127.0.0.1:{_free_port()}"  # nobody listens: a wanted contact stays dialled
        a.add_peer(public_pem(rsa_keys["bob"]), dead, "bob")
        a.add_peer(public_pem(rsa_keys["carol"]), dead, "carol", protocol="v1")
        a.add_peer(public_pem(rsa_keys["mallory"]), dead, "mallory")
        bob, carol, mallory = (
            bytes.fromhex(a.resolve(n).fingerprint) for n in ("bob", "carol", "mallory")
        )
        assert {bob, mallory} <= a.sessions.dialing and carol not in a.sessions.dialing
        a.block_contact("mallory")
        assert mallory not in a.sessions.dialing and a.sessions.dialer.contacts == {bob}
        a.sessions.dialer.retry_now(mallory)
        a.sessions.dialer.retry_now(carol)
        assert a.sessions.dialing == {bob}
        a.block_contact("mallory", False)  # unblocked: dialled again
        assert mallory in a.sessions.dialing
        a.remove_contact("mallory")  # removed: let go
        assert a.sessions.dialing == {bob} and a.sessions.dialer.contacts == {bob}
    finally:
        await a.stop()


@pytest.mark.asyncio
async def test_no_presence_setting_dials_only_for_messages(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = (
        await start(tmp_path / "a", ka, NO_PRESENCE),
        await start(tmp_path / "b", kb, NO_PRESENCE),
    )
    try:
        introduce(a, b, ka, kb)
        assert not a.sessions.dialing and not b.sessions.dialing
        assert a.stats()["handshakes"] == 0 and b.stats()["handshakes"] == 0
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_two_nodes_dialling_each_other_at_once_keep_one_working_session(rsa_keys, tmp_path):
    """Both know each other and start together: both dial. Both see the other online,
    messages go both ways, and once the extra session idles out one stays: no flap."""
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    idle = dataclasses.replace(FAST, idle_timeout=0.3, keepalive_interval=0.2, dead_after=5.0)
    a, b = await start(tmp_path / "a", ka, idle), await start(tmp_path / "b", kb, idle)
    introduce(a, b, ka, kb)
    ports = a.address[1], b.address[1]
    await asyncio.gather(a.stop(), b.stop())
    a, b = Node(tmp_path / "a", ka, idle), Node(tmp_path / "b", kb, idle)
    ra, rb = Recorder(a), Recorder(b)
    try:
        await asyncio.gather(a.start("127.0.0.1", ports[0]), b.start("127.0.0.1", ports[1]))
        await ra.until(lambda r: _presence(r, b.fingerprint) == [True], SEEN_WITHIN)
        await rb.until(lambda r: _presence(r, a.fingerprint) == [True], SEEN_WITHIN)
        await a.send("bob", "hi bob")
        await b.send("alice", "hi alice")
        await ra.until(lambda r: r.states("delivered") and r.received())
        await rb.until(lambda r: r.states("delivered") and r.received())
        await eventually(
            lambda: a.stats()["sessions"] == 1 and b.stats()["sessions"] == 1,
            timeout=10,
            what="one session each side",
        )
        assert _presence(ra, b.fingerprint) == [True] and _presence(rb, a.fingerprint) == [True]
        await a.send("bob", "still there")
        await ra.until(lambda r: len(r.states("delivered")) == 2)
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_retry_now_dials_at_once_and_queued_messages_tell_the_next_try(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    slow = dataclasses.replace(FAST, reconnect_min=20.0, reconnect_max=60.0)
    a = await start(tmp_path / "a", ka, slow)
    port = _free_port()
    a.add_peer(public_pem(kb), f"127.0.0.1:{port}", "bob")
    ra = Recorder(a)
    b = None
    try:
        await a.send("bob", "are you there?")
        await ra.until(lambda r: any(isinstance(e, Retrying) for e in r.events))
        retrying = next(e for e in ra.events if isinstance(e, Retrying))
        assert retrying.peer == a.resolve("bob").fingerprint and 16 <= retrying.retry_after <= 24
        status = a.peers()[0]
        assert not status.online and status.queued == 1 and 10 < status.retry_in <= 24
        b = Node(tmp_path / "b", kb, NO_PRESENCE)  # Bob does not dial: only a retry finds him
        await b.start("127.0.0.1", port)
        b.add_peer(public_pem(ka), f"127.0.0.1:{a.address[1]}", "alice")
        done = await a.retry_now("bob")
        assert done.requeued == [] and done.waiting == 1 and done.tried == [retrying.peer]
        await ra.until(lambda r: r.states("delivered"), SEEN_WITHIN * 2)
        assert a.peers()[0].retry_in is None
    finally:
        await a.stop()
        if b is not None:
            await b.stop()
