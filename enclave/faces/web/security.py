"""Who may talk to the local web page: the launch token, Host, Origin and headers.

Rules:
- A token is made per launch (``secrets.token_urlsafe`` and a check) and printed inside the URL's
  fragment (``#token=...``), which browsers never send: it stays out of request lines
  and logs. The page sends it as ``Authorization: Bearer`` on every API request and as
  an offered WebSocket subprotocol ``enclave.token.<token>``; the server answers the
  other one it was offered, ``enclave.v1``, never the token.
- Every request, the page shell and its static files included, must carry a Host that
  names this server: ``localhost``, an IP literal or the configured ``--web-host`` (over
  HTTPS also the certificate's DNS names), with the page's port. A name an attacker
  controls (DNS rebinding) is refused.
- The WebSocket handshake and every state-changing request must come from this page:
  the Origin must be the page's scheme (``http://``, or ``https://`` when it is served
  over TLS) plus the Host; over HTTPS an ``http://`` Origin is refused. A request without an Origin is refused
  on the WebSocket (browsers always send one); a POST without one (a script, never a
  cross-site page) still needs the token and a JSON body.
- No CORS headers at all: another origin can neither read answers nor send JSON.
- Every answer carries a strict Content-Security-Policy (no inline script or style,
  ``connect-src 'self'``), no-sniff, no framing, no referrer.
"""

from __future__ import annotations

import ipaddress
import secrets

SUBPROTOCOL = "enclave.v1"
TOKEN_PREFIX = "enclave.token."

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_CHECK_MOD = 262139  # a prime below 2**18: the check fits three base64url characters


def new_token() -> str:
    """256 random bits and three check characters: the page tells a mistyped or cut
    address ("copy it again") from a whole one of an earlier launch without asking the
    server (page: ``tokenWellFormed`` in api.js computes the same)."""
    body = secrets.token_urlsafe(32)
    return body + token_check(body)


def token_check(body: str) -> str:
    h = 0
    for ch in body:
        h = (h * 31 + ord(ch)) % _CHECK_MOD
    return "".join(_B64URL[(h >> shift) & 63] for shift in (12, 6, 0))


class Guard:
    """The checks for one launch: its token, and the names and port it answers to."""

    def __init__(
        self,
        token: str,
        port: int,
        host: str = "127.0.0.1",
        *,
        scheme: str = "http",
        also: tuple[str, ...] = (),
    ) -> None:
        self.token = token
        # Tokens besides the launch token (signin.py: those traded by signed-in browsers
        # while their session lives); none until the page's routes set it.
        self.also_ok = lambda given: False
        self.port = port
        self.names = {"localhost", host.lower().strip("[]"), *(n.lower() for n in also)}
        self.scheme = scheme
        self.default_port = 443 if scheme == "https" else 80  # a Host without a port

    def host_ok(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        name, port = split_host(host_header.strip().lower())
        if port is None:
            port = self.default_port
        if port != self.port or name is None:
            return False
        return name in self.names or _is_ip(name)

    def origin_ok(self, origin: str | None, host_header: str | None) -> bool:
        if not origin or not self.host_ok(host_header):
            return False
        return origin.strip().lower() == f"{self.scheme}://{host_header.strip().lower()}"

    def token_ok(self, given: str | None) -> bool:
        if not given:
            return False
        return secrets.compare_digest(given.encode(), self.token.encode()) or self.also_ok(given)

    def bearer_ok(self, authorization: str | None) -> bool:
        scheme, _, value = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and self.token_ok(value.strip())

    def subprotocol_ok(self, offered: list[str]) -> bool:
        tokens = [p[len(TOKEN_PREFIX) :] for p in offered if p.startswith(TOKEN_PREFIX)]
        return SUBPROTOCOL in offered and len(tokens) == 1 and self.token_ok(tokens[0])


def split_host(value: str) -> tuple[str | None, int | None]:
    """``"[::1]:5000"`` -> ("::1", 5000); a malformed value gives (None, None)."""
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None, None
        port_text = rest[1:] if rest else None
    else:
        name, sep, port_text = value.partition(":")
        if not sep:
            port_text = None
    if not name:
        return None, None
    if port_text is None:
        return name, None
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        return None, None
    return name, int(port_text)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
