"""The web face: ``enclave --web`` (``enclave-web``), a local page served by Quart.

Rules:
- Quart on Hypercorn runs on the node's uvloop loop, on a socket bound here (by
  default 127.0.0.1:5000) and handed to Hypercorn as ``fd://``.
- The unlock password and the token never cross a network in clear: an address that
  is not loopback (127.0.0.0/8, ::1, a name that resolves to one) is refused unless
  ``--web-cert`` and ``--web-key`` are given; with them the page is served over HTTPS
  (on any address) and still warns that other machines can reach it. The pair is
  checked before anything starts (PEM, unencrypted key that matches the certificate,
  key file not readable by other users), so Hypercorn never prompts or fails later.
  Over HTTPS the page also answers to the DNS names its certificate carries: a page
  of another site rebound to our address would fail the browser's certificate check.
- A token is made for this launch and printed inside the address to open, once, on
  the terminal; nothing is opened for the user. When stdout is not a terminal (a
  pipe, a file, a service's journal: a log), the address printed there has no token;
  the full address goes to ``web.url`` in the home folder (0600, removed at stop).
  No logger ever sees it. ``security`` says how the token, Host and Origin are checked.
- The terminal is never asked for a password. With ``ENCLAVE_PASSWORD`` or
  ``--password-file`` and an identity, the node unlocks and starts at once; otherwise
  the page offers to create an identity or to unlock the existing one.
- SIGTERM, SIGHUP and SIGINT stop the page and then the node (``runner``), whose
  outbox keeps what is still queued.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import sys
from pathlib import Path
from typing import NamedTuple

from enclave.errors import UserError

GRACE_S = 2.0  # how long open pages may hold up a stop
WS_MAX_BYTES = 64 * 1024
ADDRESS_FILE = "web.url"  # the address with the token, when stdout is not a terminal


class Tls(NamedTuple):
    cert: str
    key: str
    names: tuple[str, ...]  # the certificate's DNS names


def run(args) -> int:
    from enclave.faces import cli, runner
    from enclave.identity import passwords

    tls = tls_files(args)  # flags first: a page open to the network without TLS never starts
    place, config = runner.prepare(args)
    identity = None
    if (args.password_file or os.environ.get(passwords.ENV_VAR)) and place.has_identity():
        identity = cli.unlock(args)
    sock = bind(args.web_host, args.web_port)
    return runner.run_on_uvloop(serve(place.path, config, args, identity, sock, tls))


def tls_files(args) -> Tls | None:
    """The certificate and key for HTTPS, or None for plain HTTP, which only loopback may use."""
    cert, key = getattr(args, "web_cert", None), getattr(args, "web_key", None)
    if (cert is None) != (key is None):
        raise UserError("--web-cert and --web-key go together: a certificate and its private key")
    if cert is not None:
        return Tls(cert, key, check_tls_pair(cert, key))
    if not is_loopback_address(args.web_host, args.web_port):
        raise UserError(
            f"--web-host {args.web_host} lets other machines reach the web page, which then "
            "needs HTTPS so the password and token never cross the network in clear: add "
            "--web-cert FILE --web-key FILE, or use a loopback address such as 127.0.0.1"
        )
    return None


def check_tls_pair(cert: str, key: str) -> tuple[str, ...]:
    """A PEM certificate and the unencrypted private key that matches it (one line if
    not); the DNS names the certificate carries."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    from enclave.identity import home, passwords

    cert_data = home.read_file(Path(cert), "certificate", 1 << 20)
    try:
        chain = x509.load_pem_x509_certificates(cert_data)
    except ValueError:
        raise UserError(f"certificate {cert} is not a PEM certificate") from None
    key_path = Path(key)
    key_data = home.read_file(key_path, "TLS key", 1 << 20)
    passwords.check_private_mode(os.stat(key_path), key_path, "TLS key")
    try:
        private = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:
        raise UserError(f"TLS key {key} is encrypted; give it unencrypted (mode 600)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise UserError(f"TLS key {key} is not a PEM private key") from None
    if private.public_key() != chain[0].public_key():
        raise UserError(f"TLS key {key} does not belong to certificate {cert}")
    try:
        names = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(names.value.get_values_for_type(x509.DNSName))


def is_loopback_address(host: str, port: int) -> bool:
    """Does ``host`` (as ``bind`` will resolve it) name a loopback address?"""
    try:
        address = _resolve(host, port)[4][0]
    except UserError:
        return True  # nothing can listen there; bind says why in one line
    return ipaddress.ip_address(address.split("%")[0]).is_loopback


def _resolve(host: str, port: int) -> tuple:
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as err:
        raise UserError(f"cannot open the web page on {host}: {err.strerror or err}") from None
    return info[0]


def bind(host: str, port: int) -> socket.socket:
    """The page's listening socket; a busy or unknown address is one line."""
    family, kind, proto, _, address = _resolve(host, port)
    try:
        sock = socket.socket(family, kind, proto)
    except OSError as err:
        raise UserError(f"cannot open the web page on {host}: {err.strerror or err}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise UserError(
            f"cannot open the web page on {_show(host, port)} ({err.strerror}); "
            "is another program using it? try --web-port"
        ) from None
    return sock


async def serve(home, config, args, identity, sock: socket.socket, tls=None) -> int:
    from hypercorn.asyncio import serve as hypercorn_serve

    from enclave.faces import runner
    from enclave.faces.web import security
    from enclave.faces.web.app import create_app
    from enclave.faces.web.backend import Backend

    runner.refuse_second_node(home)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = runner.install_signals(loop, stop, interactive=False)
    running: list = []

    async def starter(unlocked):
        node, control = await runner.start_node(home, unlocked, config, args)
        running.append((node, control))
        return node

    port = sock.getsockname()[1]
    remote = not ipaddress.ip_address(sock.getsockname()[0].split("%")[0]).is_loopback
    scheme = "https" if tls else "http"
    address_file = Path(home) / ADDRESS_FILE
    try:
        backend = Backend(home, starter)
        if identity is not None:
            await backend.start(identity)
        names = tls.names if tls else ()
        guard = security.Guard(security.new_token(), port, args.web_host, scheme=scheme, also=names)
        app = create_app(backend, guard)
        _announce(args.web_host, port, scheme, guard.token, remote=remote, file=address_file)
        if backend.state != "ready":
            what = "create your identity" if backend.state == "setup" else "unlock your identity"
            print(f"No node runs yet: {what} on that page.", flush=True)

        async def stopping() -> None:
            await stop.wait()
            backend.closing.set()  # open pages are told at once (app.py, the socket)

        await hypercorn_serve(app, _hypercorn_config(sock, tls), shutdown_trigger=stopping)
        return 0
    finally:
        address_file.unlink(missing_ok=True)
        runner.remove_signals(loop, signals)
        for node, control in running:
            print(
                f"Stopping; {node.queued()} message(s) stay queued in the outbox",
                flush=True,
            )
            await runner.stop_node(node, control)


def _hypercorn_config(sock: socket.socket, tls: Tls | None = None):
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # Hypercorn owns (and closes) it from here
    if tls is not None:
        config.certfile, config.keyfile = tls.cert, tls.key  # checked: no prompt
    config.accesslog = None
    config.loglevel = "WARNING"
    config.graceful_timeout = GRACE_S
    config.websocket_max_message_size = WS_MAX_BYTES
    return config


def _announce(host: str, port: int, scheme: str, token: str, *, remote: bool, file: Path):
    """The address to open, with the token: once, on the terminal (see the rules)."""
    from enclave.identity import home

    shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    base = f"{scheme}://{_show(shown, port)}/"
    if remote:
        print(
            f"enclave: warning: the web page listens on {_show(host, port)}, so other machines "
            "can reach it (over HTTPS); anyone who learns its address with the token can "
            "read and send your messages.",
            file=sys.stderr,
            flush=True,
        )
    if sys.stdout.isatty():
        print(f"Enclave web page: {base}#token={token}", flush=True)
        print(
            "Open that address in your browser; keep it private, it is this launch's key.",
            flush=True,
        )
        return
    home.prepare(home.Home(file.parent))  # a first launch: the page creates the identity
    home.write_atomic(file, f"{base}#token={token}\n".encode("ascii"), 0o600)
    print(
        f"Enclave web page: {base} (its address with this launch's token is in {file}, "
        "readable only by you)",
        flush=True,
    )


def _show(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
