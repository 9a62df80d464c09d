"""Pairing by short code (enclave/protocol/pairing.py; docs/PROTOCOL.md, "Pairing by
short code"): codes, the strict codec, the two state machines end to end, and every
refusal: wrong code (which burns it), tampering, replay, order, nameplate, size,
cards, expiry; a fuzz of receive().

Keys are RSA-2048 (the smallest Enclave accepts), made once for the module.
"""

import re

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st
from spake2 import SPAKE2_A, SPAKE2_B
from support.fuzzing import fuzz

from enclave.errors import PeerError, UsageError
from enclave.protocol import pairing as P
from enclave.protocol.crypto import spki_pem
from enclave.protocol.pairing import (
    CARD,
    DONE,
    FAIL,
    HELLO,
    REPLY,
    Card,
    Inviter,
    Joiner,
    card,
    decode_message,
    encode_message,
    new_code,
    parse_code,
)

CODE = "7-harbor-velvet"
WRONG = "7-harbor-walnut"
T0 = 1_700_000_000.0


def _pem(bits: int = 2048) -> bytes:
    return spki_pem(rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key())


@pytest.fixture(scope="module")
def cards() -> dict[str, Card]:
    return {
        "alice": card(_pem(), "alice", ("198.51.100.7:9000", "[2001:db8::1]:9000")),
        "bob": card(_pem(), "", ()),
    }


def pair(cards, inviter_code=CODE, joiner_code=CODE):
    inviter = Inviter(inviter_code, cards["alice"], T0)
    joiner = Joiner(joiner_code, cards["bob"], T0)
    assert inviter.start() == []
    return inviter, joiner


def run(cards):
    """A whole exchange; every message sent, in order."""
    inviter, joiner = pair(cards)
    [hello] = joiner.start()
    [reply] = inviter.receive(hello, T0 + 1)
    [card_msg] = joiner.receive(reply, T0 + 2)
    [done] = inviter.receive(card_msg, T0 + 3)
    assert joiner.receive(done, T0 + 4) == []
    return inviter, joiner, (hello, reply, card_msg, done)


def flip(data: bytes, i: int) -> bytes:
    return data[:i] + bytes([data[i] ^ 1]) + data[i + 1 :]


def state(side) -> tuple:
    return (side.done, side.failed, side.transcript, side._state, side._step, repr(side))


# --- the happy path ----------------------------------------------------------------------


def test_happy_path(cards):
    inviter, joiner, messages = run(cards)
    assert inviter.done == cards["bob"] and joiner.done == cards["alice"]
    assert inviter.failed is None and joiner.failed is None
    assert inviter.transcript == joiner.transcript and len(inviter.transcript) == 32
    assert [decode_message(m)[0] for m in messages] == [HELLO, REPLY, CARD, DONE]


def test_nothing_secret_in_clear(cards):
    """Only SPAKE2 messages, HMACs and sealed cards leave: no word of the code, no part
    of either card."""
    _, _, messages = run(cards)
    wire = b"".join(messages)
    for secret in (b"harbor", b"velvet", b"alice", b"198.51.100.7", b"BEGIN PUBLIC KEY"):
        assert secret not in wire
    for c in cards.values():
        assert c.fp not in wire and c.key_pem[30:60] not in wire


def test_spake_message_length_is_what_spake2_makes():
    assert len(SPAKE2_A(b"pw").start()) == P.SPAKE_LEN == 33
    assert len(SPAKE2_B(b"pw").start()) == P.SPAKE_LEN


def test_start_twice_and_receive_before_start_are_misuse(cards):
    inviter, joiner = pair(cards)
    with pytest.raises(UsageError):
        inviter.start()
    with pytest.raises(UsageError):
        Joiner(CODE, cards["bob"], T0).receive(b"\x91\x05", T0)
    joiner.start()
    with pytest.raises(UsageError):
        joiner.start()


def test_own_card_must_be_valid(cards):
    bad = cards["alice"]._replace(fp=bytes(32))
    with pytest.raises(UsageError):
        Inviter(CODE, bad, T0)
    with pytest.raises(UsageError):
        Joiner(CODE, cards["bob"]._replace(addresses=("no-port",)), T0)


# --- a wrong code ------------------------------------------------------------------------


def test_wrong_code_fails_both_sides_and_burns_the_code(cards):
    inviter, joiner = pair(cards, CODE, WRONG)
    [hello] = joiner.start()
    [reply] = inviter.receive(hello, T0 + 1)
    [fail] = joiner.receive(reply, T0 + 2)  # the joiner sees the inviter's confirm fail
    assert decode_message(fail) == (FAIL, P.WRONG_CODE)
    assert joiner.failed == "wrong_code" and joiner.done is None
    assert inviter.receive(fail, T0 + 3) == []
    assert inviter.failed == "wrong_code" and inviter.done is None
    # The right code afterwards: refused, the code is spent.
    right = Joiner(CODE, cards["bob"], T0)
    [hello2] = right.start()
    with pytest.raises(PeerError) as err:
        inviter.receive(hello2, T0 + 4)
    assert err.value.reason == "pairing_over"
    assert inviter.failed == "wrong_code"


def test_a_silent_wrong_guess_still_burns_the_code(cards):
    """A guesser who learns from REPLY that it guessed wrong and says nothing: the
    inviter ran SPAKE2 for its HELLO, and takes no other."""
    inviter, guesser = pair(cards, CODE, WRONG)
    inviter.receive(guesser.start()[0], T0 + 1)
    right = Joiner(CODE, cards["bob"], T0)
    with pytest.raises(PeerError) as err:
        inviter.receive(right.start()[0], T0 + 2)
    assert err.value.reason == "pairing_unexpected"


def test_wrong_confirm_in_card_burns_at_the_inviter(cards):
    inviter, joiner = pair(cards)
    [reply] = inviter.receive(joiner.start()[0], T0 + 1)
    [card_msg] = joiner.receive(reply, T0 + 2)
    _, confirm, sealed = decode_message(card_msg)
    [fail] = inviter.receive(encode_message(CARD, flip(confirm, 0), sealed), T0 + 3)
    assert decode_message(fail) == (FAIL, P.WRONG_CODE) and inviter.failed == "wrong_code"
    with pytest.raises(PeerError):
        inviter.receive(card_msg, T0 + 4)  # the genuine CARD comes too late
    assert joiner.receive(fail, T0 + 5) == [] and joiner.failed == "wrong_code"


def test_codes_differing_only_in_nameplate_do_not_pair(cards):
    inviter, joiner = pair(cards, "8-harbor-velvet", CODE)
    with pytest.raises(PeerError) as err:
        inviter.receive(joiner.start()[0], T0 + 1)
    assert err.value.reason == "pairing_wrong_nameplate"
    assert inviter.failed is None and inviter._step == 0  # not burned: no guess was judged


# --- tampering ---------------------------------------------------------------------------


def test_tampered_hello_ends_in_wrong_code(cards):
    inviter, joiner = pair(cards)
    [hello] = joiner.start()
    _, nameplate, spake = decode_message(hello)
    # Another valid element: the inviter derives another key, the joiner's check fails.
    other = SPAKE2_B(b"another").start()
    [reply] = inviter.receive(encode_message(HELLO, nameplate, other), T0 + 1)
    [fail] = joiner.receive(reply, T0 + 2)
    assert joiner.failed == "wrong_code"
    inviter.receive(fail, T0 + 3)
    assert inviter.failed == "wrong_code"


def test_hello_with_a_point_off_the_group_changes_nothing(cards):
    inviter, joiner = pair(cards)
    [hello] = joiner.start()
    _, nameplate, spake = decode_message(hello)
    before = state(inviter)
    for bad in (b"B" + bytes(32), b"B" + b"\xff" * 32):
        with pytest.raises(PeerError) as err:
            inviter.receive(encode_message(HELLO, nameplate, bad), T0 + 1)
        assert err.value.reason == "bad_pairing_message"
        assert state(inviter) == before
    [reply] = inviter.receive(hello, T0 + 2)  # the genuine HELLO still works
    assert joiner.receive(reply, T0 + 3)


@pytest.mark.parametrize("field", [1, 2])
def test_tampered_reply_is_a_wrong_code(cards, field):
    inviter, joiner = pair(cards)
    [reply] = inviter.receive(joiner.start()[0], T0 + 1)
    m = list(decode_message(reply))
    if field == 1:
        m[1] = SPAKE2_A(b"another").start()
    else:
        m[2] = flip(m[2], 5)
    [fail] = joiner.receive(encode_message(*m), T0 + 2)
    assert decode_message(fail) == (FAIL, P.WRONG_CODE) and joiner.failed == "wrong_code"


def test_reply_reflecting_the_joiners_element_changes_nothing(cards):
    inviter, joiner = pair(cards)
    [hello] = joiner.start()
    _, _, spake = decode_message(hello)
    before = state(joiner)
    with pytest.raises(PeerError) as err:
        joiner.receive(encode_message(REPLY, b"A" + spake[1:], bytes(32)), T0 + 1)
    assert err.value.reason == "bad_pairing_message" and "reflected" in err.value.detail
    assert state(joiner) == before
    [reply] = inviter.receive(hello, T0 + 2)
    assert joiner.receive(reply, T0 + 3)


def test_tampered_sealed_card_changes_nothing(cards):
    inviter, joiner = pair(cards)
    [reply] = inviter.receive(joiner.start()[0], T0 + 1)
    [card_msg] = joiner.receive(reply, T0 + 2)
    _, confirm, sealed = decode_message(card_msg)
    before = state(inviter)
    for bad in (flip(sealed, 0), flip(sealed, len(sealed) - 1), sealed[:-1]):
        with pytest.raises(PeerError) as err:
            inviter.receive(encode_message(CARD, confirm, bad), T0 + 3)
        assert err.value.reason == "pairing_bad_card"
        assert state(inviter) == before
    [done] = inviter.receive(card_msg, T0 + 4)
    assert inviter.done == cards["bob"]


def test_tampered_done_changes_nothing(cards):
    inviter, joiner = pair(cards)
    [reply] = inviter.receive(joiner.start()[0], T0 + 1)
    [done] = inviter.receive(joiner.receive(reply, T0 + 2)[0], T0 + 3)
    _, sealed = decode_message(done)
    before = state(joiner)
    with pytest.raises(PeerError) as err:
        joiner.receive(encode_message(DONE, flip(sealed, 3)), T0 + 4)
    assert err.value.reason == "pairing_bad_card" and state(joiner) == before
    joiner.receive(done, T0 + 5)
    assert joiner.done == cards["alice"]


def test_cards_of_two_runs_do_not_cross(cards):
    """A DONE from another run (same code, another transcript) does not open."""
    _, _, first = run(cards)
    inviter, joiner = pair(cards)
    [reply] = inviter.receive(joiner.start()[0], T0 + 1)
    joiner.receive(reply, T0 + 2)
    with pytest.raises(PeerError) as err:
        joiner.receive(first[3], T0 + 3)
    assert err.value.reason == "pairing_bad_card"


# --- replay and order --------------------------------------------------------------------


def test_replay_of_each_message(cards):
    inviter, joiner = pair(cards)
    [hello] = joiner.start()
    [reply] = inviter.receive(hello, T0 + 1)
    with pytest.raises(PeerError) as err:
        inviter.receive(hello, T0 + 1)
    assert err.value.reason == "pairing_unexpected"
    [card_msg] = joiner.receive(reply, T0 + 2)
    with pytest.raises(PeerError) as err:
        joiner.receive(reply, T0 + 2)
    assert err.value.reason == "pairing_unexpected"
    [done] = inviter.receive(card_msg, T0 + 3)
    with pytest.raises(PeerError) as err:
        inviter.receive(card_msg, T0 + 3)
    assert err.value.reason == "pairing_over"
    joiner.receive(done, T0 + 4)
    with pytest.raises(PeerError) as err:
        joiner.receive(done, T0 + 4)
    assert err.value.reason == "pairing_over"
    assert inviter.done == cards["bob"] and joiner.done == cards["alice"]


def test_a_reply_of_another_run_is_a_wrong_code(cards):
    _, _, first = run(cards)
    inviter, joiner = pair(cards)
    joiner.start()
    [fail] = joiner.receive(first[1], T0 + 1)  # its confirm covers the other transcript
    assert joiner.failed == "wrong_code" and decode_message(fail)[0] == FAIL


def test_out_of_order_messages_change_nothing_and_do_not_burn(cards):
    _, _, m = run(cards)
    hello, reply, card_msg, done = m
    inviter, joiner = pair(cards)
    for data in (reply, card_msg, done):  # the inviter waits for HELLO
        before = state(inviter)
        with pytest.raises(PeerError) as err:
            inviter.receive(data, T0 + 1)
        assert err.value.reason == "pairing_unexpected" and state(inviter) == before
    [hello2] = joiner.start()
    for data in (hello, card_msg, done):  # the joiner waits for REPLY
        before = state(joiner)
        with pytest.raises(PeerError) as err:
            joiner.receive(data, T0 + 1)
        assert err.value.reason == "pairing_unexpected" and state(joiner) == before
    [reply2] = inviter.receive(hello2, T0 + 2)  # neither is burned: the run completes
    [card2] = joiner.receive(reply2, T0 + 3)
    joiner.receive(inviter.receive(card2, T0 + 4)[0], T0 + 5)
    assert inviter.done and joiner.done


def test_fail_before_any_hello_is_refused(cards):
    """Before HELLO no joiner has spoken: a FAIL then is a stranger's, and ignored."""
    inviter, _ = pair(cards)
    with pytest.raises(PeerError) as err:
        inviter.receive(encode_message(FAIL, P.CANCELLED), T0)
    assert err.value.reason == "pairing_unexpected" and inviter.failed is None


def test_cancel(cards):
    inviter, joiner = pair(cards)
    joiner.start()
    [fail] = inviter.cancel()
    assert inviter.failed == "cancelled" and inviter.cancel() == []
    assert joiner.receive(fail, T0 + 1) == [] and joiner.failed == "cancelled"
    with pytest.raises(PeerError):
        joiner.receive(fail, T0 + 2)


def test_failed_stays_failed(cards):
    inviter, joiner = pair(cards, CODE, WRONG)
    [reply] = inviter.receive(joiner.start()[0], T0 + 1)
    [fail] = joiner.receive(reply, T0 + 2)
    for data in (reply, fail, encode_message(FAIL, P.CANCELLED)):
        with pytest.raises(PeerError) as err:
            joiner.receive(data, T0 + 3)
        assert err.value.reason == "pairing_over" and joiner.failed == "wrong_code"


# --- expiry ------------------------------------------------------------------------------


def test_expiry(cards):
    inviter, joiner = pair(cards)
    assert inviter.deadline_s == T0 + P.LIFETIME_S
    [hello] = joiner.start()
    assert not inviter.expired(T0 + P.LIFETIME_S - 0.001)
    with pytest.raises(PeerError) as err:
        inviter.receive(hello, T0 + P.LIFETIME_S)
    assert err.value.reason == "pairing_over" and "expired" in str(err.value)
    assert inviter.failed == "expired" and inviter.expired(T0 + P.LIFETIME_S)
    assert joiner.expired(T0 + 10_000) and joiner.failed == "expired"


def test_done_is_not_undone_by_expiry(cards):
    inviter, joiner, _ = run(cards)
    assert inviter.expired(T0 + 10_000)
    assert inviter.done == cards["bob"] and inviter.failed is None


# --- the codec ---------------------------------------------------------------------------


def _spake(side=b"B") -> bytes:
    return side + bytes(32)


def test_round_trip_of_each_message():
    for m in [
        (HELLO, 1, _spake()),
        (HELLO, 99, _spake()),
        (REPLY, _spake(b"A"), bytes(32)),
        (CARD, bytes(32), bytes(17)),
        (DONE, bytes(100)),
        (FAIL, P.WRONG_CODE),
        (FAIL, P.CANCELLED),
    ]:
        assert decode_message(encode_message(*m)) == m


@pytest.mark.parametrize(
    "m",
    [
        [HELLO, 0, _spake()],  # nameplate 0
        [HELLO, 100, _spake()],
        [HELLO, True, _spake()],  # a bool is not an int
        [HELLO, 7, _spake()[:-1]],  # 32 bytes
        [HELLO, 7, _spake() + b"\x00"],  # 34 bytes
        [HELLO, 7, _spake(b"A")],  # the inviter's side in a HELLO
        [HELLO, 7, "B" + "x" * 32],  # a str for a bin
        [HELLO, 7],  # arity
        [HELLO, 7, _spake(), 1],
        [REPLY, _spake(), bytes(32)],  # the joiner's side in a REPLY
        [REPLY, _spake(b"A"), bytes(31)],
        [CARD, bytes(32), bytes(16)],  # no room for a tag and a card
        [DONE, b""],
        [FAIL, 0],  # unknown reason
        [FAIL, 3],
        [FAIL, -1],
        [FAIL, False],
        [6, 1],  # unknown kind
        [0],
        [],
        ["HELLO", 7, _spake()],
    ],
)
def test_codec_refusals(m):
    data = msgpack.packb(m, use_bin_type=True)
    with pytest.raises(PeerError) as err:
        decode_message(data)
    assert err.value.reason == "bad_pairing_message"
    with pytest.raises(UsageError):
        encode_message(*m)


@pytest.mark.parametrize(
    "data",
    [
        msgpack.packb({1: 7}),  # a map
        msgpack.packb({}),  # an empty map
        msgpack.packb([FAIL, {}]),
        msgpack.packb(msgpack.ExtType(1, b"x")),  # an ext
        msgpack.packb([FAIL, msgpack.ExtType(1, b"")]),
        encode_message(FAIL, 1) + b"\x00",  # trailing bytes
        b"\x92\x05\xcd\x00\x01",  # non-canonical: uint16 for a fixint
        b"\xdc\x00\x02\x05\x01",  # non-canonical: array16 for a fixarray
        b"\x92\x05\xc3",  # a bool (True) for the reason
        b"",  # truncated
        b"\x93\x01\x07",  # truncated inside the array
        msgpack.packb(7),  # not an array
        msgpack.packb(None),
    ],
)
def test_strict_codec(data):
    with pytest.raises(PeerError) as err:
        decode_message(data)
    assert err.value.reason == "bad_pairing_message"


def test_size_cap():
    at_cap = msgpack.packb([DONE, bytes(P.MAX_MESSAGE_BYTES - 5)], use_bin_type=True)
    assert len(at_cap) == P.MAX_MESSAGE_BYTES
    assert decode_message(at_cap)[0] == DONE
    over = msgpack.packb([DONE, bytes(P.MAX_MESSAGE_BYTES - 4)], use_bin_type=True)
    with pytest.raises(PeerError) as err:
        decode_message(over)
    assert err.value.reason == "bad_pairing_message" and "16385 bytes" in err.value.detail


def test_oversized_and_truncated_messages_change_nothing(cards):
    inviter, joiner = pair(cards)
    [hello] = joiner.start()
    before = state(inviter)
    for bad in (hello[:-1], hello[:1], hello + b"\x00", bytes(P.MAX_MESSAGE_BYTES + 1)):
        with pytest.raises(PeerError) as err:
            inviter.receive(bad, T0 + 1)
        assert err.value.reason == "bad_pairing_message" and state(inviter) == before
    assert inviter.receive(hello, T0 + 2)


# --- cards -------------------------------------------------------------------------------


def _sealed_by_joiner(cards, plain: bytes):
    """An inviter waiting for CARD, and a CARD whose confirm is right and whose sealed
    part is ``plain`` under the joiner's card key (a peer who knows the code)."""
    inviter, joiner = pair(cards)
    [reply] = inviter.receive(joiner.start()[0], T0 + 1)
    [card_msg] = joiner.receive(reply, T0 + 2)
    keys = joiner._keys
    sealed = P.AESGCM(keys.card_joiner).encrypt(P.CARD_NONCE, plain, keys.transcript)
    confirm = decode_message(card_msg)[1]
    return inviter, encode_message(CARD, confirm, sealed), card_msg


def _card_bytes(fp, pem, name="", addresses=()) -> bytes:
    return msgpack.packb([fp, pem, name, list(addresses)], use_bin_type=True)


def test_card_with_fingerprint_mismatch(cards):
    bob = cards["bob"]
    inviter, bad, good = _sealed_by_joiner(cards, _card_bytes(cards["alice"].fp, bob.key_pem))
    before = state(inviter)
    with pytest.raises(PeerError) as err:
        inviter.receive(bad, T0 + 3)
    assert err.value.reason == "pairing_bad_card" and "fingerprint" in err.value.detail
    assert state(inviter) == before


def test_card_with_a_small_or_non_rsa_key(cards):
    small = _pem(1024)
    ec_pem = spki_pem(ec.generate_private_key(ec.SECP256R1()).public_key())
    for pem in (small, ec_pem, b"not a pem"):
        inviter, bad, _ = _sealed_by_joiner(cards, _card_bytes(P.sha256(pem), pem))
        with pytest.raises(PeerError) as err:
            inviter.receive(bad, T0 + 3)
        assert err.value.reason == "pairing_bad_card" and "RSA" in err.value.detail


def test_card_with_a_non_canonical_pem(cards):
    pem = cards["bob"].key_pem.replace(b"\n", b"\r\n")
    inviter, bad, _ = _sealed_by_joiner(cards, _card_bytes(P.sha256(pem), pem))
    with pytest.raises(PeerError) as err:
        inviter.receive(bad, T0 + 3)
    assert err.value.reason == "pairing_bad_card"


@pytest.mark.parametrize(
    "plain",
    [
        b"\x80",  # a map
        b"\x93\x01\x02\x03",  # arity
        msgpack.packb([bytes(32), b"x", "", []]) + b"\x00",  # trailing bytes
    ],
)
def test_card_codec_refusals(cards, plain):
    inviter, bad, _ = _sealed_by_joiner(cards, plain)
    with pytest.raises(PeerError) as err:
        inviter.receive(bad, T0 + 3)
    assert err.value.reason == "pairing_bad_card"


def test_card_field_rules(cards):
    bob = cards["bob"]
    good = [bob.fp, bob.key_pem, "bob", ["a.example:1"] * 8]
    assert P.decode_card(msgpack.packb(good, use_bin_type=True)).name == "bob"
    for i, value in [
        (2, " bob"),  # padded
        (2, "b\u202eob"),  # a bidi override
        (2, "x" * 65),  # over 64 bytes
        (3, ["a.example:1"] * 9),  # nine addresses
        (3, ["a.example"]),  # no port
        (3, ["a.example:0"]),
        (0, bytes(31)),
        (1, "a str"),
    ]:
        fields = list(good)
        fields[i] = value
        with pytest.raises(PeerError) as err:
            P.decode_card(msgpack.packb(fields, use_bin_type=True))
        assert err.value.reason == "pairing_bad_card"


# --- codes -------------------------------------------------------------------------------


def test_wordlist():
    assert len(P.WORDS) == 256 and len(set(P.WORDS)) == 256
    assert all(re.fullmatch(r"[a-z]{3,8}", w) for w in P.WORDS)
    # No word is a prefix of another (a cut-off word cannot read as another).
    words = sorted(P.WORDS)
    assert not any(b.startswith(a) for a, b in zip(words, words[1:], strict=False))


def _one_edit(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def test_no_two_words_one_letter_apart():
    close = [(a, b) for i, a in enumerate(P.WORDS) for b in P.WORDS[i + 1 :] if _one_edit(a, b)]
    assert close == []


def test_new_code():
    counter = iter(range(1000))

    def rnd(n):
        return bytes([next(counter) % 256 for _ in range(n)])

    code = new_code(rnd)
    assert re.fullmatch(r"[1-9][0-9]?-[a-z]+-[a-z]+", code)
    assert parse_code(code).text() == code
    assert new_code(lambda n: bytes(n)) == f"1-{P.WORDS[0]}-{P.WORDS[0]}"
    assert new_code(lambda n: b"\xff" * n).endswith(f"-{P.WORDS[255]}-{P.WORDS[255]}")
    assert new_code(lambda n: bytes(n), taken={1, 2}).startswith("3-")
    with pytest.raises(UsageError):
        new_code(lambda n: bytes(n), taken=set(range(1, 100)))
    with pytest.raises(UsageError):
        new_code(lambda n: b"\x00")


@pytest.mark.parametrize(
    "text",
    [
        "7-harbor-velvet",
        "7 harbor velvet",
        "  7-Harbor-VELVET ",
        "7 - harbor -- velvet",
        "07-harbor-velvet",
        "7\tharbor\nvelvet",
        "-7-harbor-velvet-",
    ],
)
def test_parse_code_is_lenient(text):
    code = parse_code(text)
    assert code.nameplate == 7 and code.text() == CODE
    assert code == parse_code(CODE)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "7",
        "7-harbor",
        "7-harbor-velvet-otter",
        "0-harbor-velvet",
        "100-harbor-velvet",
        "007-harbor-velvet",
        "x-harbor-velvet",
        "7-harbr-velvet",
        "7_harbor_velvet",
        "harbor-velvet-7",
        "\u0667-harbor-velvet",  # an Arabic-Indic seven
        None,
        b"7-harbor-velvet",
    ],
)
def test_parse_code_refuses_malformed(text):
    with pytest.raises(UsageError) as err:
        parse_code(text)
    message = str(err.value)
    assert "\n" not in message and "harbr" not in message and "velvet" not in message


def test_every_well_formed_code_is_accepted_locally():
    """No checksum: any nameplate with any two words parses, so a wrong code can only be
    found out by the inviter."""
    for n, a, b in [(1, 0, 0), (99, 255, 255), (42, 17, 200)]:
        assert parse_code(f"{n}-{P.WORDS[a]}-{P.WORDS[b]}").nameplate == n


def test_the_code_never_shows(cards):
    code = parse_code(CODE)
    inviter, joiner = pair(cards)
    texts = [repr(code), str(code), repr(inviter), repr(joiner)]
    [hello] = joiner.start()
    texts.append(repr(joiner))
    [reply] = inviter.receive(hello, T0 + 1)
    texts.append(repr(inviter))
    for bad in (hello, b"\x00", encode_message(FAIL, 1) + b"x"):
        with pytest.raises(PeerError) as err:
            inviter.receive(bad, T0 + 1)
        texts += [str(err.value), repr(err.value)]
    wrong_inviter, wrong_joiner = pair(cards, CODE, WRONG)
    [fail] = wrong_joiner.receive(wrong_inviter.receive(wrong_joiner.start()[0], T0)[0], T0)
    texts += [repr(wrong_joiner), wrong_joiner.failed]
    for text in texts:
        assert "harbor" not in text and "velvet" not in text and "walnut" not in text


# --- fuzz --------------------------------------------------------------------------------


def _waiting(cards, which: str):
    inviter, joiner = pair(cards)
    [hello] = joiner.start()
    if which == "inviter@hello":
        return inviter
    if which == "joiner@reply":
        return joiner
    [reply] = inviter.receive(hello, T0)
    if which == "inviter@card":
        return inviter
    joiner.receive(reply, T0)
    return joiner  # joiner@done


_SIDES = ["inviter@hello", "joiner@reply", "inviter@card", "joiner@done"]
_FIELD = st.one_of(
    st.integers(-2, 300),
    st.booleans(),
    st.none(),
    st.binary(max_size=40),
    st.just(b"B" + bytes(32)),
    st.just(b"A" + bytes(32)),
    st.text(max_size=5),
)


@fuzz(150)
@given(which=st.sampled_from(_SIDES), data=st.binary(max_size=80))
def test_fuzz_receive_random_bytes(cards, which, data):
    side = _waiting(cards, which)
    try:
        side.receive(data, T0 + 1)
    except PeerError:
        pass


@fuzz(200)
@given(
    which=st.sampled_from(_SIDES),
    kind=st.integers(0, 6),
    fields=st.lists(_FIELD, max_size=3),
)
def test_fuzz_receive_near_messages(cards, which, kind, fields):
    """Arrays shaped like messages: each is refused with PeerError or handled; nothing
    else escapes, and a refusal changes nothing."""
    side = _waiting(cards, which)
    before = state(side)
    try:
        out = side.receive(msgpack.packb([kind, *fields], use_bin_type=True), T0 + 1)
    except PeerError:
        assert state(side) == before
    else:
        assert all(type(m) is bytes for m in out)


def test_a_confirm_sent_back_is_a_wrong_code(cards):
    """The inviter's own confirm value, reflected in a CARD: each direction has its own
    confirm key, so it does not pass as the joiner's."""
    inviter, joiner = pair(cards)
    [reply] = inviter.receive(joiner.start()[0], T0 + 1)
    [card_msg] = joiner.receive(reply, T0 + 2)
    reflected = encode_message(CARD, decode_message(reply)[2], decode_message(card_msg)[2])
    [fail] = inviter.receive(reflected, T0 + 3)
    assert inviter.failed == "wrong_code" and decode_message(fail) == (FAIL, P.WRONG_CODE)
