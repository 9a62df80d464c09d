"""Browsers that stay signed in to this home's page across restarts ("device sessions").

The launch token (security.py) changes at every start, so a bookmark or a new tab would
need the freshly printed address each time. A browser whose user chose "Keep this
browser signed in" (on a page opened with the token) may trade two secrets for a token
of its own instead:

- A cookie ``ID.SECRET`` (128 + 256 random bits): ``HttpOnly`` (page scripts never see
  it), ``SameSite=Strict`` (no cross-site request carries it), ``Secure`` over HTTPS,
  its ``Path`` ``/api/device`` (it travels with the exchange only), and a name tagged
  with this home's folder (two homes on one machine do not overwrite each other's).
- A PIN (256 random bits) the page keeps in its origin's localStorage and sends as the
  ``X-Enclave-Pin`` header. Cookies ignore ports, so any server on this host could be
  sent the cookie; localStorage belongs to this origin alone (scheme, host and port),
  so no other port's page can read the PIN. Only both together sign in.
- The home keeps SHA-256 digests of the secret and the PIN, never either, so the file
  signs nobody in. It is changed under a lock (``web-sessions.lock``): the page's
  hourly "last used" and a revocation from the command line never undo each other.
- The exchange (``POST /api/device/resume``) answers only a JSON POST from the page's
  own Origin (Host checked as everywhere, so DNS rebinding fails) with a fresh token
  bound to that session. The page's other requests and its WebSocket accept that token
  as they accept the launch token, and only while the session lives: a revocation
  (``enclave web-sessions --revoke``, "Sign out this browser", or deleting the file)
  ends it at once, with the page running (signin.py re-reads the file when it changes).
- A session unused for ``IDLE_DAYS`` ends (each exchange renews the cookie); at most
  ``MAX_SESSIONS`` are kept (the oldest use goes).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from enclave.errors import UserError
from enclave.identity import home as homes

FILE = "web-sessions.json"
LOCK = "web-sessions.lock"
COOKIE_PATH = "/api/device"
IDLE_DAYS = 30
MAX_SESSIONS = 20
MAX_AGENT = 120
_TOUCH_MS = 3600_000  # the last use is written at most hourly: a bookmark is not a write load
_DAY_MS = 86_400_000
_LIMIT = 1 << 20


@dataclass
class Device:
    id: str
    digest: str  # SHA-256 of the cookie's secret, hex
    created_ms: int
    used_ms: int
    agent: str  # what the browser called itself, for the list (shortened)
    pin: str = ""  # SHA-256 of the PIN the page keeps, hex


def cookie_name(home: Path) -> str:
    tag = hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:12]
    return f"enclave-device-{tag}"


def _now() -> int:
    return int(time.time() * 1000)


class Devices:
    """The device sessions of one home, kept in ``HOME/web-sessions.json`` (0600)."""

    def __init__(self, home: Path, clock=_now) -> None:
        self.home = Path(home)
        self.path = self.home / FILE
        self.clock = clock

    # --- the file -----------------------------------------------------------------------

    def load(self) -> list[Device]:
        """The live sessions (expired ones are left out); [] without a file."""
        if not self.path.exists():
            return []
        try:
            raw = json.loads(homes.read_file(self.path, "the web sessions file", _LIMIT))
            found = [Device(**entry) for entry in raw["sessions"]]
        except (ValueError, KeyError, TypeError) as err:
            raise UserError(
                f"{self.path} is damaged ({err}); remove it to sign every browser out"
            ) from None
        cutoff = self.clock() - IDLE_DAYS * _DAY_MS
        return [d for d in found if d.used_ms >= cutoff]

    def _save(self, devices: list[Device]) -> None:
        body = {"version": 1, "sessions": [asdict(d) for d in devices]}
        homes.write_atomic(self.path, json.dumps(body, indent=1).encode(), 0o600)

    # --- what the page's routes call -----------------------------------------------------

    @contextlib.contextmanager
    def _locked(self):
        """The file's read-modify-write, one process at a time (the page, the CLI)."""
        if not self.home.is_dir():
            raise UserError(f"{self.home} is not a home folder")
        fd = os.open(self.home / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def issue(self, agent: str) -> tuple[Device, str, str]:
        """A new session; (its record, the cookie value, the PIN). The oldest go past
        the cap."""
        ident, secret, pin = (
            secrets.token_hex(16),
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(32),
        )
        now = self.clock()
        device = Device(ident, _digest(secret), now, now, _short(agent), _digest(pin))
        with self._locked():
            kept = sorted(self.load(), key=lambda d: d.used_ms)[-(MAX_SESSIONS - 1) :]
            self._save([*kept, device])
        return device, f"{ident}.{secret}", pin

    def check(self, value: str | None, pin: str | None = None) -> Device | None:
        """The session a cookie value (and, to sign in, its PIN) belongs to, or None;
        marks it used (hourly). Without ``pin`` it only names the session (to sign it
        out, or to see that this browser is signed in already)."""
        ident, _, secret = (value or "").partition(".")
        if not ident or not secret:
            return None
        found = self._find(ident)
        if found is None or not secrets.compare_digest(found.digest, _digest(secret)):
            return None
        if pin is not None and not secrets.compare_digest(found.pin, _digest(pin)):
            return None
        if self.clock() - found.used_ms >= _TOUCH_MS:
            self._touch(ident)
        return found

    def _find(self, ident: str) -> Device | None:
        return next((d for d in self.load() if d.id == ident), None)

    def _touch(self, ident: str) -> None:
        with self._locked():
            devices = self.load()
            for d in devices:
                if d.id == ident:
                    d.used_ms = self.clock()
            self._save(devices)

    def live_ids(self) -> set[str]:
        return {d.id for d in self.load()}

    def revoke(self, ident: str | None) -> int:
        """End one session (by its id or a prefix of at least 4 characters) or, with
        None, all of them; how many ended."""
        with self._locked():
            return self._revoke(ident)

    def _revoke(self, ident: str | None) -> int:
        devices = self.load()
        if ident is None:
            gone = devices
        else:
            if len(ident) < 4:
                raise UserError("give at least 4 characters of the session's id")
            gone = [d for d in devices if d.id.startswith(ident.lower())]
            if len(gone) > 1:
                raise UserError(f"{ident} matches {len(gone)} sessions; give more of its id")
            if not gone:
                raise UserError(f"no web session {ident} (enclave web-sessions lists them)")
        if gone or self.path.exists():
            self._save([d for d in devices if d not in gone])
        return len(gone)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _short(agent: str) -> str:
    text = "".join(ch for ch in agent if ch.isprintable())
    return text[:MAX_AGENT] or "unknown browser"
