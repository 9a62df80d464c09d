"""Peer addresses as people type them: ``HOST:PORT``.

Rules:
- HOST is an RFC 1123 host name (labels of 1-63 letters, digits and hyphens, not
  starting or ending with a hyphen, 253 characters at most), a dotted IPv4 address,
  or an IPv6 address in brackets (``[fe80::1]:8000``, a zone such as ``%eth0`` allowed).
- An IPv6 address without brackets is refused: its last colon cannot be told apart
  from the port separator.
- PORT is 1-65535, ASCII digits only.
- Every mistake is a ``UserError`` that says what was expected, in one line.
- ``str(Address)`` is the canonical form: lower-case host name, compressed IPv6 in
  brackets, the port without leading zeros. Storing the canonical form means the same
  peer typed two ways is the same address.

This module imports only the standard library: the CLI parses addresses before it
loads any cryptography.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import NamedTuple

from enclave.errors import UserError

EXAMPLE = "e.g. 192.168.1.100:8000, alice.lan:8000 or [fe80::1]:8000"
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_DOTTED_NUMBERS = re.compile(r"[0-9.]+\Z")
_ZONE = re.compile(r"[A-Za-z0-9_.-]{1,32}\Z")


class Address(NamedTuple):
    """A validated peer address; ``host`` holds an IPv6 address without brackets."""

    host: str
    port: int

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if self.is_ipv6 else self.host
        return f"{host}:{self.port}"


def parse_address(text: str) -> Address:
    """Parse ``HOST:PORT`` or ``[IPV6]:PORT``; raise ``UserError`` when it is not one."""

    def fail(why: str) -> UserError:
        return UserError(f"invalid peer address {text!r}: {why}; expected HOST:PORT, {EXAMPLE}")

    if not text:
        raise fail("it is empty")
    if any(ch.isspace() for ch in text):
        raise fail("it contains spaces")
    if text.startswith("["):
        host_text, sep, port_text = text[1:].partition("]")
        if not sep:
            raise fail("the IPv6 address has no closing ]")
        if not port_text.startswith(":"):
            raise fail("the port is missing after ]")
        return Address(_parse_ipv6(host_text, fail), _parse_port(port_text[1:], fail))
    host_text, sep, port_text = text.rpartition(":")
    if not sep:
        raise fail("the port is missing")
    if ":" in host_text:
        raise fail("an IPv6 address needs brackets, like [fe80::1]:8000")
    return Address(_parse_host(host_text, fail), _parse_port(port_text, fail))


def parse_host(text: str) -> str:
    """Validate a host to listen on (``--host``): a host name, IPv4 or IPv6 address."""

    def fail(why: str) -> UserError:
        return UserError(
            f"invalid host {text!r}: {why}; expected e.g. 0.0.0.0, :: or 192.168.1.100"
        )

    if any(ch.isspace() for ch in text):
        raise fail("it contains spaces")
    if ":" in text:
        return _parse_ipv6(text.removeprefix("[").removesuffix("]"), fail)
    return _parse_host(text, fail)


def parse_port(text: str) -> int:
    """Validate a port number given on its own (``--port``, ``--web-port``)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or not 1 <= int(text) <= 65535:
        raise UserError(f"invalid port {text!r}: expected a number from 1 to 65535")
    return int(text)


def _parse_port(text: str, fail: Callable[[str], UserError]) -> int:
    if not text:
        raise fail("the port is missing")
    if not (text.isascii() and text.isdigit()):
        raise fail(f"the port {text!r} is not a number")
    if len(text) > 5 or not 1 <= int(text) <= 65535:
        raise fail(f"the port {text} is outside 1-65535")
    return int(text)


def _parse_host(text: str, fail: Callable[[str], UserError]) -> str:
    if not text:
        raise fail("the host is empty")
    if _DOTTED_NUMBERS.match(text):
        try:
            return str(ipaddress.IPv4Address(text))
        except ValueError:
            raise fail(f"{text} is not a valid IPv4 address") from None
    name = text.lower()
    name = name[:-1] if name.endswith(".") else name
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise fail(f"{text!r} is not a valid host name (letters, digits, hyphens and dots only)")
    if labels[-1].isdigit():
        raise fail(f"{text!r} is neither a host name nor an IPv4 address")
    return name


def _parse_ipv6(text: str, fail: Callable[[str], UserError]) -> str:
    address, _, zone = text.partition("%")
    if zone and not _ZONE.match(zone):
        raise fail(f"{zone!r} is not a valid IPv6 zone")
    try:
        parsed = ipaddress.IPv6Address(address)
    except ValueError:
        raise fail(f"{text!r} is not a valid IPv6 address") from None
    return f"{parsed.compressed}%{zone}" if zone else parsed.compressed
