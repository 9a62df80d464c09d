"""Key succession on the wire (docs/PROTOCOL.md, "Key succession and revocation"): a
responder answers for a key it handed over (HS1's fp_R names it), and KEY_SUCCESSION /
KEY_SWITCHED travel as uncounted controls. Two in-memory connections, no sockets."""

import msgpack
import pytest
from support.protocol_pair import T0, chats, received, run

from enclave.errors import PeerError, UsageError
from enclave.protocol import succession as sc
from enclave.protocol.connection import Connection
from enclave.protocol.crypto import Identity
from enclave.protocol.events import SuccessionReceived, SwitchedReceived
from enclave.protocol.messages import (
    KeySuccession,
    KeySwitched,
    decode_batch,
    encode_batch,
)
from enclave.protocol.policy import MemoryPolicy


class Rotated:
    """Alice (initiator) still knows Bob by his old key; Bob now holds a new one."""

    def __init__(self, keys, bob_retired=True):
        self.alice = Identity(keys["alice"])
        self.bob_old, self.bob_new = Identity(keys["bob"]), Identity(keys["carol"])
        retired = [self.bob_old] if bob_retired else []
        self.pol_b = MemoryPolicy([self.alice.peer_key], retired=retired)
        self.i = Connection(
            self.alice, MemoryPolicy([self.bob_old.peer_key]), T0, peer=self.bob_old.peer_key
        )
        self.r = Connection(self.bob_new, self.pol_b, T0, source="127.0.0.2")
        self.ev_i, self.ev_r = [], []

    def pump(self):
        for _ in range(20):
            to_r = self.i.data_to_send(T0)
            if to_r:
                self.ev_r += run(self.r, self.r.receive_data(to_r, T0), T0)
            to_i = self.r.data_to_send(T0)
            if to_i:
                self.ev_i += run(self.i, self.i.receive_data(to_i, T0), T0)
            if not to_r and not to_i:
                return
        raise AssertionError("never quiet")

    def handshake(self):
        self.ev_i += run(self.i, self.i.initiate(T0), T0)
        self.pump()
        return self


def statement(old, new, seq=1) -> bytes:
    return sc.encode_succession(sc.sign_succession(old, new, seq, 1_000))


def test_a_responder_answers_for_its_retired_key_and_hands_it_over(rsa_keys):
    p = Rotated(rsa_keys).handshake()
    assert p.i.established and p.r.established
    assert p.r.identity is p.bob_old  # the session is under the key Alice knows
    data = statement(p.bob_old, p.bob_new)
    p.r.send_key_succession(data)
    p.pump()
    assert [e.statement for e in p.ev_i if isinstance(e, SuccessionReceived)] == [data]
    p.i.send_key_switched(p.bob_new.fingerprint)
    p.pump()
    assert [e.new_fp for e in p.ev_r if isinstance(e, SwitchedReceived)] == [p.bob_new.fingerprint]


def test_chats_on_a_retired_key_session_are_from_and_to_that_key(rsa_keys):
    p = Rotated(rsa_keys).handshake()
    mine = chats(_as_pair(p), 3, sender="r")
    assert all(c.sender == p.bob_old.fingerprint for c in mine)
    p.r.send_chats(mine)
    p.pump()
    assert [c.id for c in received(_as_pair(p), "i")] == [c.id for c in mine]


def test_without_the_retired_key_the_handshake_is_misdirected(rsa_keys):
    p = Rotated(rsa_keys, bob_retired=False).handshake()
    assert p.r.closed and p.r.close_reason == "misdirected"
    assert not p.i.established


def test_the_controls_are_uncounted_and_come_before_the_chats_of_their_batch(rsa_keys):
    p = Rotated(rsa_keys).handshake()
    data = statement(p.bob_old, p.bob_new)
    p.r.send_key_succession(data)
    p.r.send_chats(chats(_as_pair(p), 2, sender="r"))
    p.pump()
    kinds = [type(e).__name__ for e in p.ev_i if type(e).__name__ != "Established"]
    assert kinds[:2] == ["SuccessionReceived", "MessagesReceived"]
    p.i.ack(1)  # the two chats are indices 0 and 1: the statement took none
    p.pump()
    assert not p.i.closed and not p.r.closed


@pytest.mark.parametrize(
    "message",
    [[15, b""], [15, "text"], [15, b"x" * 8193], [15, b"x", b"y"], [16, b"x" * 31],
     [16, b"x" * 33], [16, 7], [16]],
)  # fmt: skip
def test_malformed_key_messages_are_refused_whole(message):
    body = msgpack.packb([[3, b"12345678"], message], use_bin_type=True)
    with pytest.raises(PeerError) as err:
        decode_batch(body)
    assert err.value.reason == "bad_message" and "message 1" in str(err.value.detail)


def test_well_formed_key_messages_round_trip():
    body = encode_batch([KeySuccession(b"s" * 8192), KeySwitched(b"f" * 32)])
    assert decode_batch(body) == [KeySuccession(b"s" * 8192), KeySwitched(b"f" * 32)]


def test_we_never_send_what_the_peer_would_refuse():
    for bad in (KeySuccession(b""), KeySuccession(b"x" * 8193), KeySwitched(b"x" * 31)):
        with pytest.raises(UsageError):
            encode_batch([bad])


def test_a_hostile_contact_sending_garbage_as_a_statement_closes_nothing_here(rsa_keys):
    """The connection hands any well-formed KEY_SUCCESSION to its owner unjudged: the
    owner's judge refuses it (tests/test_node_rotation.py) and the session goes on."""
    p = Rotated(rsa_keys).handshake()
    p.r.send_key_succession(b"\x93garbage")
    p.pump()
    assert [e.statement for e in p.ev_i if isinstance(e, SuccessionReceived)] == [b"\x93garbage"]
    assert p.i.established


def _as_pair(p: Rotated):
    """The view ``support.protocol_pair.chats`` and ``received`` expect."""

    class View:
        ida, idb = p.alice, p.r.identity
        ev_i, ev_r = p.ev_i, p.ev_r

        def events(self, side, kind):
            evs = self.ev_i if side == "i" else self.ev_r
            return [e for e in evs if isinstance(e, kind)]

    return View()


def test_a_revocation_connection_hands_over_one_certificate_and_answers_received(rsa_keys):
    from support.protocol_pair import T0 as now

    from enclave.protocol.events import ConnectionClosed, CryptoNeeded, RevocationFrame
    from enclave.protocol.handshake_steps import _framed

    conn = Connection(Identity(rsa_keys["bob"]), MemoryPolicy(), now, source="127.0.0.9")
    events = conn.receive_data(_framed(sc.REVOKE_MAGIC + b"certificate bytes"), now)
    assert [type(e) for e in events] == [RevocationFrame]  # no RSA work, no session
    assert events[0].certificate == b"certificate bytes"
    conn.send_revocation_received()
    assert conn.data_to_send(now) == _framed(sc.REVOKE_MAGIC + sc.RECEIVED)
    more = conn.receive_data(_framed(sc.REVOKE_MAGIC + b"a second one"), now)
    closed = [e for e in more if isinstance(e, ConnectionClosed)]
    assert closed and conn.closed and not any(isinstance(e, CryptoNeeded) for e in more)


def test_a_revocation_frame_over_the_first_frame_limit_is_refused(rsa_keys):
    from enclave.protocol.events import ConnectionClosed, RevocationFrame
    from enclave.protocol.handshake_steps import _framed

    conn = Connection(Identity(rsa_keys["bob"]), MemoryPolicy(), T0, source="127.0.0.9")
    events = conn.receive_data(_framed(sc.REVOKE_MAGIC + b"x" * 5000), T0)
    assert not any(isinstance(e, RevocationFrame) for e in events)
    assert any(isinstance(e, ConnectionClosed) for e in events) and conn.closed
    with pytest.raises(UsageError):
        Connection(Identity(rsa_keys["bob"]), MemoryPolicy(), T0).send_revocation_received()
