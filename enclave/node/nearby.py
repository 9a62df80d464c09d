"""What a LAN announcement may say, and what the node remembers of the ones it heard.

Pure rules, no sockets and no clock reads (``now`` is passed in), so that every check
is testable with forged records. ``enclave.node.discovery`` feeds them from zeroconf.

Rules (PROTOCOL.md "LAN announcement"):
- An announcement is a DNS-SD service of type ``_enclave._tcp.local.``: a port and a
  TXT record with ``v=1`` and ``fp=`` the node's full fingerprint (64 lower-case hex
  digits); ``inv=`` optionally lists the nameplates (1-99, comma-separated, at most
  ``MAX_INVITES``) of the invitations the node has open. Unknown keys are ignored, so
  a later version may add some. No name is ever part of it.
- Anything else is refused with a reason that is logged: a missing or other version,
  a malformed fingerprint, a port outside 1-65535, no usable address, a record or a
  value over its size bound, a bad nameplate list, our own fingerprint. A refused
  announcement changes nothing.
- An announcement proves nothing: anyone on the LAN can claim any fingerprint. The
  table only lists what was heard; a contact's address is stored only after a
  handshake at the announced address authenticates it (enclave.node.dialing).
- The table is bounded: at most ``TABLE_CAP`` fingerprints, the least recently heard
  one evicted for a new one; an entry not heard for ``ENTRY_TTL`` seconds expires.
  Each fingerprint keeps at most ``MAX_ADDRESSES`` addresses, the newest first.
- Announcements are rate-limited per source (the announcing service's name) and in
  all (``RateLimit``): a flood is dropped before any record is read.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass

log = logging.getLogger("enclave.node.nearby")

SERVICE_TYPE = "_enclave._tcp.local."
VERSION = b"1"
TABLE_CAP = 256
ENTRY_TTL = 180.0  # seconds; zeroconf re-announces well within this (its TTL is 120 s)
MAX_ADDRESSES = 8
MAX_INVITES = 16
MAX_KEYS = 16  # TXT entries one record may carry
MAX_VALUE = 255  # bytes of one TXT value (DNS's own bound for one string)
MAX_TXT = 1024  # bytes of a whole TXT record as we read it
_FP = re.compile(rb"[0-9a-f]{64}\Z")
_NAMEPLATE = re.compile(rb"[1-9][0-9]?\Z")


class Refused(ValueError):
    """An announcement that breaks a rule; ``str`` is the logged reason."""


@dataclass(frozen=True, slots=True)
class Announcement:
    fingerprint: str  # hex
    invites: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Nearby:
    """A node heard on the LAN: its fingerprint (hex), where it says it listens
    (``host:port``, newest first), the contact's name when it is one (None: unknown,
    never trusted), the nameplates of its open invitations, and when it was last heard
    (epoch seconds)."""

    fingerprint: str
    addresses: tuple[str, ...]
    contact: str | None
    invites: tuple[int, ...]
    last_seen: float
    known: bool = False  # a contact (named or not)


def parse_txt(properties: dict) -> Announcement:
    """The announcement a TXT record makes, or ``Refused`` with the reason."""
    if not isinstance(properties, dict):
        raise Refused("TXT record is not a key/value list")
    if len(properties) > MAX_KEYS:
        raise Refused(f"TXT record has {len(properties)} keys (at most {MAX_KEYS})")
    size = 0
    for key, value in properties.items():
        if not isinstance(key, bytes) or (value is not None and not isinstance(value, bytes)):
            raise Refused("TXT entry is not bytes")
        if value is not None and len(value) > MAX_VALUE:
            raise Refused(f"TXT value of {_show(key)} is {len(value)} bytes (at most {MAX_VALUE})")
        size += len(key) + 1 + len(value or b"")
    if size > MAX_TXT:
        raise Refused(f"TXT record is {size} bytes (at most {MAX_TXT})")
    version = properties.get(b"v")
    if version != VERSION:
        raise Refused(f"version {_show(version)} (expected v=1)")
    fp = properties.get(b"fp")
    if fp is None or not _FP.match(fp):
        raise Refused(f"fingerprint {_show(fp)} is not 64 lower-case hex digits")
    return Announcement(fp.decode("ascii"), parse_invites(properties.get(b"inv")))


def parse_invites(value: bytes | None) -> tuple[int, ...]:
    """``inv=3,17``: nameplates 1-99, each once, at most MAX_INVITES; empty or absent: none."""
    if not value:
        return ()
    parts = value.split(b",")
    if len(parts) > MAX_INVITES:
        raise Refused(f"{len(parts)} nameplates (at most {MAX_INVITES})")
    if not all(_NAMEPLATE.match(p) for p in parts):
        raise Refused(f"nameplates {_show(value)} are not numbers 1-99")
    plates = tuple(int(p) for p in parts)
    if len(set(plates)) != len(plates):
        raise Refused("a nameplate is listed twice")
    return plates


def invites_txt(nameplates) -> bytes:
    """The ``inv`` value for ``nameplates`` (checked like a received one)."""
    plates = sorted({int(p) for p in nameplates})
    if any(not 1 <= p <= 99 for p in plates) or len(plates) > MAX_INVITES:
        raise ValueError(f"nameplates must be 1-99, at most {MAX_INVITES}")
    return ",".join(map(str, plates)).encode("ascii")


def check_port(port: object) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise Refused(f"port {port!r} is not 1-65535")
    return port


def usable_addresses(hosts, port: int) -> tuple[str, ...]:
    """``host:port`` for each address a peer could dial: not unspecified, multicast or
    loopback (another machine's loopback is ours), at most MAX_ADDRESSES."""
    found = []
    for host in hosts:
        try:
            ip = ipaddress.ip_address(str(host).split("%", 1)[0])
        except ValueError:
            continue
        if ip.is_unspecified or ip.is_multicast or ip.is_loopback:
            continue
        found.append(f"[{host}]:{port}" if ip.version == 6 else f"{ip}:{port}")
    if not found:
        raise Refused("no usable address")
    return tuple(dict.fromkeys(found))[:MAX_ADDRESSES]


@dataclass(slots=True)
class _Entry:
    name: str  # the service that announced it last
    addresses: tuple[str, ...]
    invites: tuple[int, ...]
    last_seen: float  # epoch seconds


class NearbyTable:
    """The nodes heard lately, by fingerprint; bounded and expiring (see the rules)."""

    def __init__(self, own_fp: str, cap: int = TABLE_CAP, ttl: float = ENTRY_TTL) -> None:
        self.own_fp = own_fp
        self.cap, self.ttl = cap, ttl
        self.entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently heard first
        self.refused: Counter[str] = Counter()  # reasons' first words, for stats and tests

    def observe(self, name: str, properties: dict, hosts, port, now: float) -> str | None:
        """Record one resolved announcement; its fingerprint, or None when refused
        (the reason logged, nothing changed)."""
        try:
            ann = parse_txt(properties)
            port = check_port(port)
            addresses = usable_addresses(hosts, port)
            if ann.fingerprint == self.own_fp:
                raise Refused("our own fingerprint")
        except Refused as err:
            self.refuse(name, str(err))
            return None
        self._put(ann, name, addresses, now)
        return ann.fingerprint

    def refuse(self, name: str, reason: str) -> None:
        self.refused[reason.split(" ", 1)[0]] += 1
        log.info("LAN announcement %s refused: %s", _show(name.encode("utf-8", "replace")), reason)

    def _put(self, ann: Announcement, name: str, addresses: tuple[str, ...], now: float) -> None:
        old = self.entries.pop(ann.fingerprint, None)
        if old is not None:
            addresses = tuple(dict.fromkeys(addresses + old.addresses))[:MAX_ADDRESSES]
        elif len(self.entries) >= self.cap:
            evicted, _ = self.entries.popitem(last=False)
            log.info("nearby table full: forgot %s (heard least lately)", evicted[:16])
        self.entries[ann.fingerprint] = _Entry(name, addresses, ann.invites, now)

    def forget_service(self, name: str) -> None:
        """The service said goodbye: the fingerprint it announced is no longer nearby."""
        for fp, entry in list(self.entries.items()):
            if entry.name == name:
                del self.entries[fp]

    def expire(self, now: float) -> None:
        while self.entries:
            fp, entry = next(iter(self.entries.items()))
            if now - entry.last_seen < self.ttl:
                return
            del self.entries[fp]

    def listing(self, now: float, contacts: dict[str, str | None]) -> list[Nearby]:
        """Every live entry, newest first; ``contacts``: fingerprint -> name, for known ones."""
        self.expire(now)
        return [
            Nearby(fp, e.addresses, contacts.get(fp), e.invites, e.last_seen, fp in contacts)
            for fp, e in reversed(self.entries.items())
        ]

    def with_invite(self, nameplate: int, now: float) -> list[str]:
        """``host:port`` of every node advertising an open invitation ``nameplate``."""
        self.expire(now)
        found = [
            a
            for e in reversed(self.entries.values())
            if nameplate in e.invites
            for a in e.addresses
        ]
        return list(dict.fromkeys(found))


class RateLimit:
    """Token buckets: ``per_source`` announcements a second from one source (burst
    ``burst``) and ``total`` a second from all; at most ``sources`` sources tracked
    (the least recently heard one forgotten)."""

    def __init__(
        self, per_source=1.0, burst=5.0, total=50.0, total_burst=200.0, sources: int = 1024
    ) -> None:
        self.rate, self.burst = per_source, burst
        self.total, self.total_burst = total, total_burst
        self.cap = sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._all = (total_burst, None)

    def allow(self, source: str, now: float) -> bool:
        tokens, at = self._all
        tokens = (
            self.total_burst
            if at is None
            else min(self.total_burst, tokens + (now - at) * self.total)
        )
        if tokens < 1.0:
            self._all = (tokens, now)
            return False
        mine, then = self._buckets.pop(source, (self.burst, now))
        mine = min(self.burst, mine + (now - then) * self.rate)
        if len(self._buckets) >= self.cap:
            self._buckets.popitem(last=False)
        if mine < 1.0:
            self._buckets[source] = (mine, now)
            self._all = (tokens, now)
            return False
        self._buckets[source] = (mine - 1.0, now)
        self._all = (tokens - 1.0, now)
        return True


def _show(value: bytes | None) -> str:
    """A received value for a log line: short, printable."""
    if value is None:
        return "missing"
    text = value[:40].decode("ascii", "backslashreplace")
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return repr(text + ("..." if len(value) > 40 else ""))
