"""Argument checks for what callers hand the store.

Errors: ``UserError`` for a person's mistake (a name, an address they typed);
``ValueError``/``TypeError`` for a caller's programming error. Since schema 2 the
message checks stand in for the constant CHECK constraints a message row had in schema 1
(the lean hot path, PERFORMANCE.md; ``schema`` has the history).
"""

from __future__ import annotations

from collections.abc import Iterable

from enclave.errors import UserError

HEX = frozenset("0123456789abcdef")


def check_fingerprint(fp: str) -> str:
    if not isinstance(fp, str):
        raise TypeError("fingerprint must be a str")
    fp = fp.lower()
    if len(fp) != 64 or not HEX.issuperset(fp):
        raise ValueError(f"fingerprint must be 64 hex digits, not {fp!r}")
    return fp


def check_name(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip()
    if not name or not name.isprintable():
        raise UserError("a peer name must be non-empty printable text")
    return name


def check_address(address: str | None) -> str | None:
    """``host:port``, with an IPv6 host in brackets: ``[::1]:9000``."""
    if address is None:
        return None
    host, _, port = address.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host_ok = len(host) > 2 and "[" not in host[1:-1] and "]" not in host[1:-1]
    else:
        host_ok = host != "" and not any(c in host for c in ":[]")
    ok = host_ok and port.isascii() and port.isdigit() and 0 < int(port) < 65536
    if not ok:
        raise UserError(f"'{address}' is not an address: use host:port, or [ipv6]:port")
    return f"{host}:{int(port)}"


def check_msg_id(mid: bytes) -> bytes:
    if not isinstance(mid, bytes):
        raise TypeError(f"message id must be bytes, not {type(mid).__name__}")
    if len(mid) not in (16, 36):
        raise ValueError(f"message id must be 16 bytes (v2) or 36 (v1 UUID), not {len(mid)}")
    return mid


def check_body(body: str) -> str:
    if not isinstance(body, str):
        raise TypeError(f"message body must be str, not {type(body).__name__}")
    return body


def explain_row(mid: bytes, body: str, created: int, stored: int) -> None:
    """Raise the error that names what is wrong with a message row the hot path refused."""
    check_msg_id(mid)
    check_body(body)
    check_ms(created)
    check_ms(stored)


def check_rowid(value: int) -> None:
    # A bool or another int type would pass SQLite and a clear store, and not a sealed
    # one's sealer: refused alike.
    if type(value) is not int:
        raise TypeError(f"an outgoing row's rowid is an int from reserve_rowid, not {value!r:.40}")


def check_ms(value: int) -> int:
    if type(value) is not int:  # bool is refused too; SQLite would store a float or text
        raise TypeError(f"a time must be integer milliseconds, not {value!r:.40}")
    return value


def as_rowids(rowids: Iterable[int]) -> list[int]:
    return [int(r) for r in rowids]


def rowid_params(rowids: Iterable[int]) -> list[tuple[int]]:
    return [(int(r),) for r in rowids]


# -- file offers (schema 5) ------------------------------------------------------------------

MAX_FILE_SIZE = 1 << 40  # 1 TiB: beyond it an offer is absurd, not a file
MIN_CHUNK_SIZE = 1 << 10
MAX_CHUNK_SIZE = 1 << 24  # 16 MiB: so a 1 TiB file needs no more than MAX_CHUNKS
MAX_CHUNKS = 1 << 16  # an 8 KiB bitmap; at most 4 MiB of 64-byte digests
MAX_NAME_BYTES = 255
_ALGORITHM_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


class OfferRefused(ValueError):
    """An offer the store will not keep: absurd, malformed, or beyond the peer's quota.
    ``reason`` is words a user can read (and a peer can be told)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_offer(offer) -> None:
    """Refuse an offer (a ``records.FileOffer``) with impossible or absurd values."""
    if type(offer.id) is not bytes or len(offer.id) != 16:
        raise OfferRefused("a transfer id is 16 bytes")
    for field in ("size", "chunk_size"):
        if type(getattr(offer, field)) is not int:
            raise TypeError(f"{field} must be an int")
    if type(offer.compress) is not bool:
        raise TypeError("compress must be a bool")
    if not 0 <= offer.size <= MAX_FILE_SIZE:
        raise OfferRefused(f"a file of {offer.size} bytes (at most {MAX_FILE_SIZE})")
    if not MIN_CHUNK_SIZE <= offer.chunk_size <= MAX_CHUNK_SIZE:
        raise OfferRefused(f"chunks of {offer.chunk_size} bytes")
    if offer.chunks > MAX_CHUNKS:
        raise OfferRefused(f"{offer.chunks} chunks (at most {MAX_CHUNKS})")
    algorithm = offer.algorithm
    if not isinstance(algorithm, str) or not 0 < len(algorithm) <= 32:
        raise OfferRefused("a digest algorithm is a short name")
    if not _ALGORITHM_CHARS.issuperset(algorithm):
        raise OfferRefused("a digest algorithm is a short name")
    if type(offer.digest) is not bytes or not 16 <= len(offer.digest) <= 64:
        raise OfferRefused("a digest is 16 to 64 bytes")
    if type(offer.chunk_digests) is not bytes:
        raise OfferRefused("chunk digests are bytes")
    if len(offer.chunk_digests) != offer.chunks * len(offer.digest):
        raise OfferRefused("one digest per chunk, as long as the file's")
    check_file_name(offer.name)


def check_file_name(name: str) -> str:
    """A name as the store keeps it: already made safe by the node, checked again for
    what could take it out of its folder."""
    if not isinstance(name, str):
        raise TypeError("a file name must be str")
    if not name or len(name.encode("utf-8", "replace")) > MAX_NAME_BYTES:
        raise OfferRefused("a file name is 1 to 255 bytes")
    if name in (".", "..") or any(c in name for c in "/\\\x00"):
        raise OfferRefused("a file name names no folder")
    return name
