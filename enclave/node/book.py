"""The address book: the one way to add a contact, with or without a running node.

Rules:
- Every face adds a contact through ``add_contact`` (the running node through
  ``Node.add_contact``, the command line with no node through ``open_book``): one set
  of checks, in one order. A person's mistake raises ``UserError`` in one line, and a
  refused change leaves the book as it was, the address included.
- The checks: a name (``check_name``), an address ``HOST:PORT``, a peer key
  Enclave accepts (``keys.load_peer_key``), not our own key, and no silent downgrade
  (``check_protocol_change``: a peer that has spoken v2 becomes v1 only with ``force``).
- Faces never open the store themselves: ``open_book`` is how a command that runs
  without a node reads the book or leaves a message in the outbox.
"""

from __future__ import annotations

import contextlib
import time
import unicodedata
from dataclasses import dataclass

from enclave.errors import UserError
from enclave.identity import keys
from enclave.node.addresses import parse_address
from enclave.node.display import visible
from enclave.node.lookup import find_message, resolve_peer
from enclave.node.message_ids import new_id
from enclave.protocol.messages import MAX_BODY_CHARS
from enclave.store import PROTOS, Peer, Store

MAX_NAME_LENGTH = 32


class DowngradeRefused(UserError):
    """Marking legacy v1 a peer that has spoken v2, without ``force``."""


@dataclass(frozen=True)
class Added:
    """What ``add_contact`` did: the peer as stored, whether it is new, a warning about
    a short key (or None), and whether a peer that spoke v2 was forced to v1."""

    peer: Peer
    added: bool
    weak: str | None
    downgraded: bool

    def summary(self) -> dict:
        """What a command prints of it, as plain JSON-able values (the control socket
        carries it from a running node)."""
        p = self.peer
        return {
            "peer": p.fingerprint,
            "name": p.name,
            "address": p.address,
            "proto": p.proto,
            "added": self.added,
            "weak": self.weak,
            "downgraded": self.downgraded,
        }


# Default-ignorable code points (Unicode's DerivedCoreProperties) that display.visible
# lets through: fillers and joiners that draw nothing, so "bob" and "bob" + one of
# them would look alike.
_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0),
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip


def _ignorable(ch: str) -> bool:
    n = ord(ch)
    # (U+200D inside an emoji sequence is kept, as display.visible keeps it.)
    return any(lo <= n <= hi for lo, hi in _IGNORABLE) or (
        unicodedata.category(ch) == "Cf" and ch != "\u200d"
    )


def check_name(name: str | None) -> str | None:
    """A peer's name, checked and tidied (None: no name); every face asks this one rule.

    Any printable text of any script, spaces included ("Ana María", "王小明"), up to
    MAX_NAME_LENGTH characters; runs of spaces become one and the ends are trimmed.
    Refused: control, bidi, zero-width and other hidden characters (a name must look
    like what it is: ``display.visible`` would change it), and names that look like a
    fingerprint prefix. The REPL takes a name with spaces in quotes, or as it is when
    it is a contact's (``/send "Ana María" hi``, ``/send Ana María hi``)."""
    if name is None:
        return None
    tidy = unicodedata.normalize("NFC", " ".join(part for part in str(name).split(" ") if part))
    if not tidy or len(tidy) > MAX_NAME_LENGTH:
        raise UserError(f"a peer name must be 1 to {MAX_NAME_LENGTH} characters")
    shown = visible(tidy, lines=False)
    if not tidy.isprintable() or shown != tidy or any(map(_ignorable, tidy)):
        raise UserError(f"invalid peer name {shown!r}: no control, bidi or hidden characters")
    if tidy[0] in "\"'":
        raise UserError(f"invalid peer name {tidy!r}: it cannot start with a quote")
    if len(tidy) >= 8 and all(ch in "0123456789abcdefABCDEF" for ch in tidy):
        raise UserError(f"invalid peer name {tidy!r}: it looks like a fingerprint prefix")
    return tidy


def check_text(text: str) -> None:
    """A message a person may send: not empty, not over the protocol's limit. Every
    face asks this before it shows or queues anything; ``Node.send`` asks it again."""
    if not isinstance(text, str) or not text.strip():
        raise UserError("the message is empty")
    if len(text) > MAX_BODY_CHARS:
        raise UserError(
            f"the message has {len(text):,} characters; the limit is {MAX_BODY_CHARS:,}"
        )


def check_protocol_change(peer: Peer | None, proto: str, *, force: bool = False) -> None:
    """The rule every face asks before a peer's protocol changes (``peer`` None: a new one).

    A peer that has spoken v2 with this node, or that the user marked v2, runs Enclave;
    its node refuses v1 from anyone it has spoken v2 with, so marking it v1 would trade
    forward secrecy for messages that are dropped on arrival. Only ``force`` (the user
    says it went back to the original client) does it."""
    if proto not in PROTOS:
        raise UserError(f"unknown protocol {proto!r}; use auto, v1 or v2")
    if proto != "v1" or peer is None or peer.protocol != "v2" or force:
        return
    label = peer.name or keys.group(peer.fingerprint, 4)
    if peer.v2_seen:
        raise DowngradeRefused(
            f"{label} has spoken Enclave's own protocol (v2) with you, so its node refuses "
            "legacy v1 messages from you; marking it v1 would lose them (and forward secrecy)"
        )
    raise DowngradeRefused(
        f"{label} is marked v2 (Enclave's own protocol); marking it v1 would downgrade it "
        "to the legacy protocol, which is not forward-secret"
    )


def record_protocol(store: Store, peer: Peer, proto: str) -> None:
    """Write a protocol change that ``check_protocol_change`` allowed. A peer forced back
    to v1 forgets that it spoke v2, so its v1 envelopes are accepted again."""
    store.set_proto(peer.fingerprint, proto)
    if proto == "v1" and peer.v2_seen:
        store.forget_v2_seen(peer.fingerprint)


def add_contact(
    store: Store,
    own_fingerprint: str,
    pem: bytes | str,
    address: str | None,
    name: str | None = None,
    protocol: str | None = None,
    *,
    force: bool = False,
    source: str = "the public key",
) -> Added:
    """Add or update a peer from its public key PEM (``source`` names it in errors)."""
    name, canonical, key = check_addition(own_fingerprint, pem, address, name, source)
    before = store.get_peer(key.fingerprint)
    if protocol is not None:
        check_protocol_change(before, protocol, force=force)
    try:
        added = store.upsert_peer(key.fingerprint, key.pem, canonical, name, time.time())
    except ValueError as err:  # the same fingerprint with another key
        raise UserError(str(err)) from None
    saved = store.get_peer(key.fingerprint)
    if protocol is not None:
        record_protocol(store, saved, protocol)
        saved = store.get_peer(key.fingerprint)
    weak = None
    if key.weak:
        weak = f"{source} is a {key.bits}-bit key; {keys.WARN_PEER_BITS} or more is recommended"
    downgraded = before is not None and before.protocol == "v2" and saved.proto == "v1"
    return Added(saved, bool(added), weak, downgraded)


def check_addition(
    own_fingerprint: str,
    pem: bytes | str,
    address: str | None,
    name: str | None,
    source: str = "the public key",
):
    """The checks of ``add_contact`` that need no store (a command runs them before it
    asks the password): the name, the address and the peer key, tidied."""
    name = check_name(name)
    canonical = str(parse_address(address)) if address else None
    data = pem.encode("utf-8", "replace") if isinstance(pem, str) else pem
    key = keys.load_peer_key(data, source=source)
    if key.fingerprint == own_fingerprint:
        raise UserError(f"{source} is your own public key; add your peer's key instead")
    return name, canonical, key


def rename_contact(store: Store, query: str, new_name: str | None) -> Peer:
    """Give a contact another name (None: none); the contact as stored."""
    peer = resolve_peer(store, query)
    store.set_name(peer.fingerprint, check_name(new_name))
    return store.get_peer(peer.fingerprint)


def block_contact(store: Store, query: str, blocked: bool) -> Peer:
    """Block (or unblock) a contact: while blocked, its handshakes and v1 envelopes are
    refused as a stranger's, before any private-key work, and nothing is dialled to it.
    What is queued for it stays queued, and goes out once it is unblocked."""
    peer = resolve_peer(store, query)
    store.set_blocked(peer.fingerprint, blocked)
    return store.get_peer(peer.fingerprint)


def remove_contact(store: Store, query: str) -> Peer:
    """Forget a contact with its history and everything still owed to it."""
    peer = resolve_peer(store, query)
    store.remove_peer(peer.fingerprint)
    return peer


class Book:
    """The address book and outbox of a home whose node is not running."""

    def __init__(self, store: Store, own_fingerprint: str) -> None:
        self._store, self.own = store, own_fingerprint

    def contacts(self) -> list[Peer]:
        return self._store.list_peers()

    @property
    def locked(self) -> bool:
        """Opened without the store key while what people wrote is sealed: names read
        as a placeholder and cannot be matched or written (``open_book`` with the key)."""
        return self._store.locked

    def add(self, pem: bytes | str, address: str | None, name=None, protocol=None, **kw) -> Added:
        return add_contact(self._store, self.own, pem, address, name, protocol, **kw)

    def resolve(self, query: str) -> Peer:
        return resolve_peer(self._store, query)

    def history(self, query: str, limit: int = 50):
        """The last ``limit`` messages with a contact, oldest first, and its key changes
        ((seq, old fp, new fp, applied at), the audit trail)."""
        peer = resolve_peer(self._store, query)
        rows = self._store.history(peer.fingerprint, limit, None)
        return peer, rows, self._store.key_history(peer.fingerprint)

    def owed(self, query: str) -> int:
        """Messages still owed to a contact (what removing it drops)."""
        return self._store.owed_count(resolve_peer(self._store, query).fingerprint)

    def clear(self, query: str) -> Peer:
        """Erase the history with a contact (``Store.delete_history``); the contact."""
        peer = resolve_peer(self._store, query)
        self._store.delete_history(peer.fingerprint)
        return peer

    def rename(self, query: str, new_name: str | None) -> Peer:
        return rename_contact(self._store, query, new_name)

    def receipts(self, query: str, allowed: bool) -> Peer:
        """Allow or stop read receipts with a contact (the node reads it at start)."""
        peer = resolve_peer(self._store, query)
        self._store.set_receipts(peer.fingerprint, allowed)
        return peer

    def keep_history(self, query: str, keep: bool) -> Peer:
        """Turn the history with a contact on or off (the node reads it at start)."""
        peer = resolve_peer(self._store, query)
        self._store.set_keep_history(peer.fingerprint, keep)
        return self._store.get_peer(peer.fingerprint)

    def block(self, query: str, blocked: bool = True) -> Peer:
        return block_contact(self._store, query, blocked)

    def remove(self, query: str) -> Peer:
        return remove_contact(self._store, query)

    def queue(self, query: str, text: str) -> tuple[Peer, bytes]:
        """Leave a message in the outbox; the node sends it when it next runs.
        The peer it is for, and the message's id."""
        check_text(text)
        target = resolve_peer(self._store, query)
        if not target.contact:
            raise UserError(
                f"{target.fingerprint[:8]} is in a group with you, not a contact; add them to write directly"
            )
        now_ms, message_id = int(time.time() * 1000), new_id()
        self._store.enqueue_outgoing([(target.fingerprint, message_id, text, now_ms)])
        return target, message_id

    def queue_reply(
        self, query: str, text: str, ref: str, direction: str | None = None
    ) -> tuple[Peer, bytes, bytes]:
        """Leave in the outbox a message that quotes the one ``ref`` names in the
        conversation (``lookup.find_message``), as ``Node.send`` with ``reply`` would.
        The peer, the new message's id and the quoted one's."""
        check_text(text)
        target = _writable(resolve_peer(self._store, query))
        if target.protocol == "v1":
            raise UserError("replies need Enclave's own protocol; this peer speaks only v1")
        quoted = find_message(self._store, target.fingerprint, ref, direction).id
        if len(quoted) != 16:
            raise UserError("that message came from the original client: it cannot be quoted")
        now_ms, message_id = int(time.time() * 1000), new_id()
        self._store.enqueue_outgoing([(target.fingerprint, message_id, text, now_ms, None, quoted)])
        return target, message_id, quoted

    def delete_message(self, query: str, ref: str, direction: str | None = None):
        """Delete one settled message here (``api_messages.delete_one``: the node's
        rules); the peer and the message it was."""
        from enclave.node.api_messages import delete_one

        peer = resolve_peer(self._store, query)
        return peer, delete_one(self._store, peer.fingerprint, ref, direction)

    def queue_timer(self, query: str, seconds: int) -> Peer:
        """Leave a TIMER (disappearing messages) in the outbox, applied here at once as
        the node would; it goes to the contact when the node next runs."""
        from enclave.protocol.messages import timer_allowed

        target = resolve_peer(self._store, query)
        if not target.contact or target.blocked or target.revoked:
            raise UserError("disappearing messages are set with a contact you can write to")
        if target.protocol == "v1":
            raise UserError(
                "disappearing messages need Enclave's own protocol; this peer speaks only v1"
            )
        if not timer_allowed(seconds):
            raise UserError("a timer is off or between 30 seconds and 4 weeks")
        now_ms, message_id = int(time.time() * 1000), new_id()
        row = (target.fingerprint, message_id, "", now_ms, None, None, seconds)
        self._store.enqueue_outgoing([row])
        return self._store.get_peer(target.fingerprint)

    def groups(self) -> list:
        """Every group kept here (``GroupInfo``), its log checked whole."""
        from enclave.node.group_book import group_infos

        return group_infos(self._store, self.own)

    def queue_group(self, query: str, text: str) -> tuple[str, int]:
        """Leave a post for a group in the outbox; (the group's name, copies queued)."""
        from enclave.node.group_book import queue_post

        check_text(text)
        return queue_post(self._store, self.own, query, text)

    def set_group_timer(self, query: str, seconds: int, private_key):
        """Set a group's disappearing-messages timer with no node running (an admin's
        record, signed with ``private_key``); the group's ``GroupInfo``."""
        from enclave.node.group_book import set_timer

        return set_timer(self._store, private_key, query, seconds)

    def queue_file(self, query: str, path: str):
        """Offer a file with no node running; the node offers it when it next runs."""
        from enclave.node.api_files import queue_file

        target = resolve_peer(self._store, query)
        return target, queue_file(self._store, target, path)


def _writable(peer: Peer) -> Peer:
    """``peer``, when a message may be written to it (``Node.send``'s checks)."""
    label = peer.name or keys.group(peer.fingerprint, 4)
    if not peer.contact:
        raise UserError(
            f"{peer.fingerprint[:8]} is in a group with you, not a contact; add them to write directly"
        )
    if peer.blocked:
        raise UserError(f"{label} is blocked; unblock it to send (/unblock or enclave unblock)")
    if peer.revoked:
        raise UserError(f"{label} revoked this key; pair again if they have a new one")
    return peer


@contextlib.contextmanager
def open_book(db_path, own_fingerprint: str = "", store_key: bytes | None = None):
    """The book of a home with no node running (the store opened for this block).
    ``store_key`` (``Identity.store_key``): what the book reads or writes of what people
    wrote needs it once the history is sealed."""
    with Store.open(db_path, key=store_key) as store:
        yield Book(store, own_fingerprint)
