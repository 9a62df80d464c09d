"""The node: one running Enclave, and the API every face uses.

- ``api``: ``Node``, the one object the faces call, and the records it returns.
- ``events``: what the node publishes (``MessageReceived``, ``DeliveryChanged``, ...).
- ``book``: the address book rules shared by the node and the offline commands (names,
  message text, adding a contact, protocol changes).
- ``sessions``: the sessions with peers (``Sessions``): accepting, links, presence
  and parking.
- ``dialing``: when and how often a peer is dialled (``Dialer``): for what waits for
  it, and to keep a session to every contact (presence).
- ``policy``: the per-connection policy (``NodePolicy``): the handshake's questions,
  verify budgets, vouching, the v1 seen front.
- ``delivery``: the fate of every message, outbox to acknowledgement.
- ``outgoing``: the messages delivery holds (``Out``, what a link carries).
- ``commits``: one commit cycle: what it writes, and the received rows with their
  dedupe keys.
- ``transport``: the asyncio link between a socket and a sans-IO connection.
- ``legacy_send``: sending to the original client (v1 envelopes).
- ``pairing``: pairing by short code, the node's part (invitations, joining).
- ``budgets``, ``quotas``: what strangers and contacts may cost this node.
- ``settings``, ``addresses``, ``lookup``, ``message_ids``, ``display``: the small
  rules the rest shares.

``from enclave.node import Node`` imports the heavy parts only when a name is asked for,
so ``enclave.node.settings`` stays light for the command line.
"""

from importlib import import_module

# The API's names, imported from .api on first use (a submodule such as ``settings``
# is not among them, so importing it never loads the rest).
_API = {
    "Node",
    "Sent",
    "PeerStatus",
    "Retried",
    "Added",
    "DowngradeRefused",
    "check_name",
    "check_text",
    "check_source",
    "safe_name",
    "UnsafeName",
    "GroupInfo",
    "GroupMember",
    "GroupSent",
    "Invitation",
    "Paired",
    "PairingEnded",
    "parse_code",
    "Nearby",
    "browse_nearby",
    "find_inviter",
    "KeyRotated",
}


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.api"), name)
