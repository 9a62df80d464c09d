"""Pairing by short code between real nodes on 127.0.0.1 (issue 19, item 2): an
invitation on one node, a join from another, and what each may do wrong. The code's
exchange itself is tested in test_pairing.py; here: the node's port, the contacts it
ends in, the rate limit, and a hostile or broken joiner.
"""

import asyncio
import logging

import pytest
import pytest_asyncio
from support.nodes import Recorder, small_key, start

from enclave.errors import UserError
from enclave.node import PairingEnded
from enclave.node.settings import Settings
from enclave.protocol import pairing as P
from enclave.protocol.handshake_steps import _framed


@pytest.fixture(scope="module")
def keys():
    return {n: small_key() for n in ("alice", "bob", "mallory")}


pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def two(tmp_path, keys):
    a = await start(tmp_path / "a", keys["alice"], Settings(display_name="alice"))
    b = await start(tmp_path / "b", keys["bob"], Settings(display_name="bob"))
    try:
        yield a, b
    finally:
        await a.stop()
        await b.stop()


def where(node) -> str:
    return f"127.0.0.1:{node.address[1]}"


def wrong(code: str) -> str:
    """The same nameplate, other words: a well-formed guess that is wrong."""
    n, w1, w2 = code.split("-")
    other = next(w for w in P.WORDS if w not in (w1, w2))
    return f"{n}-{other}-{w2}"


async def test_invite_and_join_make_verified_contacts_who_chat_at_once(two):
    a, b = two
    ra, rb = Recorder(a), Recorder(b)
    invitation = a.invite()
    joined = await b.join(invitation.code, where(a))
    paired = await asyncio.wait_for(invitation.result, 10)
    assert (joined.fingerprint, joined.name) == (a.fingerprint, "alice")
    assert (paired.fingerprint, paired.name, paired.reason) == (b.fingerprint, "bob", None)
    [bob_at_a] = a.store.list_peers()
    [alice_at_b] = b.store.list_peers()
    assert bob_at_a.verified and alice_at_b.verified
    assert alice_at_b.address == where(a)
    assert bob_at_a.address == where(b)  # the host it came from, the port its card gave
    assert [e for e in ra.events if isinstance(e, PairingEnded)][0].result == paired
    await a.send("bob", "hello from the inviter")
    await b.send("alice", "and from the joiner")
    await rb.until(lambda r: [m.body for m in r.received()] == ["hello from the inviter"])
    await ra.until(lambda r: [m.body for m in r.received()] == ["and from the joiner"])
    assert a.invitations() == []


async def test_a_wrong_code_fails_both_sides_and_burns_the_code(two):
    a, b = two
    invitation = a.invite()
    with pytest.raises(UserError, match="wrong code"):
        await b.join(wrong(invitation.code), where(a))
    result = await asyncio.wait_for(invitation.result, 10)
    assert result.reason == "wrong_code" and a.invitations() == []
    with pytest.raises(UserError, match="no invitation with that number"):
        await b.join(invitation.code, where(a))  # the right code, too late
    assert a.store.list_peers() == [] and b.store.list_peers() == []


async def test_a_stranger_s_broken_hello_spends_nothing(two, caplog):
    a, b = two
    invitation = a.invite()
    caplog.set_level(logging.INFO, "enclave.pairing")
    reader, writer = await asyncio.open_connection("127.0.0.1", a.address[1])
    writer.write(_framed(P.MAGIC + b"\x93\x01\x07\xc4\x01x"))  # HELLO, a 1-byte element
    await writer.drain()
    assert await reader.read() == b""  # closed on us
    writer.close()
    assert "bad_pairing_message" in caplog.text and invitation.code not in caplog.text
    joined = await b.join(invitation.code, where(a))  # the invitation waited on
    assert joined.fingerprint == a.fingerprint


async def test_hellos_over_a_source_s_budget_are_refused_unjudged(two, keys, caplog):
    a, b = two
    caplog.set_level(logging.INFO, "enclave.pairing")
    invitations = [a.invite() for _ in range(6)]
    for inv in invitations[:5]:
        with pytest.raises(UserError, match="wrong code"):
            await b.join(wrong(inv.code), where(a))
    with pytest.raises(UserError, match="ended the pairing"):
        await b.join(invitations[5].code, where(a))  # the right code, over the budget
    assert "pairing_rate_limited" in caplog.text
    assert invitations[5] in a.invitations()  # unjudged: it still waits


async def test_cancel_tells_a_joiner_that_waits_and_ends_the_invitation(two):
    a, _ = two
    invitation = a.invite()
    assert a.cancel_invite(invitation.nameplate)
    assert (await invitation.result).reason == "cancelled"
    assert not a.cancel_invite(invitation.nameplate)


async def test_a_joiner_that_stops_after_hello_ends_the_invitation(two, keys):
    a, _ = two
    invitation = a.invite()
    joiner = P.Joiner(invitation.code, _card(keys), 0.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", a.address[1])
    writer.write(_framed(P.MAGIC + joiner.start()[0]))
    await writer.drain()
    head = await reader.readexactly(4)
    assert (await reader.readexactly(int.from_bytes(head, "big")))[:4] == P.MAGIC  # REPLY
    writer.close()
    assert (await asyncio.wait_for(invitation.result, 10)).reason == "interrupted"


async def test_an_own_key_card_is_refused(tmp_path, keys):
    a = await start(tmp_path / "a", keys["alice"])
    twin = await start(tmp_path / "twin", keys["alice"])
    try:
        invitation = a.invite()
        result = await asyncio.gather(
            twin.join(invitation.code, where(a)), invitation.result, return_exceptions=True
        )
        assert isinstance(result[0], UserError) and "your own key" in str(result[0])
        assert "your own key" in result[1].reason
        assert a.store.list_peers() == [] and twin.store.list_peers() == []
    finally:
        await a.stop()
        await twin.stop()


async def test_a_code_that_is_no_code_is_refused_before_anything_is_sent(two):
    _, b = two
    with pytest.raises(UserError, match="word list"):
        await b.join("7-notaword-velvet", "127.0.0.1:1")


def _card(keys) -> P.Card:
    from enclave.protocol.crypto import spki_pem

    return P.card(spki_pem(keys["mallory"].public_key()), "", ())
