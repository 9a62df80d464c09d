"""What a face shows of the values a peer controls: its creation time and its text.

Rules:
- What is stored is what arrived: a body verbatim, ``created_ms`` clamped only to
  SQLite's integer range (delivery). The stored ``created_ms`` is part of the
  receiver's dedupe key (peer, created_ms, id), so it must come out the same for every
  resend of a message; a rule that depends on when a copy arrived cannot change it.
  Both rules below apply when a value is shown, to every face alike.
- Creation time (PROTOCOL.md c.3: display only). The sender's clock and good will
  decide ``created_ms``; our clock decides when the message arrived (``stored_ms``,
  kept with every row). ``created_time`` shows the creation time when it lies in the
  window [received - MAX_AGE_MS, received + MAX_AHEAD_MS], clamped to the receive time
  (a message is never shown as written after it arrived); outside the window the time
  is unknown (None) and faces say "unknown time" beside the receive time.
  MAX_AGE_MS is a year: a message waits in its sender's outbox for as long as we are
  away, so the lower bound is generous. MAX_AHEAD_MS is ten minutes: the handshake
  admits clocks five minutes apart (PROTOCOL.md b.4 step 5), and our own outgoing
  times come from our clock. A v1 envelope's time is already within five minutes of
  ours (PROTOCOL.md d, step 5).
- Text: characters that change the layout of the text around them or that cannot be
  seen are shown as ``⟨U+XXXX⟩``, never applied: bidi embeddings, overrides, isolates
  and marks (U+202A-202E, U+2066-2069, U+200E/200F, U+061C), zero-width characters
  (U+200B-200D, U+2060, U+FEFF), line and paragraph separators (U+2028/2029), C0 and
  C1 controls (escape sequences), lone surrogates, and every other character of
  Unicode categories Cc, Cf, Zl, Zp and Cs. Kept: newline and tab in message bodies
  (``lines=True``), and U+200D between two pictographs (an emoji sequence such as
  👩‍💻: it joins two pictures and hides nothing). Names and one-line fields get
  ``lines=False``. The page's ``visible()`` in web/static/js/text.js applies the same rule.
"""

from __future__ import annotations

import re
import unicodedata

MAX_AGE_MS = 366 * 24 * 3600 * 1000
MAX_AHEAD_MS = 10 * 60 * 1000

# Cc, Cf, Zl, Zp and Cs code points (Unicode 14, Python 3.11's database; U+13439-1343F
# became Cf in Unicode 15 and are included). tests/test_display.py checks the table.
_HIDDEN_RANGES = (
    (0x0000, 0x001F),
    (0x007F, 0x009F),
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xD800, 0xDFFF),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)
_HIDDEN = re.compile("[" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in _HIDDEN_RANGES) + "]")
_KEPT_IN_LINES = frozenset("\n\t")
_ZWJ = "\u200d"
_VS16 = "\ufe0f"  # emoji presentation, between a pictograph and its joiner


def created_time(created_ms: int, received_ms: int) -> int | None:
    """The creation time to show for a message received at ``received_ms``, or None
    when the sender's claim is outside the window (see the rules above)."""
    if received_ms - MAX_AGE_MS <= created_ms <= received_ms + MAX_AHEAD_MS:
        return min(created_ms, received_ms)
    return None


def message_time(m) -> int | None:
    """The creation time to show for a stored message (``store.Message``): our own
    clock's for one we sent, ``created_time`` against its arrival for one we received."""
    if m.direction == "in":
        return created_time(m.created_ms, m.stored_ms)
    return m.created_ms


# Crockford's base32: no I, L, O or U, so a reference read aloud or retyped is not misread.
_REF_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def message_ref(message_id: bytes) -> str:
    """A message's short reference, as every face shows it: ``#`` and four characters
    from the random half of its id (20 bits). It tells one message from the others
    near it in a conversation; it is not an index and not unique over a long history."""
    n = int.from_bytes(message_id[-3:], "big") & 0xFFFFF
    return "#" + "".join(_REF_ALPHABET[(n >> shift) & 31] for shift in (15, 10, 5, 0))


def ref_kind(text: str) -> str | None:
    """How ``text`` names a message, as a person types it: "ref" (a short reference,
    ``#k3f9``, with or without the "#", any case), "id" (its full id, 32 hex digits) or
    None (neither: no message could have it)."""
    if len(text) == 32 and all(ch in "0123456789abcdef" for ch in text.lower()):
        return "id"
    ref = text.lower().removeprefix("#")
    if len(ref) == 4 and all(ch in _REF_ALPHABET for ch in ref):
        return "ref"
    return None


def visible(text: str, lines: bool = True) -> str:
    """``text`` with every hidden or layout-changing character shown as ``⟨U+XXXX⟩``."""

    def shown(match: re.Match) -> str:
        ch = match.group()
        if lines and ch in _KEPT_IN_LINES:
            return ch
        if ch == _ZWJ and _joins_pictographs(match.string, match.start()):
            return ch
        return f"\u27e8U+{ord(ch):04X}\u27e9"

    return _HIDDEN.sub(shown, text)


def _joins_pictographs(text: str, at: int) -> bool:
    before = at - 1
    if before >= 0 and (text[before] == _VS16 or _skin_tone(text[before])):
        before -= 1
    return (
        before >= 0
        and at + 1 < len(text)
        and _pictograph(text[before])
        and _pictograph(text[at + 1])
    )


def _pictograph(ch: str) -> bool:
    return unicodedata.category(ch) == "So"


def _skin_tone(ch: str) -> bool:
    return "\U0001f3fb" <= ch <= "\U0001f3ff"


def key_change_line(who: str) -> str:
    """The audit line of a contact's key rotation, the same in every face (``who`` as
    the face shows the contact: its visible name, or its fingerprint's first groups)."""
    return f"{who} rotated their key, signed by their previous key"


# --- disappearing messages (a TIMER's system line; durations as people write them) ----------

_UNITS = (("w", 7 * 86400, "week"), ("d", 86400, "day"), ("h", 3600, "hour"),
          ("m", 60, "minute"), ("s", 1, "second"))  # fmt: skip
_OFF = ("off", "0", "none", "never")


def parse_duration(text: str) -> int:
    """Seconds of a timer as people write it: ``30s``, ``5m``, ``1h``, ``1d``, ``1w``
    (or ``off``: 0). ``ValueError`` with a one-line reason otherwise; the range is the
    Node's to check (``Node.set_disappearing``)."""
    word = text.strip().lower()
    if word in _OFF:
        return 0
    units = {u: size for u, size, _ in _UNITS}
    number, unit = word[:-1], word[-1:]
    if unit not in units or not number.isascii() or not number.isdigit() or len(number) > 6:
        raise ValueError(f"{text.strip()!r} is no duration: write 30s, 5m, 1h, 1d, 1w or off")
    return int(number) * units[unit]


def duration_text(seconds: int) -> str:
    """``1 day``, ``90 minutes``, ``off``: the largest unit that divides it."""
    if not seconds:
        return "off"
    for _, size, name in _UNITS:
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {name}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"  # pragma: no cover - every whole number of seconds divides


def timer_line(who: str, seconds: int) -> str:
    """A TIMER as a conversation shows it: "alice set disappearing messages to 1 day"."""
    if not seconds:
        return f"{who} turned disappearing messages off"
    return f"{who} set disappearing messages to {duration_text(seconds)}"
