"""The store's tables: the SQL each schema version's step runs.

The current schema is every step applied in order (``migrations.MIGRATIONS``);
docs/STORE.md describes each version's tables and why they changed. A released step is
never edited, only followed by a new one: a database that already ran it would not run
it again, and two Enclaves would disagree on the schema.
"""

APPLICATION_ID = 0x456E636C  # "Encl": stamped by version 1, so a foreign file is refused

# Version 1: peers, messages (history and tombstones), the outbox, and the v1 replay
# tables.
V1 = (
    f"PRAGMA application_id = {APPLICATION_ID}",
    # Fingerprints are lowercase hex of SHA-256 over the canonical SPKI PEM.
    # Names are unique ignoring ASCII case; several peers may have no name.
    """CREATE TABLE peers (
        fingerprint TEXT PRIMARY KEY
            CHECK (length(fingerprint) = 64 AND fingerprint NOT GLOB '*[^0-9a-f]*'),
        name        TEXT COLLATE NOCASE UNIQUE,
        public_key  TEXT NOT NULL,
        address     TEXT,
        verified    INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
        proto       TEXT NOT NULL DEFAULT 'auto' CHECK (proto IN ('auto', 'v1', 'v2')),
        v2_seen     INTEGER NOT NULL DEFAULT 0 CHECK (v2_seen IN (0, 1)),
        blocked     INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0, 1)),
        hwm_ms      INTEGER NOT NULL DEFAULT 0,
        added_at    REAL NOT NULL,
        last_seen   REAL
    )""",
    # id: 16 random bytes (v2), or the 36 ASCII bytes of a v1 UUID string.
    # body NULL = deleted; the row stays as a tombstone so a late resend is not shown again.
    # AUTOINCREMENT: rowids only grow, so a batch can find the rows it inserted.
    """CREATE TABLE messages (
        rowid        INTEGER PRIMARY KEY AUTOINCREMENT,
        peer         TEXT NOT NULL REFERENCES peers (fingerprint) ON DELETE CASCADE,
        direction    TEXT NOT NULL,
        id           BLOB NOT NULL CHECK (typeof(id) = 'blob' AND length(id) IN (16, 36)),
        body         TEXT CHECK (typeof(body) IN ('text', 'null')),
        created_ms   INTEGER NOT NULL CHECK (typeof(created_ms) = 'integer'),
        stored_ms    INTEGER NOT NULL CHECK (typeof(stored_ms) = 'integer'),
        state        TEXT NOT NULL,
        delivered_ms INTEGER,
        reason       TEXT,
        legacy       INTEGER NOT NULL DEFAULT 0 CHECK (legacy IN (0, 1)),
        UNIQUE (peer, direction, id),
        CHECK ((direction = 'in' AND state IN ('received', 'deleted'))
            OR (direction = 'out' AND state IN ('queued', 'sent', 'delivered', 'failed', 'deleted'))),
        CHECK ((body IS NULL) = (state = 'deleted'))
    )""",
    "CREATE INDEX messages_by_peer ON messages (peer)",  # history pages (rowid is implied)
    "CREATE INDEX messages_failed ON messages (state) WHERE state = 'failed'",
    # Messages still owed to a recipient, in insertion order (seq).
    """CREATE TABLE outbox (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        message INTEGER NOT NULL UNIQUE REFERENCES messages (rowid) ON DELETE CASCADE,
        peer    TEXT NOT NULL REFERENCES peers (fingerprint) ON DELETE CASCADE
    )""",
    "CREATE INDEX outbox_by_peer ON outbox (peer, seq)",
    # v1 (seed) replay protection, kept at least 15 minutes (PROTOCOL.md d, step 9).
    """CREATE TABLE v1_seen (
        sender     TEXT NOT NULL,
        message_id TEXT NOT NULL,
        ts         REAL NOT NULL,
        PRIMARY KEY (sender, message_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX v1_seen_by_ts ON v1_seen (ts)",
    # H(encrypted_key) -> the sender that first presented it (re-signing detector).
    """CREATE TABLE v1_wrapped (
        key_hash BLOB PRIMARY KEY,
        sender   TEXT NOT NULL,
        ts       REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX v1_wrapped_by_ts ON v1_wrapped (ts)",
)

# Version 2, the lean hot path (PERFORMANCE.md): messages and the outbox name their peer
# by an INTEGER id (``peers.id``) instead of the 64-character fingerprint, rowids are
# plain INTEGER PRIMARY KEYs that the store assigns itself (no AUTOINCREMENT and its
# sqlite_sequence write per insert), and the constant CHECKs on each message row are the
# store's argument checks instead (enclave.store.checks). The outbox keeps its own order
# (``seq``) so a retried message goes to the back; it has no index by peer: it is read by
# peer only when the node starts.
V2_TABLES = (
    """CREATE TABLE peers2 (
        id          INTEGER PRIMARY KEY,
        fingerprint TEXT NOT NULL UNIQUE
            CHECK (length(fingerprint) = 64 AND fingerprint NOT GLOB '*[^0-9a-f]*'),
        name        TEXT COLLATE NOCASE UNIQUE,
        public_key  TEXT NOT NULL,
        address     TEXT,
        verified    INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
        proto       TEXT NOT NULL DEFAULT 'auto' CHECK (proto IN ('auto', 'v1', 'v2')),
        v2_seen     INTEGER NOT NULL DEFAULT 0 CHECK (v2_seen IN (0, 1)),
        blocked     INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0, 1)),
        hwm_ms      INTEGER NOT NULL DEFAULT 0,
        added_at    REAL NOT NULL,
        last_seen   REAL
    )""",
    # direction 'in' | 'out'; state: in: received | deleted, out: queued | sent |
    # delivered | failed | deleted; body NULL exactly when deleted (a tombstone, so a
    # late resend is not shown again); id 16 random bytes (v2) or a 36-byte v1 UUID.
    """CREATE TABLE messages2 (
        rowid        INTEGER PRIMARY KEY,
        peer         INTEGER NOT NULL REFERENCES peers2 (id) ON DELETE CASCADE,
        direction    TEXT NOT NULL,
        id           BLOB NOT NULL,
        body         TEXT,
        created_ms   INTEGER NOT NULL,
        stored_ms    INTEGER NOT NULL,
        state        TEXT NOT NULL,
        delivered_ms INTEGER,
        reason       TEXT,
        legacy       INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE outbox2 (
        seq     INTEGER PRIMARY KEY,
        message INTEGER NOT NULL UNIQUE REFERENCES messages2 (rowid) ON DELETE CASCADE,
        peer    INTEGER NOT NULL
    )""",
)
V2_COPY = (
    "INSERT INTO peers2 (fingerprint, name, public_key, address, verified, proto, v2_seen,"
    " blocked, hwm_ms, added_at, last_seen) SELECT fingerprint, name, public_key, address,"
    " verified, proto, v2_seen, blocked, hwm_ms, added_at, last_seen FROM peers"
    " ORDER BY rowid",
    "INSERT INTO messages2 (rowid, peer, direction, id, body, created_ms, stored_ms, state,"
    " delivered_ms, reason, legacy) SELECT m.rowid, p.id, m.direction, m.id, m.body,"
    " m.created_ms, m.stored_ms, m.state, m.delivered_ms, m.reason, m.legacy"
    " FROM messages m JOIN peers2 p ON p.fingerprint = m.peer ORDER BY m.rowid",
    "INSERT INTO outbox2 (seq, message, peer) SELECT o.seq, o.message, p.id"
    " FROM outbox o JOIN peers2 p ON p.fingerprint = o.peer ORDER BY o.seq",
)
# Dropping a table deletes its rows first (and cascades): the old outbox and messages go
# before the old peers, so nothing cascades into the new tables. RENAME then rewrites
# the new tables' foreign keys to the final names.
V2_SWAP = (
    "DROP TABLE outbox",
    "DROP TABLE messages",
    "DROP TABLE peers",
    "ALTER TABLE peers2 RENAME TO peers",
    "ALTER TABLE messages2 RENAME TO messages",
    "ALTER TABLE outbox2 RENAME TO outbox",
    "CREATE INDEX messages_by_peer ON messages (peer)",  # history pages (rowid is implied)
    "CREATE INDEX messages_failed ON messages (state) WHERE state = 'failed'",
    # Dedupe of what peers send us: a resend carries the same created_ms and id. Keyed
    # by time first, so new entries land at the index's right edge: keyed by the random
    # id, each row of a commit dirtied its own index page once the index outgrew the
    # cache (a 4 KiB WAL page per message). A peer that reuses an id with another time
    # sends a new message, as it could with a new id. Our own ids are 16 random bytes
    # (or a fresh v1 UUID): an index over them would cost every outgoing row.
    "CREATE UNIQUE INDEX messages_in_id ON messages (peer, created_ms, id) WHERE direction = 'in'",
)

# Version 3: the outbox is a column of ``messages`` instead of a table of its own.
# ``owed`` is a message's place in its recipient's queue (NULL once delivered, failed or
# deleted), indexed only where it is set: an outgoing message is one row and one small
# index entry instead of a second row with its primary key and unique index, and an ack
# clears ``owed`` in the same UPDATE that marks the row delivered (PERFORMANCE.md). New
# messages take ``owed`` = their rowid; the store's counter starts past both, so what
# is queued after the migration goes behind what was queued before it.
V3 = (
    "ALTER TABLE messages ADD COLUMN owed INTEGER",
    "UPDATE messages SET owed = (SELECT o.seq FROM outbox o WHERE o.message = messages.rowid)"
    " WHERE rowid IN (SELECT message FROM outbox)",
    "DROP TABLE outbox",
    "CREATE INDEX messages_owed ON messages (owed) WHERE owed IS NOT NULL",
)

# Version 4: where a peer was last seen is kept apart from where the user said it is.
# ``address`` stays what the user gave; ``learned_address`` is the host of the peer's
# last authenticated session from elsewhere (on the user's port). The node dials the
# learned one first and falls back to the given one, so a peer that reached us from an
# address it does not listen on (NAT, a proxy) is not lost. An existing address was
# given or learned, which schema 3 did not record: it is kept as given.
V4 = ("ALTER TABLE peers ADD COLUMN learned_address TEXT",)

# Version 5: file transfers (issue 17). A transfer is one row of ``transfers`` and shows
# in the conversation through its own ``messages`` row (``message``; body = the file's
# name, so a face that knows nothing of files still shows something true). No ``kind``
# column on ``messages``: a message is a file exactly when a transfer points at it, and
# every chat row would otherwise carry the extra bytes. Ids are chosen by the sender,
# so they are unique per (peer, direction), not alone. The chunk digests are written
# once; what moves is in ``transfer_chunks``, a narrow row of its own, because an
# UPDATE rewrites the whole row, and a 1 GiB file in 1 MiB chunks has 32 KiB of
# digests (nine overflow pages) but a 128-byte bitmap.
V5 = (
    """CREATE TABLE transfers (
        key           INTEGER PRIMARY KEY,
        peer          INTEGER NOT NULL REFERENCES peers (id) ON DELETE CASCADE,
        direction     TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        id            BLOB NOT NULL CHECK (typeof(id) = 'blob' AND length(id) = 16),
        message       INTEGER NOT NULL UNIQUE REFERENCES messages (rowid) ON DELETE CASCADE,
        name          TEXT NOT NULL,
        size          INTEGER NOT NULL CHECK (size >= 0),
        chunk_size    INTEGER NOT NULL CHECK (chunk_size > 0),
        algorithm     TEXT NOT NULL,
        digest        BLOB NOT NULL,
        chunk_digests BLOB NOT NULL,
        compress      INTEGER NOT NULL DEFAULT 0 CHECK (compress IN (0, 1)),
        source_path   TEXT,
        source_size   INTEGER,
        source_mtime_ns INTEGER,
        part_path     TEXT,
        final_path    TEXT,
        state         TEXT NOT NULL CHECK (state IN ('offered', 'accepted', 'transferring',
                          'delivered', 'failed', 'cancelled')),
        reason        TEXT,
        created_ms    INTEGER NOT NULL,
        updated_ms    INTEGER NOT NULL,
        UNIQUE (peer, direction, id)
    )""",
    # What is still open, by peer: the offers to send again when a contact comes
    # online, and the per-peer quota of pending incoming offers.
    "CREATE INDEX transfers_open ON transfers (peer, direction)"
    " WHERE state IN ('offered', 'accepted', 'transferring')",
    # Chunks done: held (incoming, data synced to the .part) or confirmed by the
    # receiver (outgoing). Bit i is bit (i % 8) of byte i // 8; ``done`` counts the set
    # bits, so progress needs no scan of the bitmap.
    """CREATE TABLE transfer_chunks (
        transfer INTEGER PRIMARY KEY REFERENCES transfers (key) ON DELETE CASCADE,
        bitmap   BLOB NOT NULL,
        done     INTEGER NOT NULL DEFAULT 0
    )""",
)

# Version 6: group chat. A group is a row of ``groups`` (its 16-byte random id, name and
# the user's standing in it) with its signed membership log in ``group_records``, one
# opaque record per epoch. A post is sent over each member's pairwise session: ours is
# one outgoing ``messages`` row per member (same id, each owed in the outbox, so "delivered
# to 4 of 5" is the states of those rows), a received one is one incoming row. ``grp``
# names the group (NULL for a direct message: a plain row stores nothing more than
# before); ``lamport``, ``epoch`` and ``gseq`` are the post's Lamport time, the
# membership epoch it was sent at and its sender's sequence number, kept so a resend
# carries the same values. Members who are not contacts still need a ``peers`` row for
# their sessions and rows: ``contact = 0``.
V6 = (
    "ALTER TABLE peers ADD COLUMN contact INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE messages ADD COLUMN grp INTEGER",
    "ALTER TABLE messages ADD COLUMN lamport INTEGER",
    "ALTER TABLE messages ADD COLUMN epoch INTEGER",
    "ALTER TABLE messages ADD COLUMN gseq INTEGER",
    # A group's page in display order; only group rows are in it.
    "CREATE INDEX messages_by_group ON messages (grp, lamport) WHERE grp IS NOT NULL",
    """CREATE TABLE groups (
        key        INTEGER PRIMARY KEY,
        id         BLOB NOT NULL UNIQUE CHECK (typeof(id) = 'blob' AND length(id) = 16),
        name       TEXT NOT NULL,
        state      TEXT NOT NULL CHECK (state IN ('member', 'left', 'removed')),
        created_ms INTEGER NOT NULL
    )""",
    """CREATE TABLE group_records (
        grp    INTEGER NOT NULL REFERENCES groups (key) ON DELETE CASCADE,
        epoch  INTEGER NOT NULL CHECK (epoch >= 0),
        record BLOB NOT NULL,
        PRIMARY KEY (grp, epoch)
    ) WITHOUT ROWID""",
)

# Version 7: identity key succession and revocation (docs/PROTOCOL.md, "Key succession
# and revocation"). A contact's key changes in place (``peers.id`` keeps its history and
# outbox); ``key_seq`` is the current key's place in its chain (0: met at pairing).
# ``key_history`` keeps every key a contact left, with the statement that left it, so a
# replayed or forking statement is recognised; ``old_fp`` is unique: a key has at most one
# successor. ``revoked`` holds the revocation certificate of the current key, if any.
V7 = (
    "ALTER TABLE peers ADD COLUMN key_seq INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE peers ADD COLUMN revoked BLOB",
    """CREATE TABLE key_history (
        peer       INTEGER NOT NULL REFERENCES peers (id) ON DELETE CASCADE,
        seq        INTEGER NOT NULL CHECK (seq >= 1),
        old_fp     TEXT NOT NULL UNIQUE
            CHECK (length(old_fp) = 64 AND old_fp NOT GLOB '*[^0-9a-f]*'),
        new_fp     TEXT NOT NULL
            CHECK (length(new_fp) = 64 AND new_fp NOT GLOB '*[^0-9a-f]*'),
        statement  BLOB NOT NULL,
        applied_at REAL NOT NULL,
        PRIMARY KEY (peer, seq)
    ) WITHOUT ROWID""",
)


# Version 8: handing our own key over (docs/PROTOCOL.md, "Key succession"). A row of
# ``key_handover`` is a contact that has not yet applied our rotation ``seq``: sessions
# with it still use the key that rotation retired, and carry the statement. A rotation
# is in ``own_rotations`` once its rows were made, so a restart does not make them again
# for contacts that switched meanwhile.
# Schema 9: read receipts (a contact's own choice per peer, and when each of our
# messages was read) and the broadcast mark of an outgoing message.
V9 = (
    "ALTER TABLE peers ADD COLUMN receipts INTEGER NOT NULL DEFAULT 0 CHECK (receipts IN (0, 1))",
    "ALTER TABLE messages ADD COLUMN read_ms INTEGER",
    "ALTER TABLE messages ADD COLUMN broadcast INTEGER NOT NULL DEFAULT 0",
)
# Schema 10: a reply's quote (the id of the message it answers, either direction).
V10 = ("ALTER TABLE messages ADD COLUMN reply_to BLOB",)
# Schema 11: history off for a conversation (keep_history = 0): its messages are shown,
# then kept only as what dedupe needs (a tombstone row: id and times, no body).
V11 = (
    "ALTER TABLE peers ADD COLUMN keep_history INTEGER NOT NULL DEFAULT 1"
    " CHECK (keep_history IN (0, 1))",
)
# Schema 12: disappearing messages (docs/STORE.md). A conversation's timer in force
# (seconds, 0 = off) and the TIMER that set it (its created_ms and id: the newest by
# (created_ms, id) holds on both sides); a TIMER's own row (``timer_s``: a system line,
# body ""), and when a message is erased (``expires_ms``, indexed only where set).
V12 = (
    "ALTER TABLE peers ADD COLUMN disappear_s INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE peers ADD COLUMN disappear_ms INTEGER",
    "ALTER TABLE peers ADD COLUMN disappear_id BLOB",
    "ALTER TABLE messages ADD COLUMN timer_s INTEGER",
    "ALTER TABLE messages ADD COLUMN expires_ms INTEGER",
    "CREATE INDEX messages_expiring ON messages (expires_ms) WHERE expires_ms IS NOT NULL",
)
# Schema 13: the check of the key that seals what people wrote (store/sealing.py). One
# row once the store was opened with its key; none while it was only ever in clear.
V13 = (
    """CREATE TABLE sealing (
        one       INTEGER PRIMARY KEY CHECK (one = 1),
        key_check BLOB NOT NULL
    )""",
)
# Schema 14: a group's disappearing-messages timer (docs/STORE.md). The signed log
# decides it (a TIMER record, PROTOCOL.md); this column mirrors the timer in force at the
# log's head, written in the transaction that stores the records, as groups.name is.
V14 = ("ALTER TABLE groups ADD COLUMN disappear_s INTEGER NOT NULL DEFAULT 0",)
V8 = (
    """CREATE TABLE own_rotations (
        seq        INTEGER PRIMARY KEY CHECK (seq >= 1),
        started_at REAL NOT NULL
    )""",
    """CREATE TABLE key_handover (
        peer INTEGER NOT NULL REFERENCES peers (id) ON DELETE CASCADE,
        seq  INTEGER NOT NULL REFERENCES own_rotations (seq),
        PRIMARY KEY (peer, seq)
    ) WITHOUT ROWID""",
)
