"""The questions a Connection asks its owner during a handshake (PROTOCOL.md b.4, d).

The protocol core decides the order of the checks; the owner (the node) answers
them from its address book, its budgets and its store. ``MemoryPolicy`` answers
them from memory: for tests, benchmarks and in-process pairs.
"""

from ..errors import PeerError
from .crypto import PeerKey

HANDSHAKE_SEEN_TTL_MS = 600_000


class Policy:
    """Base class: every answer is the safe refusal until a subclass says otherwise."""

    def peer_key(self, fp: bytes) -> PeerKey | None:
        """The key of a known, unblocked peer that may speak v2 (check 6)."""
        return None

    def retired_identity(self, fp: bytes):
        """Our own earlier key ``fp`` (an ``Identity``) if it still answers handshakes:
        a key we handed over, while some contact may not have switched (check 4)."""
        return None

    def boot_floor(self, fp: bytes) -> int:
        """Handshake timestamps at or below this (ms) are stale: the peer's persisted
        high-water mark as loaded at boot (check 5)."""
        return 0

    def handshake_seen(self, fp: bytes, hs_id: bytes) -> bool:
        return True

    def take_verify_token(self, source: object, fp: bytes) -> bool:
        """Budgets for one public-key verify (check 8) of a signature claimed to be
        ``fp``'s, arriving from ``source``."""
        return False

    def record_handshake(self, fp: bytes, hs_id: bytes, ts_ms: int) -> None:
        """After a verified HS1: remember (fp, hs_id) until ts + 600 s; raise the hwm."""

    def admit_private_op(self, fp: bytes) -> bool:
        """Per-peer authenticated budget and a private-op slot (check 11)."""
        return False

    def release_private_op(self, fp: bytes) -> None:
        """Give back an admission that will not be used (no job was started)."""

    def v1_sender(self, fp: bytes) -> PeerKey | None:
        """A known peer that may still send legacy v1 (never spoke v2, not us)."""
        return None

    def v1_seen(self, fp: bytes, message_id: str) -> bool:
        """Step 6, asked on the owner's loop: answer from memory, never block. The
        authoritative check is ``v1_record``'s."""
        return True

    def admit_v1(self, fp: bytes) -> bool:
        """A private-op slot for a verified envelope (step 10). False means "not now":
        the connection asks again shortly, until its envelope deadline."""
        return False

    def v1_record(self, fp: bytes, message_id: str, ts: float, key_hash: bytes) -> None:
        """Step 9, run inside the envelope's job (any thread; it may block on a store):
        persist (sender, id) and (key_hash -> sender) at once. Raises
        ``PeerError("v1_replay")`` if (sender, id) was recorded before, and
        ``PeerError("v1_resigned", ...)`` if another sender presented this wrapped key;
        a local failure raises ``LocalFailure``. Nothing is recorded when it raises."""
        raise PeerError("v1_replay", "no v1 record kept")


class MemoryPolicy(Policy):
    """Everything in memory, generous budgets unless told otherwise."""

    def __init__(
        self, peers: list[PeerKey] = (), *, v1_peers: list[PeerKey] = (), retired=()
    ) -> None:
        self.peers = {p.fingerprint: p for p in peers}
        self.retired = {i.fingerprint: i for i in retired}  # our own earlier Identities
        self.v1_peers = {p.fingerprint: p for p in v1_peers}
        self.floors: dict[bytes, int] = {}
        self.hwm: dict[bytes, int] = {}
        self.seen: dict[tuple[bytes, bytes], int] = {}
        self.v1_seen_ids: set[tuple[bytes, str]] = set()
        self.v1_keys: dict[bytes, bytes] = {}
        self.verify_tokens: int | None = None  # None: unlimited
        self.private_admits: int | None = None
        self.verifies_taken = 0

    def peer_key(self, fp):
        return self.peers.get(fp)

    def retired_identity(self, fp):
        return self.retired.get(fp)

    def boot_floor(self, fp):
        return self.floors.get(fp, 0)

    def handshake_seen(self, fp, hs_id):
        return (fp, hs_id) in self.seen

    def take_verify_token(self, source, fp):
        if self.verify_tokens is not None:
            if self.verify_tokens <= 0:
                return False
            self.verify_tokens -= 1
        self.verifies_taken += 1
        return True

    def record_handshake(self, fp, hs_id, ts_ms):
        self.seen[(fp, hs_id)] = ts_ms + HANDSHAKE_SEEN_TTL_MS
        self.hwm[fp] = max(self.hwm.get(fp, 0), ts_ms)

    def admit_private_op(self, fp):
        if self.private_admits is None:
            return True
        if self.private_admits <= 0:
            return False
        self.private_admits -= 1
        return True

    def release_private_op(self, fp):
        if self.private_admits is not None:
            self.private_admits += 1

    def v1_sender(self, fp):
        return self.v1_peers.get(fp)

    def v1_seen(self, fp, message_id):
        return (fp, message_id) in self.v1_seen_ids

    def admit_v1(self, fp):
        return self.admit_private_op(fp)

    def v1_record(self, fp, message_id, ts, key_hash):
        other = self.v1_keys.get(key_hash)
        if other is not None and other != fp:
            raise PeerError("v1_resigned", f"key first seen from {other.hex()[:16]}")
        if (fp, message_id) in self.v1_seen_ids:
            raise PeerError("v1_replay")
        self.v1_seen_ids.add((fp, message_id))
        self.v1_keys[key_hash] = fp
