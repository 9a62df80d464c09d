"""Pairing by short code: two people become each other's contacts by one reading a
short code to the other (docs/PROTOCOL.md, "Pairing by short code"). Pure: no I/O, no
clock (time comes in as ``now_s``), randomness passed in.

Rules:
- A code is ``N-word-word``: N is the nameplate, 1..MAX_NAMEPLATE, which tells one
  inviter's concurrent invitations apart and is not secret; the two words, from WORDS
  (256 words, so 16 bits), are the secret. ``parse_code`` is lenient about case, spaces
  and hyphens and refuses only what is not a code at all: there is no checksum, so a
  wrong but well-formed code is never caught locally and every guess reaches the
  inviter, where it burns the code.
- Both sides run SPAKE2 (Ed25519 group, inviter side A, joiner side B) with the code's
  canonical text as the password. Messages, one strict msgpack array each:
      HELLO = [1, nameplate uint, spake bin33]   joiner -> inviter
      REPLY = [2, spake bin33, confirm bin32]    inviter -> joiner
      CARD  = [3, confirm bin32, sealed bin]     joiner -> inviter
      DONE  = [4, sealed bin]                    inviter -> joiner
      FAIL  = [5, reason uint]                   either side
  HELLO carries side B's SPAKE2 message and REPLY side A's (the leading side byte).
- The codec (``decode_message``) refuses, as ``PeerError("bad_pairing_message")``:
  more than MAX_MESSAGE_BYTES; anything but one strict msgpack array (no map, no ext,
  no trailing bytes, no non-canonical form); an unknown kind or wrong arity; a field
  of the wrong type or length (a bool is not an int); a nameplate outside 1..99; an
  unknown FAIL reason.
- Keys: transcript = SHA-256(TRANSCRIPT_LABEL || msgpack [nameplate, HELLO's spake,
  REPLY's spake]); prk = HKDF-Extract(salt = transcript, SPAKE2 key); then one
  HKDF-Expand per purpose and direction (KDF_LABEL + " confirm inviter", ...). A
  confirm value is HMAC-SHA256(confirm key of its sender, transcript), so a replayed,
  swapped or reflected message fails it. A card is AES-256-GCM under its sender's
  card key, AAD = transcript; each card key seals exactly one card, once (at key
  derivation), so the fixed nonce is never reused under one key.
- Card plaintext: msgpack [fp bin32, key_pem bin, name str, [address str, ...]].
  Refused as ``PeerError("pairing_bad_card")``: a card that does not open, or whose
  key is not a canonical SPKI PEM of an acceptable RSA key (``PeerKey``), whose fp is
  not SHA-256 of that PEM, whose name is not empty or a valid name
  (``group_log.name_problem``), or with more than MAX_ADDRESSES addresses or one that
  is not host:port (``group_log.hint_problem``).
- ``Inviter(code, own_card, now_s)`` and ``Joiner(...)``: ``start()`` then
  ``receive(data, now_s)``, each giving the messages to send; ``done`` is the peer's
  verified card, ``failed`` the reason it ended without one. A confirm value that does
  not match is a wrong code: that side fails with "wrong_code", sends FAIL, and is
  over; receiving a FAIL ends the other side with its reason. The inviter takes a FAIL
  only once a joiner has spoken (before HELLO it is a stranger's). The inviter runs
  SPAKE2 for one HELLO only, so one code is one guess whatever happens next: a guesser
  who learns from REPLY that it was wrong and says nothing has still spent the code.
  ``cancel()`` ends a side and gives the FAIL to send.
- Any other refusal (``PeerError``: a malformed, unexpected, out-of-order or replayed
  message, a wrong nameplate, a card that does not open or is refused) changes
  nothing: it carries no guess (no confirm value was judged), so it does not burn the
  code, and the right message may still come. Once done, failed or past its deadline
  (LIFETIME_S after creation), a side refuses everything (``pairing_over``).
- The code never appears in an exception, a repr or on the wire; only SPAKE2
  messages, HMACs and sealed cards leave. Our own misuse raises ``UsageError``.
"""

from __future__ import annotations

import hmac
import re
from typing import NamedTuple

import msgpack
from spake2 import SPAKE2_A, SPAKE2_B
from spake2.ed25519_basic import NotOnCurve
from spake2.parameters.ed25519 import ParamsEd25519

from ..errors import PeerError, UsageError
from .crypto import (
    AESGCM,
    InvalidTag,
    hkdf_expand,
    hkdf_extract,
    hmac_sha256,
    key_problem,
    random_bytes,
    sha256,
)
from .group_log import hint_problem, name_problem
from .messages import strict_unpack_options

HELLO, REPLY, CARD, DONE, FAIL = 1, 2, 3, 4, 5
KIND_NAMES = {HELLO: "HELLO", REPLY: "REPLY", CARD: "CARD", DONE: "DONE", FAIL: "FAIL"}
WRONG_CODE, CANCELLED = 1, 2
FAIL_REASONS = {WRONG_CODE: "wrong_code", CANCELLED: "cancelled"}
_FAIL_CODES = {name: code for code, name in FAIL_REASONS.items()}

MAX_NAMEPLATE = 99
LIFETIME_S = 600  # an invitation lives 10 minutes: long enough to read a code aloud
SPAKE_LEN = 33  # side byte + an Ed25519 element; checked against what spake2 produces
CONFIRM_LEN = 32
FP_LEN = 32
TAG_LEN = 16
MAX_MESSAGE_BYTES = 16 * 1024
# On a node's port every pairing message travels as one frame (4-byte length) that
# starts with MAGIC: the node's first-frame check tells it from HS1 ("ENC2") and v1.
MAGIC = b"ENCP"
MAX_ADDRESSES = 8
MAX_PEM_BYTES = 2048  # an RSA-8192 SPKI PEM is about 1,500 bytes
MAX_ADDRESS_BYTES = 262  # as group_log's hints
_U64 = 1 << 64
SIDE_INVITER, SIDE_JOINER = b"A", b"B"  # spake2's side bytes

# SPAKE2 identities: the key binds the protocol and which side is which.
ID_INVITER = b"Enclave pairing v1 inviter"
ID_JOINER = b"Enclave pairing v1 joiner"
TRANSCRIPT_LABEL = b"Enclave pairing v1 transcript\x00"
KDF_LABEL = b"Enclave pairing v1"
# Each card key seals one card, once: a fixed nonce never repeats under a key.
CARD_NONCE = bytes(12)

# fmt: off
WORDS = tuple((
    "acorn acrobat adobe agent album alpine amber anchor apple apron arrow "
    "atlas autumn avocado bacon badger bagel bakery balloon bamboo banana banjo "
    "barley basket beaver bicycle biscuit bison blanket blossom bonnet bottle bramble "
    "bridge bronze bubble bucket buffalo button cabin cactus camel candle canoe "
    "canvas canyon captain caravan carpet castle cello chapel cheetah cherry chimney "
    "cinema circus clover cobalt cobra cocoa coconut coffee comet compass condor "
    "cookie copper cowboy coyote cricket crimson crystal cupcake dagger daisy dancer "
    "desert diamond dinner doctor dolphin domino dragon eagle echo elbow emerald "
    "empire engine falcon farmer feather ferret forest fossil fountain galaxy garden "
    "garlic gecko ginger giraffe glacier goblin golden gorilla granite grape guitar "
    "hammer harbor harvest hazel helmet hermit heron hippo honey hornet hunter "
    "igloo indigo island jacket jaguar jasmine jelly jigsaw judge jungle kangaroo "
    "kayak kettle kitten kiwi koala ladder lagoon lantern laptop lemon leopard "
    "lizard llama lobster lotus lumber magnet magpie mammoth mango maple marble "
    "market meadow meerkat meteor monkey mosaic muffin museum mustard napkin nectar "
    "noodle nutmeg oasis octopus olive onion orange orbit orchard ostrich otter "
    "oxygen pancake panda panther parrot pasta peanut pebble pelican penguin pepper "
    "piano pickle pigeon pilot pirate pizza planet poet potato pretzel prism "
    "pumpkin puppet puzzle python quartz quilt rabbit radar radish raven ribbon "
    "rocket rodeo saddle saffron salad salmon sandal scarf scooter shadow shovel "
    "silver sketch sleigh spider spinach squid squirrel statue sugar summit sunset "
    "tablet taco thistle tiger toast tornado tractor trumpet tulip tundra turtle "
    "tuxedo umbrella unicorn vanilla velvet violet volcano vulture waffle wagon walnut "
    "wombat yogurt zebra").split())
# fmt: on
_WORD_INDEX = {word: i for i, word in enumerate(WORDS)}
_SEPARATORS = re.compile(r"[\s-]+")
_NAMEPLATE = re.compile(r"[0-9]{1,2}")
_CODE_FORM = "a pairing code is a number and two words, like 12-otter-lantern"


# --- codes -------------------------------------------------------------------------------


class Code:
    """A well-formed code. Its words are the secret: repr and str show the nameplate only,
    so a code never lands in a log or a traceback by accident."""

    __slots__ = ("nameplate", "_words")

    def __init__(self, nameplate: int, words: tuple[str, str]) -> None:
        if type(nameplate) is not int or not 1 <= nameplate <= MAX_NAMEPLATE:
            raise UsageError(f"a nameplate is 1..{MAX_NAMEPLATE}")
        if len(words) != 2 or any(w not in _WORD_INDEX for w in words):
            raise UsageError("a code has two words from the list")
        self.nameplate = nameplate
        self._words = tuple(words)

    def text(self) -> str:
        """The code as people read it: ``7-harbor-velvet``."""
        return f"{self.nameplate}-{self._words[0]}-{self._words[1]}"

    def __repr__(self) -> str:
        return f"Code(nameplate={self.nameplate})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return type(other) is Code and (self.nameplate, self._words) == (
            other.nameplate,
            other._words,
        )

    def __hash__(self) -> int:
        return hash((self.nameplate, self._words))


def new_code(random_bytes, taken=()) -> str:
    """A fresh code, ``N-word-word``, its nameplate not in ``taken`` (the nameplates of
    this inviter's open invitations). ``random_bytes(n)`` gives n random bytes."""
    free = [n for n in range(1, MAX_NAMEPLATE + 1) if n not in taken]
    if not free:
        raise UsageError(f"all {MAX_NAMEPLATE} nameplates are in use")
    r = random_bytes(4)
    if type(r) is not bytes or len(r) != 4:
        raise UsageError("random_bytes(4) must give 4 bytes")
    # The nameplate is not secret, so the slight bias of a modulo costs nothing; each
    # word is one whole byte, exactly uniform over 256 words.
    nameplate = free[int.from_bytes(r[:2], "big") % len(free)]
    return f"{nameplate}-{WORDS[r[2]]}-{WORDS[r[3]]}"


def parse_code(text: object) -> Code:
    """The code in ``text``, whatever its case, spaces and hyphens; UsageError for
    what is not a code. Only the form is checked: no checksum can refuse a wrong code,
    so that every guess has to go to the inviter."""
    if isinstance(text, Code):
        return text
    if type(text) is not str:
        raise UsageError(_CODE_FORM)
    parts = [p for p in _SEPARATORS.split(text.strip().lower()) if p]
    if len(parts) != 3 or not _NAMEPLATE.fullmatch(parts[0]):
        raise UsageError(_CODE_FORM)
    nameplate = int(parts[0])
    if not 1 <= nameplate <= MAX_NAMEPLATE:
        raise UsageError(f"a pairing code's number is 1 to {MAX_NAMEPLATE}")
    if parts[1] not in _WORD_INDEX or parts[2] not in _WORD_INDEX:
        raise UsageError("a pairing code's words come from Enclave's word list; check the spelling")
    return Code(nameplate, (parts[1], parts[2]))


# --- contact cards -----------------------------------------------------------------------


class Card(NamedTuple):
    """What each side tells the other: who it is and where to find it."""

    fp: bytes  # SHA-256 of key_pem
    key_pem: bytes  # canonical SPKI PEM
    name: str  # may be empty
    addresses: tuple  # "host:port" strings


def card(key_pem: bytes, name: str = "", addresses=()) -> Card:
    """A card for ``key_pem`` (its fingerprint computed here)."""
    return Card(sha256(key_pem), key_pem, name, tuple(addresses))


def card_problem(c: object) -> str | None:
    """Why ``c`` is not a valid card, or None."""
    if type(c) is not Card or not _bin(c.fp, FP_LEN):
        return "card shape"
    if type(c.key_pem) is not bytes or not 0 < len(c.key_pem) <= MAX_PEM_BYTES:
        return "key length"
    if type(c.name) is not str:
        return "name not a string"
    if c.name and name_problem(c.name):  # empty: the peer chose not to say
        return f"name: {name_problem(c.name)}"
    if type(c.addresses) is not tuple or len(c.addresses) > MAX_ADDRESSES:
        return "address count"
    if any(hint_problem(a) for a in c.addresses):
        return "an address is not host:port"
    return key_problem(c.fp, c.key_pem)


def encode_card(c: Card) -> bytes:
    why = card_problem(c)
    if why is not None:
        raise UsageError(f"malformed card: {why}")
    return msgpack.packb([c.fp, c.key_pem, c.name, list(c.addresses)], use_bin_type=True)


_CARD_OPTIONS = strict_unpack_options(
    max_array=MAX_ADDRESSES, max_bin=MAX_PEM_BYTES, max_str=MAX_ADDRESS_BYTES
)


def decode_card(data: bytes) -> Card:
    """The card in ``data`` (a plaintext), or PeerError("pairing_bad_card")."""
    try:
        m = msgpack.unpackb(data, **_CARD_OPTIONS)
    except (ValueError, msgpack.UnpackException) as exc:
        raise PeerError("pairing_bad_card", f"not a strict msgpack array ({exc})"[:120]) from None
    if type(m) is not tuple or len(m) != 4:
        raise PeerError("pairing_bad_card", "not an array of 4")
    c = Card(*m)
    why = card_problem(c)
    if why is not None:
        raise PeerError("pairing_bad_card", why)
    return c


# --- messages ----------------------------------------------------------------------------


def _bin(value: object, size: int) -> bool:
    return type(value) is bytes and len(value) == size


def _nameplate(value: object) -> bool:
    return type(value) is int and 1 <= value <= MAX_NAMEPLATE


def _spake_of(side: bytes):
    def check(value: object) -> bool:
        return _bin(value, SPAKE_LEN) and value[:1] == side

    return check


def _confirm(value: object) -> bool:
    return _bin(value, CONFIRM_LEN)


def _sealed(value: object) -> bool:
    return type(value) is bytes and TAG_LEN < len(value) <= MAX_MESSAGE_BYTES


def _reason(value: object) -> bool:
    return type(value) is int and value in FAIL_REASONS


_SHAPES = {
    HELLO: (_nameplate, _spake_of(SIDE_JOINER)),
    REPLY: (_spake_of(SIDE_INVITER), _confirm),
    CARD: (_confirm, _sealed),
    DONE: (_sealed,),
    FAIL: (_reason,),
}


def message_problem(m: object) -> str | None:
    """Why ``m`` (a tuple, kind first) is not a well-formed message, or None."""
    if type(m) is not tuple or not m or type(m[0]) is not int or m[0] not in _SHAPES:
        return "unknown kind"
    shape = _SHAPES[m[0]]
    if len(m) != 1 + len(shape):
        return f"{KIND_NAMES[m[0]]} arity"
    for i, (check, value) in enumerate(zip(shape, m[1:], strict=True), 1):
        if not check(value):
            return f"{KIND_NAMES[m[0]]} field {i}"
    return None


def encode_message(*m) -> bytes:
    """``encode_message(HELLO, nameplate, spake)`` and so on."""
    why = message_problem(m)
    if why is not None:
        raise UsageError(f"malformed pairing message: {why}")
    return msgpack.packb(list(m), use_bin_type=True)


# No strings at all; bins up to the message cap (a sealed card), which the length check
# before parsing bounds anyway.
_UNPACK_OPTIONS = strict_unpack_options(max_array=3, max_bin=MAX_MESSAGE_BYTES, max_str=0)


def decode_message(data: bytes) -> tuple:
    """The message in ``data`` as a tuple, kind first, or PeerError("bad_pairing_message")."""
    if type(data) is not bytes:
        raise UsageError("pairing messages are bytes")
    if len(data) > MAX_MESSAGE_BYTES:
        raise _bad(f"{len(data)} bytes")
    try:
        m = msgpack.unpackb(data, **_UNPACK_OPTIONS)
    except (ValueError, msgpack.UnpackException) as exc:
        raise _bad(f"not a strict msgpack array ({exc})"[:120]) from None
    why = message_problem(m)
    if why is not None:
        raise _bad(why)
    if msgpack.packb(list(m), use_bin_type=True) != data:
        raise _bad("not the canonical encoding")  # one message, one byte string
    return m


def _bad(detail: str) -> PeerError:
    return PeerError("bad_pairing_message", detail)


# --- keys --------------------------------------------------------------------------------


class _Keys(NamedTuple):
    transcript: bytes
    confirm_inviter: bytes
    confirm_joiner: bytes
    card_inviter: bytes
    card_joiner: bytes


def transcript_hash(nameplate: int, joiner_spake: bytes, inviter_spake: bytes) -> bytes:
    fields = [nameplate, joiner_spake, inviter_spake]
    return sha256(TRANSCRIPT_LABEL + msgpack.packb(fields, use_bin_type=True))


def _derive(spake_key: bytes, transcript: bytes) -> _Keys:
    prk = hkdf_extract(transcript, spake_key)
    purposes = (b" confirm inviter", b" confirm joiner", b" card inviter", b" card joiner")
    return _Keys(transcript, *(hkdf_expand(prk, KDF_LABEL + p, 32) for p in purposes))


def _seal(key: bytes, own: Card, transcript: bytes) -> bytes:
    return AESGCM(key).encrypt(CARD_NONCE, encode_card(own), transcript)


def _open(key: bytes, sealed: bytes, transcript: bytes) -> Card:
    try:
        plain = AESGCM(key).decrypt(CARD_NONCE, sealed, transcript)
    except InvalidTag:
        raise PeerError("pairing_bad_card", "does not open") from None
    return decode_card(plain)


def _element_problem(spake: bytes, own: bytes) -> str | None:
    """What spake2's finish() would refuse in the peer's message, checked first: finish()
    may run only once, so a refusal must come before it to leave the state as it was."""
    try:
        element = ParamsEd25519.group.bytes_to_element(spake[1:])
    except (ValueError, NotOnCurve):
        return "not an element of the group"
    if element.to_bytes() == own[1:]:
        return "our own SPAKE2 message reflected"
    return None


def _started(spake) -> bytes:
    message = spake.start()
    if len(message) != SPAKE_LEN:  # another group in a future spake2 would change it
        raise UsageError(f"spake2 made a {len(message)}-byte message, not {SPAKE_LEN}")
    return message


# --- the two sides -----------------------------------------------------------------------

_NEW, _WAITING, _DONE, _FAILED = "new", "waiting", "done", "failed"


class _Side:
    _role = ""
    _expects: tuple = ()  # per step: the kind it waits for, its handler's name
    _fail_from = 0  # the first step at which the peer may have a reason to send FAIL

    def __init__(self, code, own_card: Card, now_s: float, random_bytes=random_bytes) -> None:
        self._code = parse_code(code)
        why = card_problem(own_card)
        if why is not None:
            raise UsageError(f"malformed own card: {why}")
        self.nameplate = self._code.nameplate
        self.own_card = own_card
        self.deadline_s = now_s + LIFETIME_S
        self.done: Card | None = None  # the peer's verified card
        self.failed: str | None = None  # why it ended without a card
        self.transcript: bytes | None = None
        self._random = random_bytes
        self._state = _NEW
        self._step = 0  # which message comes next (an index into _expects)
        self._keys: _Keys | None = None
        self._spake = None
        self._own_spake = self._sealed_own = b""

    def __repr__(self) -> str:
        state = self.failed or ("done" if self.done else self._state)
        return f"{type(self).__name__}(nameplate={self.nameplate}, {state})"

    def expired(self, now_s: float) -> bool:
        """Whether the deadline has passed; an unfinished side then fails, "expired"."""
        if now_s < self.deadline_s:
            return False
        if self._state in (_NEW, _WAITING):
            self._end("expired")
        return True

    def cancel(self) -> list[bytes]:
        """End it here (the person gave up): the FAIL to send, if anything is under way."""
        if self._state not in (_NEW, _WAITING):
            return []
        self._end("cancelled")
        return [encode_message(FAIL, CANCELLED)]

    def receive(self, data: bytes, now_s: float) -> list[bytes]:
        """The messages to send in answer to ``data``; PeerError, and no change, when
        ``data`` is refused."""
        if self._state == _NEW:
            raise UsageError("start() first")
        if self._state != _WAITING or self.expired(now_s):
            raise PeerError("pairing_over", self.failed or "already paired")
        m = decode_message(data)
        if m[0] == FAIL and self._step >= self._fail_from:
            self._end(FAIL_REASONS[m[1]])
            return []
        expected = self._expects[self._step]
        if m[0] != expected[0]:
            raise PeerError(
                "pairing_unexpected",
                f"{KIND_NAMES[m[0]]} to the {self._role}, waiting for {KIND_NAMES[expected[0]]}",
            )
        return getattr(self, expected[1])(*m[1:])

    def _confirm_ok(self, got: bytes, key: bytes) -> bool:
        return hmac.compare_digest(got, hmac_sha256(key, self._keys.transcript))

    def _burn(self) -> list[bytes]:
        """A confirm value did not match: a wrong code (or a forged message). This code
        is spent; nothing more is accepted, not even the right code."""
        self._end("wrong_code")
        return [encode_message(FAIL, WRONG_CODE)]

    def _end(self, reason: str) -> None:
        self.failed = reason
        self._state = _FAILED
        self._forget()

    def _finish(self, peer: Card) -> None:
        self.done = peer
        self._state = _DONE
        self._forget()

    def _forget(self) -> None:
        # Over either way: no key or code outlives the exchange.
        self._code = self._keys = self._spake = None
        self._sealed_own = b""


class Inviter(_Side):
    """The side that made the code: waits for HELLO, answers REPLY, then CARD -> DONE."""

    _role = "inviter"
    _expects = ((HELLO, "_on_hello"), (CARD, "_on_card"))
    _fail_from = 1  # before HELLO no joiner has spoken: a FAIL then is anyone's

    def start(self) -> list[bytes]:
        if self._state != _NEW:
            raise UsageError("start() once")
        self._state = _WAITING
        return []  # the joiner speaks first

    @property
    def answered(self) -> bool:
        """A HELLO was answered: the one guess this code allows is spent."""
        return self._step > 0

    def _on_hello(self, nameplate: int, joiner_spake: bytes) -> list[bytes]:
        if nameplate != self.nameplate:
            raise PeerError("pairing_wrong_nameplate", f"{nameplate}, not {self.nameplate}")
        # Our SPAKE2 side is made only now: a refused HELLO leaves nothing spent.
        spake = SPAKE2_A(
            self._code.text().encode(), idA=ID_INVITER, idB=ID_JOINER, entropy_f=self._random
        )
        own = _started(spake)
        why = _element_problem(joiner_spake, own)
        if why is not None:
            raise _bad(f"HELLO: {why}")
        keys = _derive(spake.finish(joiner_spake), transcript_hash(nameplate, joiner_spake, own))
        self._keys, self.transcript, self._step = keys, keys.transcript, 1
        self._sealed_own = _seal(keys.card_inviter, self.own_card, keys.transcript)
        self._code = None  # one HELLO, one SPAKE2 run: the code can serve no other guess
        return [encode_message(REPLY, own, hmac_sha256(keys.confirm_inviter, keys.transcript))]

    def _on_card(self, confirm: bytes, sealed: bytes) -> list[bytes]:
        if not self._confirm_ok(confirm, self._keys.confirm_joiner):
            return self._burn()
        peer = _open(self._keys.card_joiner, sealed, self._keys.transcript)
        done = encode_message(DONE, self._sealed_own)
        self._finish(peer)
        return [done]


class Joiner(_Side):
    """The side that was told the code: HELLO, then REPLY -> CARD, then DONE."""

    _role = "joiner"
    _expects = ((REPLY, "_on_reply"), (DONE, "_on_done"))

    def start(self) -> list[bytes]:
        if self._state != _NEW:
            raise UsageError("start() once")
        self._spake = SPAKE2_B(
            self._code.text().encode(), idA=ID_INVITER, idB=ID_JOINER, entropy_f=self._random
        )
        self._own_spake = _started(self._spake)
        self._state = _WAITING
        return [encode_message(HELLO, self.nameplate, self._own_spake)]

    def _on_reply(self, inviter_spake: bytes, confirm: bytes) -> list[bytes]:
        why = _element_problem(inviter_spake, self._own_spake)
        if why is not None:
            raise _bad(f"REPLY: {why}")
        transcript = transcript_hash(self.nameplate, self._own_spake, inviter_spake)
        self._keys = _derive(self._spake.finish(inviter_spake), transcript)
        self.transcript, self._step = transcript, 1
        self._spake = None
        if not self._confirm_ok(confirm, self._keys.confirm_inviter):
            return self._burn()
        sealed = _seal(self._keys.card_joiner, self.own_card, transcript)
        return [encode_message(CARD, hmac_sha256(self._keys.confirm_joiner, transcript), sealed)]

    def _on_done(self, sealed: bytes) -> list[bytes]:
        peer = _open(self._keys.card_inviter, sealed, self._keys.transcript)
        self._finish(peer)
        return []
