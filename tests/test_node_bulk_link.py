"""File data on a session of its own: while a transfer runs, chats to the same contact
take another session (no chat waits behind pieces in a socket buffer); a contact with
one session gets a second for the transfer; with one session allowed, both share it."""

import dataclasses
import hashlib
import time

import pytest
from support.nodes import NO_PRESENCE, Recorder, alice_and_bob
from support.waiting import eventually

from enclave.node.events import FileChanged
from enclave.node.settings import Settings

pytestmark = pytest.mark.asyncio
MiB = 1 << 20
ASKS = Settings(file_auto_accept_bytes=0)


def make(path, size: int):
    with open(path, "wb") as f:
        f.write(hashlib.shake_256(path.name.encode()).digest(size))
    return path


def sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def files(rec: Recorder, *states: str) -> list[FileChanged]:
    return [e for e in rec.events if isinstance(e, FileChanged) and e.state in states]


def settled(rec: Recorder) -> list[FileChanged]:
    return files(rec, "delivered", "failed", "cancelled")


async def test_chats_take_another_session_than_the_file_data(tmp_path, rsa_keys):
    src = make(tmp_path / "movie.bin", 64 * MiB)
    async with alice_and_bob(tmp_path, rsa_keys, bob_settings=ASKS) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        alice, bob = bytes.fromhex(a.fingerprint), bytes.fromhex(b.fingerprint)
        await a.send_file("bob", str(src))
        await rb.until(lambda r: files(r, "offered"), what="the offer at bob")
        s = b.sessions
        if s.pool.count(alice) < 2:  # presence may have left one session only
            assert await s.dialer._dial_at(alice, s.policy.keys[alice], f"127.0.0.1:{a.address[1]}")
        await eventually(lambda: a.sessions.pool.count(bob) >= 2, what="two sessions at alice")
        await b.accept_file()
        await ra.until(lambda r: files(r, "transferring"), what="alice sending pieces")
        (out,) = a.files.send.out.values()
        pieces_on = out.link
        a.delivery.submit(bob, "while the file moves")  # dispatched before this returns
        carrier = a.delivery.carriers[bob]
        assert out.link is pieces_on and a.files.bulky(pieces_on)  # still under way
        assert carrier is not pieces_on and not a.files.bulky(carrier)
        later = time.monotonic() + 1000  # long past the idle timeout
        a.sessions._keep_bulk_peers(later)  # what housekeeping does before it expires
        assert a.sessions.pool.expire(later) == []  # neither the bulk nor the chat session
        await rb.until(lambda r: r.received(), what="the chat at bob")
        await rb.until(settled, timeout=30, what="bob's side settled")
        assert settled(rb)[0].state == "delivered"
        assert sha256(settled(rb)[0].path) == sha256(src)


async def test_a_contact_with_one_session_gets_a_second_for_the_file(tmp_path, rsa_keys):
    one = dataclasses.replace(NO_PRESENCE, file_auto_accept_bytes=1 << 40)
    src = make(tmp_path / "album.zip", 24 * MiB)
    async with alice_and_bob(tmp_path, rsa_keys, one, one) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        alice = bytes.fromhex(a.fingerprint)
        await a.send("bob", "hello")  # without presence, this opens the one session
        await ra.until(lambda r: r.states("delivered"), what="the first chat delivered")
        assert b.sessions.pool.count(alice) == 1
        await a.send_file("bob", str(src))
        await rb.until(settled, timeout=30, what="bob's side settled")
        assert settled(rb)[0].state == "delivered"
        assert sha256(settled(rb)[0].path) == sha256(src)
        await eventually(lambda: b.sessions.pool.count(alice) == 2, what="a second session")
        await ra.until(settled, what="alice's side settled")


async def test_with_one_session_allowed_file_and_chats_share_it(tmp_path, rsa_keys):
    # Without presence only alice dials: no pool replacement while the file moves.
    single = dataclasses.replace(
        NO_PRESENCE, connections_per_peer=1, file_auto_accept_bytes=1 << 40
    )
    src = make(tmp_path / "backup.tar", 24 * MiB)
    async with alice_and_bob(tmp_path, rsa_keys, single, single) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        alice, bob = bytes.fromhex(a.fingerprint), bytes.fromhex(b.fingerprint)
        await a.send("bob", "hello")  # opens the one session
        await ra.until(lambda r: r.states("delivered"), what="the first chat delivered")
        await a.send_file("bob", str(src))
        await ra.until(lambda r: files(r, "transferring"), what="alice sending pieces")
        for n in range(20):
            a.delivery.submit(bob, f"chat {n}")
        await rb.until(lambda r: len(r.received()) == 21, what="every chat at bob")
        await rb.until(settled, timeout=30, what="bob's side settled")
        assert settled(rb)[0].state == "delivered"
        assert sha256(settled(rb)[0].path) == sha256(src)
        assert b.sessions.pool.count(alice) <= 1 and not b.sessions.dialer.extras
