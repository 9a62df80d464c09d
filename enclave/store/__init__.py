"""The one durable place for peers, history, the outbox, v1 seen IDs, file transfers and
groups (SQLite, WAL).

Rules:
- One store: nothing else in Enclave writes state to disk, and nothing else speaks SQL.
  Its files are the database, SQLite's companions and the sending log.
- Short transactions. Every write is one ``BEGIN IMMEDIATE`` ... ``COMMIT``; batch
  methods take many rows in one transaction (multi-row INSERTs for new messages,
  ``executemany`` or rowid ranges for updates; no per-row commit, no per-row query), so
  the node can group-commit thousands of messages at once.
- Durability promise: once a write method returns, its transaction is on disk. An ack
  is sent only after ``store_incoming`` returns, so ``synchronous=FULL`` by default: WAL
  with NORMAL survives a process crash but can lose the last commits on power loss
  (the user may choose it: ``store_sync = "normal"``, ``Store.open(path, sync=...)``). If a
  method raises, its whole transaction was rolled back and nothing of it is stored
  (``store_incoming`` raises the sqlite3 error itself; the caller must then not ack).
- Never overwrite. An existing file is first read through a read-only connection: a
  corrupt file, a foreign SQLite file, or one from a newer Enclave raises ``UserError``
  and is left byte for byte as it was. A file is created only where none exists, by us,
  with mode 0600, before SQLite opens it. Schema changes are forward migrations only
  (``enclave.store.migrations``).
- Time always comes in as arguments; the store never reads a clock.
- Errors: ``UserError`` for a person's mistake or a file they must deal with;
  ``ValueError``/``TypeError`` for a caller's programming error.
- One connection per Store; a lock serialises calls, so any one thread at a time may use it.

Modules:
- ``records``: the rows it hands out (``Peer``, ``Message``, ``OutboxItem``, ``Transfer``,
  ``GroupRow``, ``GroupLine``...).
- ``core``: opening and closing, the write transaction, the peer id cache and the
  rowid counter.
- ``peers``, ``messages`` (new rows and the commit cycle), ``outbox``, ``history``,
  ``transfers``, ``groups``, ``v1_seen``, ``key_chain``, ``handover``: the methods by table, as mixins over
  ``core.StoreCore``.
- ``checks``: argument checks.
- ``dbfile``: creating the file, refusing one we must not write, connection settings.
- ``sending``: the log of new outgoing rows sent before their commit (``<store>-sending``),
  put back into the outbox by the next opening after a kill.
- ``schema``: the SQL of each schema version; ``migrations``: applying it in order.
"""

from .checks import OfferRefused
from .core import StoreCore
from .groups import GroupsMixin
from .handover import HandoverMixin
from .history import HistoryMixin
from .key_chain import KeyChain, KeyChainMixin
from .messages import MessagesMixin
from .outbox import OutboxMixin
from .peers import PeersMixin
from .records import (
    PROTOS,
    FileNote,
    FileOffer,
    GroupLine,
    GroupRow,
    Message,
    OutboxItem,
    Peer,
    SourceFile,
    Transfer,
)
from .transfers import TransfersMixin
from .v1_seen import V1SeenMixin

__all__ = [
    "PROTOS",
    "FileNote",
    "FileOffer",
    "GroupLine",
    "GroupRow",
    "KeyChain",
    "Message",
    "OfferRefused",
    "OutboxItem",
    "Peer",
    "SourceFile",
    "Store",
    "Transfer",
]


class Store(
    PeersMixin,
    MessagesMixin,
    OutboxMixin,
    GroupsMixin,
    HistoryMixin,
    TransfersMixin,
    V1SeenMixin,
    KeyChainMixin,
    HandoverMixin,
    StoreCore,
):
    """Open with ``Store.open(path)``; close with ``close()`` or a ``with`` block."""
