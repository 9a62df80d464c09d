"""Strategy 4 of the connection fuzz: an authenticated peer that misbehaves.

Records correctly sealed under the recorded session's keys (``sealed_stream``) carry
hostile plaintexts: valid and invalid messages, batches that mix them, genuine and
repeated KEY_UPDATEs, msgpack past the nesting limit, trailing bytes, and values of no
known shape. ``Model`` knows which frames the receiver of an established session must
accept and what it must deliver; ``observed`` puts what it did deliver in the model's
terms. Fingerprints appear as the ``SENDER``/``RECEIVER`` placeholders until a
plaintext is sealed, so strategies are built once and corpus entries hold for any keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack
from hypothesis import strategies as st

from enclave.protocol import schedule
from enclave.protocol.events import Acked, MessagesReceived, Throttled, TypingChanged
from enclave.protocol.messages import MAX_RETRY_AFTER_MS
from support.fuzz_rig import Rig, seal_raw


@dataclass
class Model:
    """What the receiver of an established session must do with each sealed plaintext."""

    sent: int  # Chats the receiver sent (an ACK must stay below this)
    acked: int = -1
    chats: int = 0
    open: bool = True
    known: bool = True  # False once a plaintext of unknown verdict was fed
    after_update: bool = False  # the previous frame was a KEY_UPDATE
    expected: list | None = None

    def __post_init__(self) -> None:
        self.expected = []


# Placeholders for the session's fingerprints, replaced when a plaintext is sealed, so
# that strategies are built once and corpus entries hold for any pair of keys.
SENDER, RECEIVER = b"\xa5" * 32, b"\x5a" * 32


def _message_values():
    """Strategies of (value, verdict) pairs, valid and invalid: the msgpack value of one
    message and whether the receiver must accept it. An ACK's validity depends on the
    session, so ACKs carry ("ack", upto) and the model decides."""
    fp = st.sampled_from([SENDER, RECEIVER, bytes(32), b"\x01" * 31])
    chat = [1, b"i" * 16, SENDER, RECEIVER, 5]
    valid = st.one_of(
        st.builds(
            lambda i, ts, body: ([1, i, SENDER, RECEIVER, ts, body], True),
            st.binary(min_size=16, max_size=16),
            st.integers(0, (1 << 64) - 1),
            st.text(max_size=30),
        ),
        st.just(([*chat, "x" * 10_000], True)),
        st.builds(lambda n: ([2, n], ("ack", n)), st.integers(0, 3) | st.just((1 << 64) - 1)),
        st.builds(lambda d: ([3, d], True), st.binary(min_size=8, max_size=8)),
        st.builds(lambda d: ([4, d], True), st.binary(min_size=8, max_size=8)),
        st.builds(lambda a: ([5, a], True), st.booleans()),
        st.builds(
            lambda r, ms: ([6, r, ms], True),
            st.sampled_from([1, 2, 3]),
            st.integers(0, MAX_RETRY_AFTER_MS),
        ),
    )
    invalid = st.one_of(
        st.builds(lambda f, t: ([1, b"i" * 16, f, t, 5, "x"], f == SENDER and t == RECEIVER), fp, fp),
        st.builds(lambda i: ([1, i, SENDER, RECEIVER, 5, "x"], len(i) == 16), st.binary(max_size=20)),
        st.just(([1, b"i" * 16, SENDER, RECEIVER, -1, "x"], False)),
        st.just(([1, b"i" * 16, SENDER, RECEIVER, True, "x"], False)),
        st.just(([*chat, "x" * 10_001], False)),
        st.just((chat, False)),
        st.just(([*chat, b"x"], False)),
        st.just(([2, -1], False)),
        st.just(([2, True], False)),
        st.builds(lambda d: ([3, d], len(d) == 8), st.binary(max_size=9)),
        st.builds(lambda d: ([4, d], len(d) == 8), st.binary(max_size=9)),
        st.just(([5, 1], False)),
        st.builds(
            lambda r, ms: ([6, r, ms], r in (1, 2, 3) and 0 <= ms <= MAX_RETRY_AFTER_MS),
            st.integers(-1, 5),
            st.sampled_from([-1, 0, MAX_RETRY_AFTER_MS, MAX_RETRY_AFTER_MS + 1]),
        ),
        st.just(([6, True, 0], False)),
        st.just(([6, 1], False)),
        st.builds(lambda c: ([c, True], False), st.integers(6, 255) | st.just(0)),
        st.just(([], False)),
        st.just(({}, False)),
        st.just(([[5, True]], False)),
    )  # fmt: skip
    return valid, invalid


def _app(ms, tail=b"") -> bytes:
    return b"\x01" + msgpack.packb([m for m, _ in ms], use_bin_type=True) + tail


def _plaintexts():
    """(plaintext, kind, messages): kind "app" (judged by the model from its messages),
    "ku" (a genuine KEY_UPDATE), "bad" (must close), "raw" (not judged)."""
    valid, invalid = _message_values()
    clean = st.lists(valid, min_size=1, max_size=6)
    mixed = st.builds(
        lambda ms, bad, at: [*ms[:at], bad, *ms[at:]],
        st.lists(valid, max_size=5),
        invalid,
        st.integers(0, 5),
    )
    batch = clean | mixed
    values = st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(1 << 63), (1 << 64) - 1)
        | st.floats()
        | st.binary(max_size=40)
        | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=12,
    )
    refused = st.one_of(
        st.just((b"\x01" + b"\x91" * 1100 + b"\xc0", "bad", None)),  # past the stack (1024)
        st.just((b"\x01" + b"\xdc\x04\x01" + b"\x92\x05\xc3" * 1025, "bad", None)),  # 1025
        st.builds(lambda ms: (_app(ms, b"\xc0"), "bad", None), batch),  # a trailing byte
    )
    unjudged = st.one_of(
        st.builds(lambda v: (b"\x01" + msgpack.packb(v, use_bin_type=True), "raw", None), values),
        st.builds(
            lambda t, b: (bytes([t]) + b, "raw", None),
            st.sampled_from([1, 2, 3, 0, 4, 255]),
            st.binary(max_size=64),
        ),
    )
    return st.one_of(
        st.builds(lambda ms: (_app(ms), "app", ms), clean),
        st.builds(lambda ms: (_app(ms), "app", ms), batch),
        st.just((b"\x02", "ku", None)),
        refused,
        unjudged,
    )


hostile_records = st.lists(_plaintexts(), min_size=1, max_size=4)


def expect(model: Model, kind: str, ms) -> None:
    """Advance the model by one frame (PROTOCOL.md c.1, c.3; connection._on_batch)."""
    if not model.open or not model.known:
        return
    if kind == "raw":
        model.known = False
        return
    if kind == "bad":
        model.open = False
        return
    if kind == "ku":
        # An update is followed by a frame under the new key: two in a row are refused.
        model.open = not model.after_update
        model.after_update = True
        return
    model.after_update = False
    acked, chats, effects = model.acked, [], []
    for value, verdict in ms:
        if isinstance(verdict, tuple):  # an ACK
            if not acked < verdict[1] < model.sent:
                model.open = False
                return
            acked = verdict[1]
        elif not verdict:
            model.open = False
            return
        elif value[0] == 1:
            chats.append(value)
        elif value[0] == 5:
            effects.append(("typing", value[1]))
        elif value[0] == 6:
            effects.append(("throttle", value[1], value[2]))
    if acked != model.acked:
        effects.append(("acked", acked))
        model.acked = acked
    if chats:
        effects.append(("chats", model.chats, tuple(tuple(c[1:]) for c in chats)))
        model.chats += len(chats)
    model.expected += effects


def observed(events, sender: bytes, receiver: bytes) -> list:
    """The receiver's effects, in the model's terms (fingerprints as placeholders)."""
    names = {sender: SENDER, receiver: RECEIVER}
    out = []
    for e in events:
        if isinstance(e, TypingChanged):
            out.append(("typing", e.active))
        elif isinstance(e, Throttled):
            out.append(("throttle", e.reason, e.retry_after_ms))
        elif isinstance(e, Acked):
            out.append(("acked", e.upto))
        elif isinstance(e, MessagesReceived):
            chats = tuple(
                (c.id, names.get(c.sender), names.get(c.recipient), c.created_ms, c.body)
                for c in e.messages
            )
            out.append(("chats", e.first_index, chats))
    return out


def session_of(rig: Rig, name: str) -> tuple[bytes, bytes, int]:
    """(sender fp, receiver fp, Chats the receiver sent) for an established target."""
    if name == "established_r":  # alice's records to bob
        return rig.fp_a, rig.fp_b, len(rig.b_chats)
    return rig.fp_b, rig.fp_a, len(rig.a_chats)


def sealed_stream(rig: Rig, name: str, plaintexts: list[bytes]) -> bytes:
    """The plaintexts, placeholders replaced, sealed in order under the target's keys."""
    sender, receiver, _ = session_of(rig, name)
    secret = rig.i2r_secret if name == "established_r" else rig.r2i_secret
    stream, seq = b"", 0
    for plaintext in plaintexts:
        stream += seal_raw(
            secret, seq, plaintext.replace(SENDER, sender).replace(RECEIVER, receiver)
        )
        seq += 1
        if plaintext == b"\x02":  # a genuine KEY_UPDATE: the sender moves on too
            secret, seq = schedule.next_secret(secret), 0
    return stream
