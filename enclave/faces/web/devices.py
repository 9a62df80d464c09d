"""Browsers that stay signed in to this home's page across restarts ("device sessions").

The launch token (security.py) changes at every start, so a bookmark or a new tab would
need the freshly printed address each time. A browser that once opened the page with
the token may keep a device cookie instead, and trade it for the current token:

- The cookie is issued only to a request that carries this launch's token (a page the
  user opened from the printed address). Its value is ``ID.SECRET`` (128 + 256 random
  bits); the home keeps only SHA-256(SECRET), so the file does not sign anyone in.
- It is ``HttpOnly`` (page scripts never see it), ``SameSite=Strict`` (no cross-site
  request carries it), ``Secure`` over HTTPS, and its ``Path`` is ``/api/device`` so
  it travels only with the exchange, never with the other API requests or the
  WebSocket, which keep needing the token exactly as before.
- Its name carries a tag of this home's folder: cookies ignore ports, and two homes on
  one machine must not overwrite or read each other's.
- The exchange (``POST /api/device/resume``) answers the token only to a JSON POST from
  the page's own Origin with a valid cookie; the answer is readable by the page alone
  (no CORS). The Host check refuses DNS rebinding as for every request.
- A session unused for ``IDLE_DAYS`` ends; at most ``MAX_SESSIONS`` are kept (the
  oldest use goes). ``enclave web-sessions`` lists them and revokes one or all; the
  page can sign its own browser out. The file is read at each exchange, so a
  revocation from the command line holds at once, with the page running.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from enclave.errors import UserError
from enclave.identity import home as homes

FILE = "web-sessions.json"
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
    digest: str  # SHA-256 of the secret, hex
    created_ms: int
    used_ms: int
    agent: str  # what the browser called itself, for the list (shortened)


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

    def issue(self, agent: str) -> tuple[Device, str]:
        """A new session; (its record, the cookie value). The oldest go past the cap."""
        ident, secret = secrets.token_hex(16), secrets.token_urlsafe(32)
        now = self.clock()
        device = Device(ident, _digest(secret), now, now, _short(agent))
        kept = sorted(self.load(), key=lambda d: d.used_ms)[-(MAX_SESSIONS - 1) :]
        self._save([*kept, device])
        return device, f"{ident}.{secret}"

    def check(self, value: str | None) -> Device | None:
        """The session a cookie value belongs to, or None; marks it used (hourly)."""
        ident, _, secret = (value or "").partition(".")
        if not ident or not secret:
            return None
        devices = self.load()
        found = next((d for d in devices if d.id == ident), None)
        if found is None or not secrets.compare_digest(found.digest, _digest(secret)):
            return None
        now = self.clock()
        if now - found.used_ms >= _TOUCH_MS:
            found.used_ms = now
            self._save(devices)
        return found

    def revoke(self, ident: str | None) -> int:
        """End one session (by its id or a prefix of at least 4 characters) or, with
        None, all of them; how many ended."""
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
