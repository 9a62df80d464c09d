"""The membership log of a group: signed, numbered, chained records (docs/PROTOCOL.md,
"Groups: the membership log"). Pure: no I/O, no clock (time comes in as ``now_ms``).

Rules:
- A record is one msgpack array, signed by its author's identity key:
      [kind uint, group_id bin16, epoch uint, prev bin32, author bin32, time_ms uint,
       body array, signature bin]
  bodies: CREATE [name, [member, ...]]   ADD [[member, ...]]   REMOVE [[fp, ...]]
          LEAVE []   PROMOTE [[fp, ...]]   RENAME [name]   TIMER [seconds]
  member = [fp bin32, key_pem bin, name str, [hint str, ...]]
- The signature is RSA-PSS-SHA256 (``sign_v2``) over SIGN_LABEL followed by the
  canonical encoding of the first seven fields. ``record_hash`` is SHA-256 of those same
  signed bytes: the chain pins a record's content, the signature pins its author (PSS is
  randomized, so one content signed twice is one record, not a fork).
- The codec (``decode_record``) refuses, as ``PeerError("bad_group_record")``: more than
  MAX_RECORD_BYTES; anything but one strict msgpack array (no map, no ext, no trailing
  bytes, no non-canonical form: re-encoding must give the same bytes); an unknown kind
  or wrong arity; a field of the wrong type or length; CREATE unless epoch 0 with 32
  zero bytes as prev, and epoch 0 for any other kind; names that are empty, over
  MAX_NAME_BYTES, padded with spaces or holding a control, format (bidi, zero-width),
  separator or surrogate character; more than MAX_HINTS hints or a hint that is not
  host:port; a member whose key is not a canonical SPKI PEM of an acceptable RSA key or
  whose fingerprint is not SHA-256 of that PEM; an empty list, more than MAX_LIST
  entries, or one fingerprint twice in a list.
- ``GroupLog.apply`` judges a well-formed record against the log, cheapest checks
  first, signature before authority (so a refusal for authority names a proven
  author): wrong group; epoch at or below the head (``group_duplicate`` for the very
  record we hold at that epoch, ``group_fork`` for another); epoch past head + 1
  (``group_gap``); prev not the head hash; author not a current member; bad signature;
  author not an admin (every kind but LEAVE, whose author is the one who leaves);
  then each kind's own rule (see ``_RULES``). A refused record changes nothing.
- LEAVE: the last admin may leave only as the last member (an admin first promotes a
  successor), so a group with members always has an admin. REMOVE may not name its
  author (that is LEAVE, with its rule). A group whose last member left is over.
- TIMER sets the group's disappearing-messages timer (an admin's, like RENAME): 0 (off)
  or messages.MIN_TIMER_S..MAX_TIMER_S seconds, an int (not a bool), anything else a
  ``bad_group_record``; the same value again is ``group_no_change``. The timer in force
  at each epoch is a function of the log (``timer_at``), so every member gives a post
  written at an epoch the same timer, whatever order it met the records and posts in.
- Building our own records (``sign_record`` and the GroupLog helpers) raises
  ``UsageError`` for a record the codec would refuse; the helpers do not judge
  authority: the caller applies its own record, and ``apply`` is the one judge.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from typing import NamedTuple

import msgpack

from ..errors import PeerError, UsageError
from .crypto import PeerKey, key_problem, sha256
from .messages import strict_unpack_options, timer_allowed

CREATE, ADD, REMOVE, LEAVE, PROMOTE, RENAME, TIMER = 1, 2, 3, 4, 5, 6, 7
KIND_NAMES = {CREATE: "create", ADD: "add", REMOVE: "remove", LEAVE: "leave",
              PROMOTE: "promote", RENAME: "rename", TIMER: "timer"}  # fmt: skip

# Domain separation in the handshake's form (handshake.CTX_SIG_I/R): 64 spaces, a
# context string naming this use, a zero byte; no other Enclave signature covers it.
SIGN_LABEL = b"\x20" * 64 + b"Enclave v2 group membership record" + b"\x00"
GROUP_ID_LEN = 16
HASH_LEN = 32
FP_LEN = 32
ZERO_HASH = bytes(HASH_LEN)  # CREATE's prev
MAX_NAME_BYTES = 64  # a group's or a member's name, UTF-8
MAX_HINTS = 4  # address hints per member
MAX_HINT_BYTES = 262  # "[" + 253-byte host + "]:" + 5-digit port, with room
MAX_PEM_BYTES = 2048  # an RSA-8192 SPKI PEM is about 1,500 bytes
MAX_SIGNATURE_BYTES = 1024  # RSA-8192
MAX_LIST = 1024  # members or fingerprints in one record, whatever the group's own cap
MAX_RECORD_BYTES = 4 * 1024 * 1024  # MAX_LIST members of the largest size fit
DEFAULT_MAX_MEMBERS = 256
_U64 = 1 << 64
_HIDDEN = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}  # controls, bidi/zero-width, ...


class Entry(NamedTuple):
    """A member as the log carries them."""

    fp: bytes  # SHA-256 of key_pem (crypto.fingerprint_of)
    key_pem: bytes  # canonical SPKI PEM
    name: str
    hints: tuple  # "host:port" strings


@dataclass(frozen=True, slots=True)
class Record:
    kind: int
    group_id: bytes
    epoch: int
    prev: bytes  # record_hash of the record at epoch - 1; ZERO_HASH for CREATE
    author: bytes  # fingerprint of the signer
    time_ms: int  # the author's clock; informational, never judged
    body: tuple  # per kind, see the module docstring (members as Entry)
    signature: bytes = b""


@dataclass(frozen=True, slots=True)
class Member:
    key_pem: bytes
    name: str
    hints: tuple
    admin: bool


# --- field checks, shared by encoding (our own) and decoding (the peer's) ---------------


def _bin(value: object, size: int) -> bool:
    return type(value) is bytes and len(value) == size


def _uint(value: object) -> bool:
    return type(value) is int and 0 <= value < _U64


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid group or member name, or None. The node may ask more
    of a name it shows; the protocol refuses only what no face could show safely."""
    if type(name) is not str or not name or name != name.strip():
        return "empty or space-padded"
    try:
        if len(name.encode()) > MAX_NAME_BYTES:
            return "over 64 bytes"
    except UnicodeEncodeError:
        return "not UTF-8"
    for i, ch in enumerate(name):
        if unicodedata.category(ch) in _HIDDEN and not _emoji_joiner(name, i):
            return "a control, format or separator character"
    return None


def _emoji_joiner(name: str, i: int) -> bool:
    # U+200D between two pictographs joins them (an emoji sequence) and hides nothing:
    # the rule node/display.py applies when it shows text.
    if name[i] != "\u200d" or not 0 < i < len(name) - 1:
        return False
    return unicodedata.category(name[i - 1]) == unicodedata.category(name[i + 1]) == "So"


def hint_problem(hint: object) -> bool:
    """Whether ``hint`` is not a host:port address hint the codec takes."""
    if type(hint) is not str or not 3 <= len(hint) <= MAX_HINT_BYTES:
        return True
    if not hint.isascii() or not hint.isprintable() or " " in hint:
        return True
    host, _, port = hint.rpartition(":")
    return not host or not port.isdigit() or not 1 <= int(port) <= 65535


def _entry_problem(e: object) -> str | None:
    if type(e) is not Entry or not _bin(e.fp, FP_LEN):
        return "member shape"
    if type(e.key_pem) is not bytes or not 0 < len(e.key_pem) <= MAX_PEM_BYTES:
        return "member key length"
    why = name_problem(e.name)
    if why is not None:
        return f"member name: {why}"
    if type(e.hints) is not tuple or len(e.hints) > MAX_HINTS:
        return "member hint count"
    if any(hint_problem(h) for h in e.hints):
        return "member hint"
    return key_problem(e.fp, e.key_pem)


def _list_problem(items: object, check) -> str | None:
    if type(items) is not tuple or not 1 <= len(items) <= MAX_LIST:
        return "list empty or too long"
    for item in items:
        why = check(item)
        if why is not None:
            return why
    fps = [i.fp if type(i) is Entry else i for i in items]
    return "a fingerprint twice" if len(set(fps)) != len(fps) else None


def _fp_problem(fp: object) -> str | None:
    return None if _bin(fp, FP_LEN) else "fingerprint"


def _body_problem(kind: int, body: tuple) -> str | None:
    if kind == CREATE:
        return name_problem(body[0]) or _list_problem(body[1], _entry_problem)
    if kind == ADD:
        return _list_problem(body[0], _entry_problem)
    if kind in (REMOVE, PROMOTE):
        return _list_problem(body[0], _fp_problem)
    if kind == RENAME:
        return name_problem(body[0])
    if kind == TIMER:
        return None if timer_allowed(body[0]) else "a timer is 0 or 30..2419200 seconds"
    return None  # LEAVE: nothing


_BODY_ARITY = {CREATE: 2, ADD: 1, REMOVE: 1, LEAVE: 0, PROMOTE: 1, RENAME: 1, TIMER: 1}


def problem(record: object, signed: bool = True) -> str | None:
    """Why ``record`` is not a well-formed record, or None (the codec's rules)."""
    r = record
    if type(r) is not Record or type(r.kind) is not int or r.kind not in _BODY_ARITY:
        return "unknown kind"
    if type(r.body) is not tuple or len(r.body) != _BODY_ARITY[r.kind]:
        return "body arity"
    if not _bin(r.group_id, GROUP_ID_LEN) or not _bin(r.prev, HASH_LEN):
        return "group id or prev"
    if not _bin(r.author, FP_LEN) or not _uint(r.epoch) or not _uint(r.time_ms):
        return "author, epoch or time"
    if (r.kind == CREATE) != (r.epoch == 0) or (r.kind == CREATE) != (r.prev == ZERO_HASH):
        return "CREATE is epoch 0 with a zero prev, and only CREATE"
    if signed and (
        type(r.signature) is not bytes or not 0 < len(r.signature) <= MAX_SIGNATURE_BYTES
    ):
        return "signature length"
    return _body_problem(r.kind, r.body)


# --- encoding ----------------------------------------------------------------------------


def _wire_body(kind: int, body: tuple) -> list:
    def entries(items):
        return [[e.fp, e.key_pem, e.name, list(e.hints)] for e in items]

    if kind == CREATE:
        return [body[0], entries(body[1])]
    if kind == ADD:
        return [entries(body[0])]
    if kind in (REMOVE, PROMOTE):
        return [list(body[0])]
    return list(body)


def _unsigned_fields(r: Record) -> list:
    return [r.kind, r.group_id, r.epoch, r.prev, r.author, r.time_ms, _wire_body(r.kind, r.body)]


def signed_bytes(record: Record) -> bytes:
    """What the author signs, and what record_hash hashes."""
    return SIGN_LABEL + msgpack.packb(_unsigned_fields(record), use_bin_type=True)


def record_hash(record: Record) -> bytes:
    return sha256(signed_bytes(record))


def encode_record(record: Record) -> bytes:
    why = problem(record)
    if why is not None:
        raise UsageError(f"malformed group record: {why}")
    return msgpack.packb(_unsigned_fields(record) + [record.signature], use_bin_type=True)


def sign_record(identity, unsigned: Record) -> Record:
    """``unsigned`` with ``identity``'s signature (and its fingerprint as author)."""
    record = replace(unsigned, author=identity.fingerprint, signature=b"")
    why = problem(record, signed=False)
    if why is not None:
        raise UsageError(f"malformed group record: {why}")
    return replace(record, signature=identity.sign_v2(signed_bytes(record)))


# --- decoding: hostile bytes, even from a member ------------------------------------------


_UNPACK_OPTIONS = strict_unpack_options(
    max_array=MAX_LIST, max_bin=MAX_PEM_BYTES, max_str=MAX_HINT_BYTES
)


def decode_record(data: bytes) -> Record:
    """The record in ``data``, or PeerError("bad_group_record", detail)."""
    if len(data) > MAX_RECORD_BYTES:
        raise _bad(f"{len(data)} bytes")
    try:
        m = msgpack.unpackb(data, **_UNPACK_OPTIONS)
    except (ValueError, msgpack.UnpackException) as exc:
        raise _bad(f"not a strict msgpack array ({exc})"[:120]) from None
    if type(m) is not tuple or len(m) != 8 or type(m[6]) is not tuple:
        raise _bad("not an array of 8 with a body array")
    record = Record(m[0], m[1], m[2], m[3], m[4], m[5], _body(m[0], m[6]), m[7])
    why = problem(record)
    if why is not None:
        raise _bad(why)
    canonical = msgpack.packb(_unsigned_fields(record) + [record.signature], use_bin_type=True)
    if canonical != bytes(data):
        raise _bad("not the canonical encoding")  # one record, one byte string, one hash
    return record


def _body(kind: object, body: tuple) -> tuple:
    """The wire body with members as Entry; shapes it cannot read stay as they are,
    for problem() to name."""

    def entries(items):
        if type(items) is not tuple or not all(type(i) is tuple and len(i) == 4 for i in items):
            return items
        return tuple(Entry(*i) for i in items)

    if kind == CREATE and len(body) == 2:
        return (body[0], entries(body[1]))
    if kind == ADD and len(body) == 1:
        return (entries(body[0]),)
    return body


def _bad(detail: str) -> PeerError:
    return PeerError("bad_group_record", detail)


# --- the log -----------------------------------------------------------------------------


def _refuse(reason: str, detail: str) -> PeerError:
    return PeerError(f"group_{reason}", detail)


class GroupLog:
    """One group's state, built only by applying its records in order."""

    def __init__(self, max_members: int = DEFAULT_MAX_MEMBERS) -> None:
        if type(max_members) is not int or max_members < 1:
            raise UsageError("max_members must be a positive int")
        self.max_members = max_members
        self.group_id = b""
        self.name = ""
        self.members: dict[bytes, Member] = {}
        self.records: list[Record] = []
        self._hashes: list[bytes] = []  # record_hash by epoch
        self._keys: dict[bytes, PeerKey] = {}  # parsed once per member
        # fp -> the epochs at which it joined and left, in turn ([joined, left, joined,
        # ...]; odd length while it is a member): posts are judged by the epoch they
        # were sent at, and a member removed since still wrote those before it.
        self._spans: dict[bytes, list[int]] = {}
        self.encoded: list[bytes] = []  # each record as the wire carries it, by epoch
        self._timers: list[int] = []  # the disappearing-messages timer in force, by epoch

    @property
    def epoch(self) -> int:
        return len(self.records) - 1  # -1: nothing applied yet

    @property
    def head(self) -> bytes:
        return self._hashes[-1] if self._hashes else ZERO_HASH

    @property
    def timer_s(self) -> int:
        """The disappearing-messages timer in force now, seconds (0: off)."""
        return self._timers[-1] if self._timers else 0

    def timer_at(self, epoch: int) -> int:
        """The timer in force once record ``epoch`` was applied: what a post written at
        that epoch lasts (0: it stays). An epoch not held has none."""
        return self._timers[epoch] if 0 <= epoch < len(self._timers) else 0

    def is_member(self, fp: bytes) -> bool:
        return fp in self.members

    def member_at(self, fp: bytes, epoch: int) -> bool:
        """Whether ``fp`` was a member once record ``epoch`` was applied (and before
        the next one)."""
        spans = self._spans.get(fp, ())
        for i in range(0, len(spans), 2):
            joined = spans[i]
            left = spans[i + 1] if i + 1 < len(spans) else self.epoch + 1
            if joined <= epoch < left:
                return True
        return False

    def left_at(self, fp: bytes) -> int | None:
        """The epoch of the record that took ``fp`` out of the group (its REMOVE or
        LEAVE), if it is out; None for a member or a stranger."""
        spans = self._spans.get(fp)
        return spans[-1] if spans and len(spans) % 2 == 0 else None

    def is_admin(self, fp: bytes) -> bool:
        member = self.members.get(fp)
        return member is not None and member.admin

    # --- building -----------------------------------------------------------------------

    @classmethod
    def create(cls, identity, group_id: bytes, name: str, members, now_ms: int,
               max_members: int = DEFAULT_MAX_MEMBERS) -> GroupLog:  # fmt: skip
        """A new group with ``identity`` as its first admin; ``members`` (Entry, see
        ``entry``) must include the creator."""
        entries = tuple(members)
        if identity.fingerprint not in {e.fp for e in entries}:
            raise UsageError("the creator must be one of the members")
        unsigned = Record(CREATE, group_id, 0, ZERO_HASH, b"", now_ms, (name, entries))
        log = cls(max_members)
        log.apply(sign_record(identity, unsigned))
        return log

    @classmethod
    def load(cls, records, max_members: int = DEFAULT_MAX_MEMBERS) -> GroupLog:
        """The log that ``records`` (from CREATE on) build; PeerError at the first bad one."""
        log = cls(max_members)
        for record in records:
            log.apply(record)
        if log.epoch < 0:
            raise _refuse("empty", "no records")
        return log

    def _next(self, identity, kind: int, body: tuple, now_ms: int) -> Record:
        if self.epoch < 0:
            raise UsageError("the group has no CREATE yet")
        unsigned = Record(kind, self.group_id, self.epoch + 1, self.head, b"", now_ms, body)
        return sign_record(identity, unsigned)

    def add(self, identity, members, now_ms: int) -> Record:
        return self._next(identity, ADD, (tuple(members),), now_ms)

    def remove(self, identity, fps, now_ms: int) -> Record:
        return self._next(identity, REMOVE, (tuple(fps),), now_ms)

    def leave(self, identity, now_ms: int) -> Record:
        return self._next(identity, LEAVE, (), now_ms)

    def promote(self, identity, fps, now_ms: int) -> Record:
        return self._next(identity, PROMOTE, (tuple(fps),), now_ms)

    def rename(self, identity, name: str, now_ms: int) -> Record:
        return self._next(identity, RENAME, (name,), now_ms)

    def set_timer(self, identity, seconds: int, now_ms: int) -> Record:
        return self._next(identity, TIMER, (seconds,), now_ms)

    # --- judging ------------------------------------------------------------------------

    def apply(self, record: Record) -> None:
        """Check ``record`` against the log and apply it, or PeerError and no change."""
        why = problem(record)
        if why is not None:
            raise _bad(why)
        if record.kind == CREATE:
            self._check_create(record)
        else:
            self._check_chain(record)
        key = self._author_key(record)
        if not key.verify_v2(record.signature, signed_bytes(record)):
            raise _refuse("bad_signature", f"epoch {record.epoch}")
        if record.kind not in (CREATE, LEAVE) and not self.is_admin(record.author):
            raise _refuse("not_admin", f"{KIND_NAMES[record.kind]} by a member")
        _RULES[record.kind](self, record)  # refuses before it changes anything
        self.records.append(record)
        self._hashes.append(record_hash(record))
        self.encoded.append(encode_record(record))
        self._timers.append(record.body[0] if record.kind == TIMER else self.timer_s)
        _EFFECTS[record.kind](self, record)

    def _check_create(self, record: Record) -> None:
        if self.epoch >= 0:
            self._check_chain(record)  # a second CREATE: duplicate or fork of epoch 0
        self._check_size(len(record.body[1]))

    def _check_chain(self, record: Record) -> None:
        if self.epoch < 0:
            raise _refuse("gap", f"epoch {record.epoch} before any CREATE")
        if record.group_id != self.group_id:
            raise _refuse("wrong_group", record.group_id.hex())
        if record.epoch <= self.epoch:
            same = record_hash(record) == self._hashes[record.epoch]
            raise _refuse("duplicate" if same else "fork", f"epoch {record.epoch}")
        if record.epoch > self.epoch + 1:
            raise _refuse("gap", f"epoch {record.epoch} after {self.epoch}")
        if record.prev != self.head:
            raise _refuse("bad_prev", f"epoch {record.epoch}")
        if record.author not in self.members:
            raise _refuse("not_member", f"author {record.author.hex()[:16]}")

    def _author_key(self, record: Record) -> PeerKey:
        if record.kind == CREATE:  # the creator's key is in the record itself
            entry = {e.fp: e for e in record.body[1]}.get(record.author)
            if entry is None:
                raise _refuse("not_member", "the creator is not among the members")
            return PeerKey.from_pem(entry.key_pem)
        return self._keys[record.author]

    def _check_size(self, count: int) -> None:
        if count > self.max_members:
            raise _refuse("full", f"{count} members, the cap is {self.max_members}")

    def _admit(self, entry: Entry, admin: bool) -> None:
        self.members[entry.fp] = Member(entry.key_pem, entry.name, entry.hints, admin)
        self._keys[entry.fp] = PeerKey.from_pem(entry.key_pem)
        self._spans.setdefault(entry.fp, []).append(self.epoch)

    def _drop(self, fp: bytes) -> None:
        del self.members[fp]
        del self._keys[fp]
        self._spans[fp].append(self.epoch)


# --- each kind's rule (checked before anything changes) and effect -------------------------


def _rule_add(log: GroupLog, r: Record) -> None:
    known = [e.fp for e in r.body[0] if e.fp in log.members]
    if known:
        raise _refuse("already_member", known[0].hex()[:16])
    log._check_size(len(log.members) + len(r.body[0]))


def _rule_remove(log: GroupLog, r: Record) -> None:
    if r.author in r.body[0]:
        raise _refuse("self_remove", "an author leaves with LEAVE")
    _all_members(log, r.body[0])


def _rule_leave(log: GroupLog, r: Record) -> None:
    admins = sum(m.admin for m in log.members.values())
    if log.is_admin(r.author) and admins == 1 and len(log.members) > 1:
        raise _refuse("last_admin", "promote another admin before leaving")


def _rule_promote(log: GroupLog, r: Record) -> None:
    _all_members(log, r.body[0])
    admins = [fp for fp in r.body[0] if log.members[fp].admin]
    if admins:
        raise _refuse("already_admin", admins[0].hex()[:16])


def _rule_rename(log: GroupLog, r: Record) -> None:
    if r.body[0] == log.name:
        raise _refuse("no_change", "the same name")


def _rule_timer(log: GroupLog, r: Record) -> None:
    if r.body[0] == log.timer_s:
        raise _refuse("no_change", "the same timer")


def _all_members(log: GroupLog, fps: tuple) -> None:
    strangers = [fp for fp in fps if fp not in log.members]
    if strangers:
        raise _refuse("not_a_member", strangers[0].hex()[:16])


def _effect_create(log: GroupLog, r: Record) -> None:
    log.group_id, log.name = r.group_id, r.body[0]
    for entry in r.body[1]:
        log._admit(entry, admin=entry.fp == r.author)


def _effect_add(log: GroupLog, r: Record) -> None:
    for entry in r.body[0]:
        log._admit(entry, admin=False)


def _effect_remove(log: GroupLog, r: Record) -> None:
    for fp in r.body[0]:
        log._drop(fp)


def _effect_leave(log: GroupLog, r: Record) -> None:
    log._drop(r.author)


def _effect_promote(log: GroupLog, r: Record) -> None:
    for fp in r.body[0]:
        log.members[fp] = replace(log.members[fp], admin=True)


def _effect_rename(log: GroupLog, r: Record) -> None:
    log.name = r.body[0]


def _no_rule(log: GroupLog, r: Record) -> None:
    return None


_RULES = {CREATE: _no_rule, ADD: _rule_add, REMOVE: _rule_remove, LEAVE: _rule_leave,
          PROMOTE: _rule_promote, RENAME: _rule_rename, TIMER: _rule_timer}  # fmt: skip
_EFFECTS = {CREATE: _effect_create, ADD: _effect_add, REMOVE: _effect_remove,
            LEAVE: _effect_leave, PROMOTE: _effect_promote, RENAME: _effect_rename,
            TIMER: _no_rule}  # fmt: skip


def entry(key_pem: bytes, name: str, hints=()) -> Entry:
    """A member entry for ``key_pem`` (its fingerprint computed here)."""
    return Entry(sha256(key_pem), key_pem, name, tuple(hints))
