"""Safety numbers: one number two contacts compare to know that no one sits between them.

Rules:
- Each side's half is 30 digits made from its fingerprint alone: SHA-512 iterated
  ITERATIONS times over a label, a version and the fingerprint; six 5-byte chunks of
  the result, each taken mod 100,000, give six 5-digit groups. The iteration makes
  finding another key with the same half cost ITERATIONS hashes per try.
- The number is the two halves, the lower fingerprint's first, so both sides compute
  the same 60 digits whoever asks. It is shown as 12 groups of 5, three lines of four.
- Comparing the number is comparing both fingerprints (each half binds one of them to
  about 100 bits); it is only shorter to read aloud, and its QR code carries the same
  60 digits, so one side can scan the other's screen.
"""

from __future__ import annotations

import hashlib

ITERATIONS = 5200
VERSION = b"\x00\x01"
LABEL = b"Enclave safety number"
DIGITS = 60


def _half(fingerprint: str) -> str:
    fp = bytes.fromhex(fingerprint)
    if len(fp) != 32:
        raise ValueError("a fingerprint is 64 hex digits")
    digest = LABEL + VERSION + fp
    for _ in range(ITERATIONS):
        digest = hashlib.sha512(digest + fp).digest()
    return "".join(
        f"{int.from_bytes(digest[i : i + 5], 'big') % 100_000:05d}" for i in range(0, 30, 5)
    )


def safety_number(ours: str, theirs: str) -> str:
    """The 60 digits both sides show for the pair (``ours``, ``theirs``): hex fingerprints."""
    a, b = sorted((ours.lower(), theirs.lower()))
    return _half(a) + _half(b)


def grouped(number: str) -> list[str]:
    """The number as three lines of four 5-digit groups."""
    groups = [number[i : i + 5] for i in range(0, len(number), 5)]
    return [" ".join(groups[i : i + 4]) for i in range(0, len(groups), 4)]


def qr_text(number: str) -> str:
    """What the number's QR code holds (numeric mode: the densest)."""
    return number
