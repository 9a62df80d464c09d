"""The web face: ``enclave --web`` (``enclave-web``), a local page served by Quart.

Rules:
- Quart on Hypercorn runs on the node's uvloop loop, on a socket bound here (by
  default 127.0.0.1:5000) and handed to Hypercorn as ``fd://``. Any other address
  prints a warning: the page then answers other machines, over plain HTTP.
- A token is made for this launch and printed inside the address to open; nothing
  is opened for the user. ``security`` says how the token, Host and Origin are checked.
- The terminal is never asked for a password. With ``ENCLAVE_PASSWORD`` or
  ``--password-file`` and an identity, the node unlocks and starts at once; otherwise
  the page offers to create an identity or to unlock the existing one.
- SIGTERM, SIGHUP and SIGINT stop the page and then the node (``runner``), whose
  outbox keeps what is still queued.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

from enclave.errors import UserError

GRACE_S = 2.0  # how long open pages may hold up a stop
WS_MAX_BYTES = 64 * 1024


def run(args) -> int:
    from enclave import cli, passwords, runner

    place, config = runner.prepare(args)
    identity = None
    if (args.password_file or os.environ.get(passwords.ENV_VAR)) and place.has_identity():
        identity = cli.unlock(args)
    sock = bind(args.web_host, args.web_port)
    return runner.run_on_uvloop(serve(place.path, config, args, identity, sock))


def bind(host: str, port: int) -> socket.socket:
    """The page's listening socket; a busy or unknown address is one line."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = info[0]
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


async def serve(home, config, args, identity, sock: socket.socket) -> int:
    from hypercorn.asyncio import serve as hypercorn_serve

    from enclave import runner
    from enclave.web import security
    from enclave.web.app import create_app
    from enclave.web.backend import Backend

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
    try:
        backend = Backend(home, starter)
        if identity is not None:
            await backend.start(identity)
        guard = security.Guard(security.new_token(), port, args.web_host)
        app = create_app(backend, guard)
        _announce(args.web_host, port, guard.token)
        if backend.state != "ready":
            what = "create your identity" if backend.state == "setup" else "unlock your identity"
            print(f"No node runs yet: {what} on that page.", flush=True)
        await hypercorn_serve(app, _hypercorn_config(sock), shutdown_trigger=stop.wait)
        return 0
    finally:
        runner.remove_signals(loop, signals)
        for node, control in running:
            print(
                f"Stopping; {node.delivery.queued()} message(s) stay queued in the outbox",
                flush=True,
            )
            await runner.stop_node(node, control)


def _hypercorn_config(sock: socket.socket):
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # Hypercorn owns (and closes) it from here
    config.accesslog = None
    config.loglevel = "WARNING"
    config.graceful_timeout = GRACE_S
    config.websocket_max_message_size = WS_MAX_BYTES
    return config


def _announce(host: str, port: int, token: str) -> None:
    from enclave.web.security import is_loopback

    shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if not is_loopback(host):
        print(
            f"enclave: warning: the web page listens on {_show(host, port)}, so other machines "
            "can reach it over plain HTTP; anyone who learns its address with the token can "
            "read and send your messages. Use the default (127.0.0.1) unless you must.",
            file=sys.stderr,
            flush=True,
        )
    print(f"Enclave web page: http://{_show(shown, port)}/#token={token}", flush=True)
    print(
        "Open that address in your browser; keep it private, it is this launch's key.", flush=True
    )


def _show(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
