"""The rows the store hands out: frozen records, so a caller cannot mistake one for a
live view of the file."""

from __future__ import annotations

from dataclasses import dataclass

PROTOS = ("auto", "v1", "v2")


@dataclass(frozen=True)
class Peer:
    fingerprint: str
    name: str | None
    public_key: str
    address: str | None
    verified: bool
    proto: str
    v2_seen: bool
    blocked: bool
    hwm_ms: int
    added_at: float
    last_seen: float | None
    # Where the peer's last authenticated session came from, when that was not
    # ``address`` (the one the user gave): dialled first, ``address`` is the fallback.
    learned_address: str | None = None

    @property
    def dial_addresses(self) -> list[str]:
        """Where to dial this peer, in order: the learned address, then the given one."""
        return [a for a in dict.fromkeys((self.learned_address, self.address)) if a]

    @property
    def address_text(self) -> str | None:
        """The addresses as a person reads them; both when a learned one differs."""
        if self.learned_address and self.address and self.learned_address != self.address:
            return f"{self.learned_address} (learned), {self.address} (given)"
        return self.learned_address or self.address

    @property
    def protocol(self) -> str:
        """What the node speaks to this peer: 'v1' (marked legacy by the user), 'v2'
        (marked, or seen speaking it once, which rules out v1 for good) or 'auto'."""
        if self.proto == "v1":
            return "v1"
        if self.proto == "v2" or self.v2_seen:
            return "v2"
        return "auto"


@dataclass(frozen=True)
class Message:
    rowid: int
    peer: str
    direction: str  # 'in' | 'out'
    id: bytes
    body: str | None  # None once deleted
    created_ms: int
    stored_ms: int
    state: str
    delivered_ms: int | None
    reason: str | None
    legacy: bool


@dataclass(frozen=True)
class OutboxItem:
    rowid: int
    peer: str
    id: bytes
    body: str
    created_ms: int
    state: str  # 'queued' | 'sent'
    legacy: bool
