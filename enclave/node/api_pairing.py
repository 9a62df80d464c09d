"""The Node API of pairing by short code (``node.pairing``): invite, join, cancel.

Rules:
- ``invite()`` opens an invitation and gives its code at once; ``Invitation.result``
  resolves to a ``Paired`` (a new verified contact, or why it failed) within
  ``pairing.LIFETIME_S``. ``join(code, address)`` runs the joiner's side against the
  node at ``address`` and gives the new contact, or raises a one-line ``UserError``.
- Either way the new contact is added like ``add_contact`` (sessions, presence and the
  faces follow at once) and marked verified: both sides proved the code.
- This node's card: its public key, ``display_name`` from the settings, and where it
  listens (every local address it can name on its port).
"""

from __future__ import annotations

import socket

from enclave.errors import UserError
from enclave.node.pairing import Invitation, Paired, PairingEnded  # noqa: F401 - the faces' types
from enclave.protocol import pairing as P
from enclave.protocol.crypto import spki_pem


class PairingApi:
    """Mixed into Node: needs ``pairing``, ``identity``, ``address``, ``settings``,
    ``store`` and ``add_contact``."""

    def invite(self) -> Invitation:
        """Open an invitation; its ``code`` is read to the other person."""
        self._need_pairing()
        return self.pairing.invite()

    def cancel_invite(self, nameplate: int) -> bool:
        self._need_pairing()
        return self.pairing.cancel(nameplate)

    def invitations(self) -> list[Invitation]:
        return list(self.pairing.open.values()) if self.pairing is not None else []

    async def join(self, code: str, address: str | None = None) -> Paired:
        """Join the invitation ``code`` of the node listening at ``address``, or (None)
        of the one node on the LAN that announces its number (discovery)."""
        self._need_pairing()
        return await self.pairing.join(code, address)

    def _need_pairing(self) -> None:
        if self.pairing is None:
            raise UserError("the node is not running")

    def _own_card(self) -> P.Card:
        host, port = self.address
        return P.card(
            spki_pem(self.identity.peer_key.key), self.settings.display_name, _addresses(host, port)
        )

    def _add_paired(self, card: P.Card, address: str | None) -> Paired:
        """A verified contact from a pairing's card (its name if valid and free)."""
        if card.fp.hex() == self.fingerprint:
            raise UserError("the other side offered your own key; nothing was added")
        try:
            added = self.add_contact(
                card.key_pem, address, name=card.name or None, source="the card"
            )
        except UserError:  # the name is taken or not a peer name: add it without one
            added = self.add_contact(card.key_pem, address, source="the card")
        self.store.set_verified(added.peer.fingerprint, True)
        return Paired(added.peer.fingerprint, added.peer.name)


def _addresses(host: str, port: int) -> list[str]:
    """Where this node can be reached on ``port``: its listening host, or every address
    of this machine's name when it listens on all of them (loopback last)."""
    if host not in ("0.0.0.0", "::", ""):
        return [_join(host, port)]
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, proto=socket.IPPROTO_TCP)
    except OSError:
        infos = []
    hosts = dict.fromkeys(info[4][0] for info in infos if "%" not in info[4][0])
    ordered = sorted(hosts, key=lambda h: h.startswith(("127.", "::1")))
    return [_join(h, port) for h in ordered[: P.MAX_ADDRESSES]] or [_join("127.0.0.1", port)]


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
