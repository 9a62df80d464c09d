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


def check_ms(value: int) -> int:
    if type(value) is not int:  # bool is refused too; SQLite would store a float or text
        raise TypeError(f"a time must be integer milliseconds, not {value!r:.40}")
    return value


def as_rowids(rowids: Iterable[int]) -> list[int]:
    return [int(r) for r in rowids]


def rowid_params(rowids: Iterable[int]) -> list[tuple[int]]:
    return [(int(r),) for r in rowids]
