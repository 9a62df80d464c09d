"""The Node's LAN discovery calls, for both faces and for pairing (issue 19;
enclave.node.discovery is the engine, enclave.node.nearby its rules).

Rules:
- ``nearby()`` lists the nodes heard on the LAN lately: a contact by its name, any
  other fingerprint as unknown. Unknown ones are listed, never trusted or stored.
- A contact (not blocked, not marked v1) heard at an address it is not dialled at,
  while it is offline, is tried there (``Dialer.try_seen``): when heard, when added
  after it was heard, and when a dial at its stored addresses fails. Only a handshake
  there that authenticates it stores the address. Our own fingerprint is ignored.
- ``set_invites`` announces the nameplates of the invitations open right now;
  ``find_inviter`` (no node needed) finds the nodes that announce one.
- ``discovery_state`` says whether it runs: "on", "starting", "blocked" (the
  ``NodeProblem`` said why, once) or "off: <why>".
"""

from __future__ import annotations

import time

from enclave.node import discovery
from enclave.node.discovery import BLOCKED, find_inviter  # noqa: F401 - the faces' and pairing's
from enclave.node.events import ContactChanged
from enclave.node.nearby import Nearby


async def browse_nearby(seconds: float, own_fp: str = "") -> list[Nearby]:
    """Without a node: listen ``seconds`` and list what was heard (none known as contacts:
    the caller labels them)."""
    table = await discovery.browse(seconds, own_fp)
    return table.listing(time.time(), {})


class DiscoveryApi:
    """Mixed into ``Node``: ``self.discovery`` is the engine (None when off)."""

    async def _start_discovery(self, host: str) -> None:
        if not self.settings.discovery:
            self._discovery_off = "off: --no-discovery or discovery = false"
            return
        self.discovery = discovery.Discovery(
            self.fingerprint, host, self.address[1], self._publish, self._heard
        )
        await self.discovery.start()
        self.sessions.dialer.heard = self._heard_addresses
        # A contact added (or unblocked) after it was heard is tried at once, too (one
        # subscription, though a key rotation starts the announcement again).
        if not getattr(self, "_heard_subscribed", False):
            self._heard_subscribed = True
            self.subscribe(self._contact_changed, progress=False)

    def _contact_changed(self, event) -> None:
        if isinstance(event, ContactChanged) and event.change in ("added", "updated", "unblocked"):
            if self.discovery is not None and event.peer in self.discovery.table.entries:
                self._heard(event.peer)

    def _heard_addresses(self, peer: bytes) -> tuple[str, ...]:
        entry = self.discovery.table.entries.get(peer.hex()) if self.discovery else None
        return entry.addresses if entry is not None else ()

    async def _stop_discovery(self) -> None:
        if self.discovery is not None:
            self.sessions.dialer.heard = lambda peer: ()
            await self.discovery.stop()
            self.discovery = None

    @property
    def discovery_state(self) -> str:
        if self.discovery is None:
            return getattr(self, "_discovery_off", "off")
        return self.discovery.state

    @property
    def discovery_problem(self) -> str | None:
        """The one-line notice when multicast is blocked, else None."""
        return BLOCKED if self.discovery_state == "blocked" else None

    def nearby(self) -> list[Nearby]:
        """The nodes heard on the LAN lately, newest first (see the rules)."""
        if self.discovery is None:
            return []
        contacts = {p.fingerprint: p.name for p in self.store.list_peers() if p.contact}
        return self.discovery.table.listing(time.time(), contacts)

    def set_invites(self, nameplates) -> None:
        """Announce the nameplates (1-99) of the invitations open now; () for none."""
        if self.discovery is not None:
            self.discovery.set_invites(nameplates)

    def _heard(self, fingerprint: str) -> None:
        """A checked announcement of ``fingerprint``: try a contact there if it is
        offline and not dialled at that address (nothing is stored here)."""
        peer = self.store.get_peer(fingerprint)
        if peer is None or not peer.contact or peer.blocked or peer.proto == "v1":
            return
        fp = bytes.fromhex(fingerprint)
        if self.sessions is None or self.sessions.online(fp):
            return
        known = set(peer.dial_addresses)
        for address in self._heard_addresses(fp):
            if address not in known:
                self.sessions.dialer.try_seen(fp, address)
                return  # one address at a time; the next announcement offers the rest
