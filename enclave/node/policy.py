"""The node's per-connection policy: the handshake's questions and what strangers may cost.

Rules:
- ``NodePolicy`` answers the questions of ``enclave.protocol.policy.Policy`` from the
  address book in the store, re-read by ``reload`` whenever a peer is added, changed or
  removed; ``Sessions`` owns one and every ``Connection`` asks it.
- Signature verifies are paid from budgets (PROTOCOL.md b.4): a global bucket and one per
  source address, the global one peeked first so a refusal spends nothing. An address
  that authenticated as a contact lately (``vouch``), or that one of the contact's
  addresses names as an IP literal, verifies from a share of its own for that contact
  (PROTOCOL.md departure 13).
- Private-key work is admitted only while a crypto slot is free and the peer's handshake
  bucket has a token; v1 envelopes may hold at most half the slots.
- v1 envelopes seen since start are kept in memory as the cheap front of the store's seen
  table; the store decides, on a crypto thread, never on the event loop.
- Store writes that nothing waits for run on the store's writer thread (``background``).
  A peer's bookkeeping (its handshake high-water mark, its last-seen time) is made
  with ``mark``: the marks made while an earlier write of them waits or runs go into
  one transaction, one row update per peer (the highest mark, the latest time).
"""

import ipaddress
import logging
import sqlite3
import threading
import time

from enclave.errors import LocalFailure, PeerError
from enclave.node.budgets import KeyedBuckets, Slots, TokenBucket
from enclave.node.transport import source_key
from enclave.protocol.crypto import PeerKey
from enclave.protocol.policy import HANDSHAKE_SEEN_TTL_MS, Policy

log = logging.getLogger("enclave.node.policy")
V1_RECENT = 65_536  # v1 ids kept in memory as the cheap front of the seen table
VOUCH_TTL = 6 * 3600.0  # an authenticated (address, contact) pair keeps its share this long
VOUCH_MAX = 4096  # pairs remembered (oldest forgotten first)
VOUCHED_SHARE = 40  # a vouched pair's verify budget, in multiples of an address's


def _log_failure(fut) -> None:
    """A background write's end (on the writer thread): a failure is logged."""
    err = None if fut.cancelled() else fut.exception()
    if err is not None:
        log.error("background store write failed: %s: %s", type(err).__name__, err)


def _hosts(addresses) -> set[str]:
    """The sources (``transport.source_key``) of a contact's addresses that are IP
    literals; a host name says nothing about where its connections come from."""
    found = set()
    for address in addresses:
        host = address.rpartition(":")[0].strip("[]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            continue
        found.add(source_key(host))
    return found


class NodePolicy(Policy):
    """The handshake's questions, answered from the store and the node's budgets."""

    def __init__(self, store, own_fp: bytes, settings, now: float) -> None:
        self.store, self.own, self.s = store, own_fp, settings
        self.keys: dict[bytes, PeerKey] = {}
        self.floors: dict[bytes, int] = {}
        self.proto: dict[bytes, tuple[str, bool, bool]] = {}  # proto, v2_seen, blocked
        self._pems: dict[bytes, str] = {}  # the stored key text each of ``keys`` came from
        self.seen: dict[tuple[bytes, bytes], int] = {}
        self.v1_recent: dict[tuple[bytes, str], None] = {}  # oldest first, V1_RECENT at most
        self.verify_global = TokenBucket(settings.verify_rate, settings.verify_burst, now)
        self.verify_per_address = KeyedBuckets(
            settings.verify_rate_per_address, settings.verify_burst_per_address
        )
        # (address, fingerprint) pairs that authenticated lately -> until when (monotonic)
        self.vouched: dict[tuple[object, bytes], float] = {}
        self.vouched_sources: dict[object, float] = {}  # the same, by address alone
        self.hosts: dict[bytes, set[str]] = {}  # contact -> sources of its known addresses
        self.host_sources: set[str] = set()
        self.verify_vouched = KeyedBuckets(
            VOUCHED_SHARE * settings.verify_rate_per_address,
            VOUCHED_SHARE * settings.verify_burst_per_address,
        )
        self.handshakes_per_peer = KeyedBuckets(
            settings.handshake_rate_per_peer, settings.handshake_burst_per_peer
        )
        self.slots = Slots(settings.crypto_queue)
        self.writer = None  # the store's writer thread, set by the node
        self._marks: dict[str, tuple[int | None, float | None]] = {}  # not yet written
        self._marks_lock = threading.Lock()  # taken by the loop and the writer thread
        # Members of our groups who are not contacts (enclave.node.groups): their
        # handshakes are taken while we share a group, for the group's traffic only.
        self.group_members: set[bytes] = set()
        self.handover = None  # our own retired keys (enclave.node.key_handover), by the node
        self.reload()

    def reload(self) -> None:
        """Re-read the address book (after a peer was added, changed or removed).

        The tables are rebuilt from the store: a removed peer's key, floor and marks go
        at once, so its next handshake or v1 envelope is refused as unknown; a key that
        changed is parsed again, and one that does not hash to its row's fingerprint is
        refused. A peer that stays keeps its boot floor and, once seen speaking v2, its
        v2 mark (the store's copy of that mark may still be on its way)."""
        keys, pems, floors, proto, hosts = {}, {}, {}, {}, {}
        for peer in self.store.list_peers(members=True):
            fp = bytes.fromhex(peer.fingerprint)
            if not peer.contact and fp not in self.group_members:
                continue  # a member of a group we no longer share: a stranger again
            if peer.revoked:
                continue  # its owner revoked the key: a stranger's from now on
            key = self._key(fp, peer.public_key)
            if key is None:
                continue
            keys[fp], pems[fp] = key, peer.public_key
            hosts[fp] = _hosts(peer.dial_addresses)
            # The boot floor: the hwm persisted before this start (or before it was added).
            floors[fp] = self.floors.get(fp, peer.hwm_ms)
            v2_seen = peer.v2_seen or (fp in self.proto and self.proto[fp][1])
            proto[fp] = (peer.proto, v2_seen, peer.blocked)
        self.keys, self._pems, self.floors, self.proto = keys, pems, floors, proto
        self.hosts = hosts
        self.host_sources = {h for found in hosts.values() for h in found}

    def _key(self, fp: bytes, pem: str) -> PeerKey | None:
        known = self.keys.get(fp)
        if known is not None and self._pems.get(fp) == pem:
            return known
        try:
            key = PeerKey.from_pem(pem)
        except ValueError as err:
            log.warning("peer %s has an unusable key: %s", fp.hex()[:16], err)
            return None
        if key.fingerprint != fp:
            log.warning("peer %s: its stored key has another fingerprint", fp.hex()[:16])
            return None
        return key

    def forget_v2_seen(self, fp: bytes) -> None:
        """The user forced the peer back to v1: its v1 envelopes are welcome again (the
        store forgot the mark too; reload keeps only marks the store may not have yet)."""
        info = self.proto.get(fp)
        if info is not None:
            self.proto[fp] = (info[0], False, info[2])

    def peer_key(self, fp):
        info = self.proto.get(fp)
        return None if info is None or info[2] else self.keys.get(fp)

    def retired_identity(self, fp):
        return None if self.handover is None else self.handover.retired_identity(fp)

    def boot_floor(self, fp):
        return self.floors.get(fp, 0)

    def handshake_seen(self, fp, hs_id):
        return (fp, hs_id) in self.seen

    def take_verify_token(self, source, fp):
        now = time.monotonic()
        if self.vouched.get((source, fp), 0.0) > now or source in self.hosts.get(fp, ()):
            # This address authenticated as this contact lately: its verifies come from
            # a share of its own, which no flood from elsewhere can drain (PROTOCOL.md
            # departure 13). Claiming the contact from another address gains nothing.
            return self.verify_vouched.take((source, fp), now)
        # The global bucket is peeked first so a refusal spends no per-source token.
        if self.verify_global.peek(now) < 1:
            return False
        return self.verify_per_address.take(source, now) and self.verify_global.take(now)

    def vouch(self, source, fp) -> None:
        """``source`` just authenticated as ``fp`` (a session, or a signed envelope)."""
        until = time.monotonic() + VOUCH_TTL
        for table, key in ((self.vouched, (source, fp)), (self.vouched_sources, source)):
            table.pop(key, None)  # re-inserted last: each dict stays oldest first
            table[key] = until
            if len(table) > VOUCH_MAX:
                del table[next(iter(table))]

    def vouched_source(self, source) -> bool:
        """Some contact authenticated from ``source`` lately, or lives there (its given
        or learned address is an IP of ``source``)."""
        return (
            self.vouched_sources.get(source, 0.0) > time.monotonic() or source in self.host_sources
        )

    def record_handshake(self, fp, hs_id, ts_ms):
        self.seen[(fp, hs_id)] = ts_ms + HANDSHAKE_SEEN_TTL_MS
        self.mark(fp, hwm_ms=ts_ms)

    def admit_private_op(self, fp):
        if not self.slots.try_acquire():
            return False
        if not self.handshakes_per_peer.take(fp, time.monotonic()):
            self.slots.release()
            return False
        return True

    def background(self, fn, *args) -> None:
        """A store write that nothing waits for, off the event loop (on the writer): the
        loop hears nothing back (a failure is logged there)."""
        if self.writer is None:
            fn(*args)
        else:
            self.writer.submit(fn, *args).add_done_callback(_log_failure)

    def mark(self, fp: bytes, hwm_ms: int | None = None, seen: float | None = None) -> None:
        """Raise ``fp``'s handshake high-water mark to ``hwm_ms`` and/or set its last-seen
        time, in the background: joined to the marks not yet written (see the rules)."""
        key = fp.hex()
        with self._marks_lock:
            first = not self._marks
            old = self._marks.get(key)
            if old is not None:
                if hwm_ms is None or (old[0] is not None and old[0] > hwm_ms):
                    hwm_ms = old[0]
                if seen is None:
                    seen = old[1]
            self._marks[key] = (hwm_ms, seen)
        if first:  # else the write that takes them is queued already
            self.background(self._write_marks)

    def _write_marks(self) -> None:
        """On the writer: every mark made so far, one transaction."""
        with self._marks_lock:
            marks, self._marks = self._marks, {}
        if marks:
            self.store.mark_peers(marks)

    def release_private_op(self, fp):
        self.slots.release()

    def prune(self, now_ms: int) -> None:
        for key in [k for k, expiry in self.seen.items() if expiry < now_ms]:
            del self.seen[key]

    # legacy v1 (PROTOCOL.md d)
    def v1_sender(self, fp):
        info = self.proto.get(fp)
        if info is None or info[2] or info[1] or info[0] == "v2" or fp == self.own:
            return None
        return self.keys.get(fp)

    def v1_seen(self, fp, message_id):
        # The in-memory front of step 6 (asked on the loop): envelopes recorded since
        # start. The store's seen table decides, in v1_record, off the loop.
        return (fp, message_id) in self.v1_recent

    def admit_v1(self, fp):
        return self.v1_slot_free() and self.slots.try_acquire()

    def v1_slot_free(self) -> bool:
        # Envelopes wait for a slot rather than hear "busy" (the original client never
        # reads), but they may hold only half the slots: handshakes keep the rest.
        return self.slots.in_use < max(1, self.slots.capacity // 2)

    def v1_record(self, fp, message_id, ts, key_hash):
        """Runs inside the envelope's job, on a crypto thread (never on the loop)."""
        try:
            holder = self.store.v1_record(fp.hex(), message_id, ts, key_hash)
        except (sqlite3.Error, OSError) as err:
            raise LocalFailure("store_error", f"v1 seen table: {err}") from None
        if holder == fp.hex():
            raise PeerError("v1_replay")
        if holder is not None:
            raise PeerError("v1_resigned", f"key first seen from {holder[:16]}")

    def v1_received(self, fp: bytes, message_id: str) -> None:
        """On the loop, once an envelope was recorded and opened: the front learns it."""
        recent = self.v1_recent
        recent[(fp, message_id)] = None
        if len(recent) > V1_RECENT:
            del recent[next(iter(recent))]
