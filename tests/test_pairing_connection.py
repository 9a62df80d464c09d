"""A pairing exchange on a node's port (connection.py, state PAIRING): the responder's
first frame starts with pairing.MAGIC, each pairing message is handed to the owner as
a PairingFrame, and its answers go out framed the same way. Two in-memory sides: a
responder Connection driven by an Inviter, and a Joiner that frames its own messages.
"""

import pytest
from support.protocol_pair import T0, Pair

from enclave.protocol import pairing as P
from enclave.protocol.connection import Connection, State
from enclave.protocol.crypto import spki_pem
from enclave.protocol.events import ConnectionClosed, CryptoNeeded, PairingFrame
from enclave.protocol.handshake_steps import _framed
from enclave.protocol.policy import MemoryPolicy

CODE = "12-otter-lantern"


def framed(message: bytes) -> bytes:
    return _framed(P.MAGIC + message)


def frames(data: bytes) -> list[bytes]:
    out = []
    while data:
        n = int.from_bytes(data[:4], "big")
        out.append(data[4 : 4 + n])
        data = data[4 + n :]
    return out


@pytest.fixture
def sides(rsa_keys):
    p = Pair(rsa_keys)
    responder = Connection(p.idb, MemoryPolicy(), T0)
    own = P.card(spki_pem(rsa_keys["bob"].public_key()), "bob", ("198.51.100.2:8000",))
    joiner_card = P.card(spki_pem(rsa_keys["alice"].public_key()), "alice", ("198.51.100.1:8000",))
    inviter = P.Inviter(CODE, own, T0)
    assert inviter.start() == []  # the inviter waits for a joiner's HELLO
    return responder, inviter, P.Joiner(CODE, joiner_card, T0)


def answer(conn: Connection, inviter: P.Inviter, events) -> bytes:
    """The owner's part: each PairingFrame to the inviter, its answers back out."""
    for ev in events:
        if isinstance(ev, PairingFrame):
            for message in inviter.receive(ev.message, T0):
                conn.send_pairing(message)
    return conn.data_to_send(T0)


def test_a_whole_pairing_runs_over_a_responder_connection(sides):
    conn, inviter, joiner = sides
    [hello] = joiner.start()
    events = conn.receive_data(framed(hello), T0)
    assert [type(e) for e in events] == [PairingFrame] and conn.state is State.PAIRING
    [reply] = frames(answer(conn, inviter, events))
    assert reply[:4] == P.MAGIC
    [card] = joiner.receive(reply[4:], T0)
    [done] = frames(answer(conn, inviter, conn.receive_data(framed(card), T0)))
    assert joiner.receive(done[4:], T0) == []
    assert inviter.done is not None and joiner.done is not None
    assert (inviter.done.name, joiner.done.name) == ("alice", "bob")
    assert not any(isinstance(e, CryptoNeeded) for e in events)  # no RSA work for a stranger


def test_a_frame_without_the_magic_after_the_first_closes_it(sides):
    conn, _, joiner = sides
    [hello] = joiner.start()
    conn.receive_data(framed(hello), T0)
    events = conn.receive_data(_framed(b"ENC2" + bytes(40)), T0)
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    assert closed and closed[0].reason == "bad_pairing_message" and conn.closed


def test_a_pairing_frame_over_the_message_limit_is_refused(sides):
    conn, _, joiner = sides
    [hello] = joiner.start()
    conn.receive_data(framed(hello), T0)
    events = conn.receive_data(framed(bytes(P.MAX_MESSAGE_BYTES + 1)), T0)
    assert [e.reason for e in events if isinstance(e, ConnectionClosed)] == ["frame_too_large"]


def test_the_first_frame_keeps_the_pre_authentication_limit(sides):
    conn, _, _ = sides
    events = conn.receive_data(framed(bytes(conn.limits.pre_auth_frame)), T0)
    assert [e.reason for e in events if isinstance(e, ConnectionClosed)] == ["frame_too_large"]


def test_a_pairing_connection_ends_at_the_handshake_deadline(sides):
    conn, _, joiner = sides
    [hello] = joiner.start()
    conn.receive_data(framed(hello), T0)
    events = conn.handle_timer(T0 + conn.limits.handshake_timeout)
    assert [e.reason for e in events if isinstance(e, ConnectionClosed)] == ["handshake_timeout"]


def test_send_pairing_is_only_for_a_pairing_connection(rsa_keys):
    p = Pair(rsa_keys)
    with pytest.raises(Exception, match="send_pairing"):
        p.r.send_pairing(b"x")
