"""Starting a node for a face (the REPL, headless mode, the web page).

Rules:
- Everything that can go wrong before the network is up is checked first, in this
  order: the settings (``enclave.toml`` and ``--set``), the identity (password prompt,
  ``ENCLAVE_PASSWORD`` or ``--password-file``), then the port. Each failure is a
  ``UserError`` the CLI prints as one line with a non-zero exit. (The web page may
  start without the identity: its page unlocks it, then calls ``start_node``.)
- uvloop is chosen here, once, at the entry point; nothing below imports it. The
  interpreter's thread switch interval is set here too (``SWITCH_INTERVAL_S``).
- SIGTERM, SIGHUP and (headless) SIGINT end the face; then the node
  stops cleanly (sessions closed, pending commits written). Queued messages stay in
  the outbox for the next start.
- The node prints one short line before the face takes over (where it listens, how
  many contacts, web on or off) and the user's fingerprint (grouped); the full
  settings only with ``--verbose``. With ``--json`` these are JSON objects on stdout
  like every event (``say``), so a script reads nothing else there.
- A control socket (``control.sock`` in the home folder, mode 0600, refused to other
  users by SO_PEERCRED) lets ``enclave send`` hand a message to the running node.
  A live socket means another node already runs on this home folder: that start is
  refused, since two nodes must never share one store.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from enclave.errors import UserError

CONTROL_NAME = "control.sock"
CONTROL_MODE = 0o600
CONTROL_LIMIT = 1 << 20  # one request line: a 10,000-character message, JSON-escaped
DELIVERY_WAIT = 5.0  # how long ``enclave send`` waits to report "delivered"

Face = Callable[["object", asyncio.Event], Awaitable[int | None]]


def run(args, face: Face, *, interactive: bool) -> int:
    """Unlock, start the node on uvloop, run ``face(node, stop)``, stop; the exit code."""
    from enclave.faces import cli

    place, config = prepare(args)
    identity = cli.unlock(args)
    return run_on_uvloop(_serve(place.path, identity, config, args, face, interactive=interactive))


def prepare(args):
    """The checks every face makes before anything starts: (home, settings)."""
    from enclave.faces import cli
    from enclave.node import settings

    _fill_standard_fds()
    place = cli.home_of(args)
    return place, settings.load(place.path, settings.overrides_from(args))


# A node's threads (event loop, store writer, crypto) pass the GIL back and forth: the
# writer gives it up for every SQLite statement and, while the loop is busy, waits up
# to the switch interval to get it back (5 ms by default). 0.5 ms measured 10-20% more
# durable throughput and a lower one-way latency (PERFORMANCE.md).
SWITCH_INTERVAL_S = 0.0005


def run_on_uvloop(main: Awaitable[int]) -> int:
    import faulthandler

    import uvloop

    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # A node that seems stuck says where each thread is: ``kill -USR1 PID`` prints their
    # stacks to stderr (it keeps running).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def _serve(home: Path, identity, config, args, face: Face, *, interactive: bool) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Refused before any signal handler is set, so a second node leaves nothing behind.
    refuse_second_node(home)
    # Handlers before the node starts: a SIGTERM sent as soon as "Listening on" shows
    # must still stop the node cleanly, not kill it.
    signals = install_signals(loop, stop, interactive=interactive)
    try:
        node, control = await start_node(home, identity, config, args)
    except BaseException:
        remove_signals(loop, signals)
        raise
    try:
        code = await _until_stopped(face(node, stop), stop)
        queued = node.queued()
        say(
            args,
            f"Stopping; {queued} message(s) stay queued in the outbox",
            type="stopping",
            queued=queued,
        )
        return code
    finally:
        remove_signals(loop, signals)
        await stop_node(node, control)


def install_signals(loop, stop: asyncio.Event, *, interactive: bool) -> list:
    """SIGTERM, SIGHUP and SIGINT set ``stop``; failures in callbacks are one line."""
    loop.set_exception_handler(_one_line_problem)
    signals = [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    if interactive:
        # At the prompt Ctrl-C is a key (it clears the line); between prompts the
        # terminal turns it into SIGINT, which must not end the chat either.
        loop.add_signal_handler(signal.SIGINT, lambda: None)
    return signals


def remove_signals(loop, signals: list) -> None:
    for sig in signals:
        loop.remove_signal_handler(sig)


def refuse_second_node(home: Path) -> None:
    _refuse_second_node(home / CONTROL_NAME)


async def start_node(home: Path, identity, config, args):
    """Start a node on ``args.host``/``args.port`` with its control socket, print where
    it listens; ``(node, control)`` for ``stop_node``."""
    from enclave.identity.home import Home
    from enclave.node import Node
    from enclave.node.key_rotation import refuse_revoked

    control_path = home / CONTROL_NAME
    _refuse_second_node(control_path)
    refuse_revoked(Home(home))
    node = Node(
        home,
        identity.private_key,
        config,
        retired=identity.retired,
        store_key=identity.store_key,
        sealing=sealing_progress,
    )
    host, port = await node.start(args.host, args.port)
    try:
        control = await start_control(node, control_path)
    except BaseException:
        await node.stop()
        raise
    _announce(node, config, args, _show_address(host, port))
    if control is None:
        say(
            args,
            f"note: no control socket ({control_path} is too long a path); "
            "enclave send will queue messages for the next start",
            type="warning",
        )
    return node, control


def sealing_progress(done: int, total: int) -> None:
    """What a person sees while the history an older Enclave kept in clear is sealed
    (once, at the first start; a large history takes seconds)."""
    if total < SEALING_SHOWN:
        return
    end = "\n" if done >= total else ""
    print(f"\rEncrypting the stored history: {done * 100 // total}% of {total:,} messages",
          end=end, file=sys.stderr, flush=True)  # fmt: skip


SEALING_SHOWN = 10_000  # fewer messages are sealed too fast to need a line


def _announce(node, config, args, address: str) -> None:
    """One short line (where, how many contacts, web on or off), the fingerprint, and
    the full settings only with ``--verbose`` (or ``enclave settings``)."""
    from enclave.identity import keys

    contacts = len(node.contacts())
    web = "on" if getattr(args, "web", False) else "off"
    say(
        args,
        f"Listening on {address} · {contacts} contact{'' if contacts == 1 else 's'} · web {web}",
        type="started",
        address=address,
        fingerprint=node.fingerprint,
        contacts=contacts,
        web=web == "on",
    )
    say(args, f"Your fingerprint: {keys.group(node.fingerprint)}", type=None)
    if node.discovery_problem is not None:
        # Found while the node started, before any face listened to its events.
        problem = {"what": "problem", "text": node.discovery_problem}  # as jsonlines has it
        say(args, f"note: {node.discovery_problem}", type="warning", **problem)
    if getattr(args, "verbose", False):
        say(args, config.summary(), type="settings", settings=_settings_dict(config))


def _settings_dict(config) -> dict:
    from enclave.node.settings import KNOBS

    return {name: getattr(config, name) for name in KNOBS} | {"source": config.source}


def say(args, line: str, /, *, type: str | None, **fields) -> None:
    """A line for the person (``line``), or with ``--json`` one JSON object of ``type``
    and ``fields`` (its ``text`` when none; nothing when ``type`` is None: already in
    another object)."""
    if not getattr(args, "json", False):
        log(line)
    elif type is not None:
        log(json.dumps({"type": type, **(fields or {"text": line})}))


async def stop_node(node, control) -> None:
    """Close the control socket, then stop the node (sessions closed, commits written)."""
    if control is not None:
        control.close()
        _unlink(control_path(node.home))
    await node.stop()


async def _until_stopped(face: Awaitable[int | None], stop: asyncio.Event) -> int:
    """Run the face until it returns or a signal sets ``stop`` (then cancel it)."""
    task = asyncio.ensure_future(face)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if not task.done():
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return 0
    return task.result() or 0


def _fill_standard_fds() -> None:
    """Put /dev/null on a closed stdin/stdout/stderr. Otherwise the next socket or
    file opened takes fd 0-2, and libuv aborts when it closes one (``enclave --listen
    <&-`` as a service)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one
    if sys.stdin is None:  # Python started without fd 0: let the password code ask it
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - lives as long as the process


def _one_line_problem(loop, context: dict) -> None:
    """A failure in a callback is reported on one line; the node keeps running."""
    err = context.get("exception")
    what = f"{type(err).__name__}: {err}" if err else context.get("message", "unknown")
    print(f"enclave: internal problem ({' '.join(str(what).split())})", file=sys.stderr)


def _show_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- the control socket ---------------------------------------------------------------
#
# One request per connection: a JSON line {"op": "send", "peer": ..., "text": ...}.
# Answers are JSON lines: {"state": "queued", "peer": ..., "name": ...}, then possibly
# {"state": "delivered"} or {"state": "failed", "reason": ...}; or {"error": ...}.


def _refuse_second_node(path: Path) -> None:
    if not path.exists():
        return
    if _socket_alive(path):
        from enclave.identity.home import Home

        reach = Home(path.parent).command("send", "PEER", "MESSAGE")
        raise UserError(
            f"another Enclave node is already running with {path.parent}; "
            f"stop it first, or reach it with: {reach}"
        )
    _unlink(path)  # left behind by a node that did not stop cleanly


def _socket_alive(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


async def start_control(node, path: Path):
    """Serve the control socket; ``None`` when the path is too long for a Unix socket."""
    if len(os.fsencode(path)) >= 104:  # sun_path holds 104-108 bytes
        return None

    async def handle(reader, writer):
        try:
            await _handle_control(node, reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_unix_server(handle, str(path), limit=CONTROL_LIMIT)
    os.chmod(path, CONTROL_MODE)  # the 0700 home folder already keeps others out
    return server


async def _handle_control(node, reader, writer) -> None:
    if not _same_user(writer.get_extra_info("socket")):
        return
    try:
        request = json.loads(await reader.readline())
        op = request.get("op") if isinstance(request, dict) else None
        if op == "stats":  # counters, for scripts and the process tests
            await _answer(writer, node.stats())
            return
        if op == "pairing":
            from enclave.faces.control_pairing import serve_pairing

            await serve_pairing(node, request, partial(_answer, writer))
            return
        if op == "group":
            from enclave.faces.control_groups import serve_group

            await serve_group(node, request, partial(_answer, writer), DELIVERY_WAIT)
            return
        if op == "rotate_key":  # enclave rotate-key: the running node takes the new key
            from enclave.faces.rotate import serve_rotation

            await serve_rotation(node, request, partial(_answer, writer))
            return
        if op == "disappear":  # enclave disappear PEER TIME: the running node sends the TIMER
            from enclave.faces.disappear import serve

            await serve(node, request, partial(_answer, writer))
            return
        if op == "nearby":  # enclave nearby: what LAN discovery heard
            from enclave.faces.nearby import serve

            await serve(node, partial(_answer, writer))
            return
        if op == "delete":  # enclave delete PEER REF: every open face drops the message
            from enclave.faces.delete import serve

            await serve(node, request, partial(_answer, writer))
            return
        if op not in ("send", "reply", "contact", "file"):
            raise UserError("unknown request")
        peer, text = request.get("peer"), request.get("text", "")
        if not isinstance(peer, str) or not isinstance(text, str):
            raise UserError(f"a {op} request needs peer and text")
        quote = _quote(request) if op == "reply" else {}
    except (ValueError, UserError, asyncio.LimitOverrunError) as err:
        await _answer(writer, {"error": f"bad control request ({err})"})
        return
    if op in ("send", "reply"):
        await _control_send(node, peer, text, writer, **quote)
    elif op == "file":
        from enclave.faces.control_files import serve_file

        await serve_file(node, peer, text, request.get("wait") is True, partial(_answer, writer))
    else:
        await _answer(writer, _control_contact(node, request))


def _control_contact(node, request: dict) -> dict:
    """A change to the address book (``enclave add/rename/block/unblock/remove``), made
    by the running node so that its sessions, queues and faces follow at once; or the
    list of contacts (``enclave peers``: the node has the key that opens their names)."""
    action, peer, text = request.get("action"), request["peer"], request.get("text") or None
    changes = {
        "owed": lambda: node.owed(peer),
        "rename": lambda: node.rename_contact(peer, text),
        "block": lambda: node.block_contact(peer, True),
        "unblock": lambda: node.block_contact(peer, False),
        "remove": lambda: node.remove_contact(peer),
        "clear": lambda: _control_clear(node, peer),
        "receipts_on": lambda: node.set_receipts(peer, True),
        "receipts_off": lambda: node.set_receipts(peer, False),
        "history_on": lambda: node.set_keep_history(peer, True),
        "history_off": lambda: node.set_keep_history(peer, False),
        "add": lambda: _control_add(node, request, text),
        "list": node.contacts,  # enclave peers
    }
    if action not in changes:
        return {"error": f"bad control request (unknown contact action {action!r})"}
    from enclave.node import DowngradeRefused

    try:
        done = changes[action]()
    except DowngradeRefused as err:
        return {"error": str(err), "downgrade": True}
    except UserError as err:
        return {"error": str(err)}
    if action == "owed":
        return {"owed": done}
    if action == "list":
        from enclave.faces.cli import listed_peer

        return {"peers": [listed_peer(p) for p in done]}
    if action == "add":
        return done
    return {"peer": done.fingerprint, "name": done.name}


def _control_clear(node, peer: str):
    node.clear_history(peer)
    return node.resolve(peer)


def _control_add(node, request: dict, name: str | None) -> dict:
    pem, address, source = request.get("pem"), request.get("address"), request.get("source")
    protocol, force = request.get("protocol"), request.get("force") is True
    if not isinstance(pem, str) or not isinstance(address, str) or not isinstance(source, str):
        raise UserError("bad control request (an add needs pem, address and source)")
    if protocol not in (None, "auto", "v1"):
        raise UserError("bad control request (protocol must be auto or v1)")
    done = node.add_contact(pem, address, name=name, protocol=protocol, force=force, source=source)
    return done.summary()


def _quote(request: dict) -> dict:
    """What a "reply" request quotes (``enclave reply PEER REF``): the message's #ref or
    full id, and the id's direction (in, out, either; none for a #ref)."""
    ref, direction = request.get("ref"), request.get("direction")
    if not isinstance(ref, str) or not ref or direction not in (None, "in", "out", "either"):
        raise UserError("a reply request needs ref (and direction: in, out or either)")
    return {"reply": ref, "reply_direction": direction}


async def _control_send(
    node, peer: str, text: str, writer, reply: str | None = None, reply_direction=None
) -> None:
    from enclave.node.display import message_ref
    from enclave.node.events import DeliveryChanged

    outcome: asyncio.Future = asyncio.get_running_loop().create_future()
    watched: dict = {}

    def watch(event) -> None:
        if (
            isinstance(event, DeliveryChanged)
            and event.rowid == watched.get("rowid")
            and event.state in ("delivered", "failed")
            and not outcome.done()
        ):
            outcome.set_result(event)

    unsubscribe = node.subscribe(watch)
    try:
        try:
            sent = await node.send(peer, text, reply=reply, reply_direction=reply_direction)
        except UserError as err:
            await _answer(writer, {"error": str(err)})
            return
        watched["rowid"] = sent.rowid
        record = node.contact(sent.peer)
        name = record.name if record else None
        ref = message_ref(sent.id)
        await _answer(writer, {"state": "queued", "peer": sent.peer, "name": name, "ref": ref})
        try:
            event = await asyncio.wait_for(outcome, DELIVERY_WAIT)
        except TimeoutError:
            return
        await _answer(writer, {"state": event.state, "reason": event.reason})
    finally:
        unsubscribe()


async def _answer(writer, message: dict) -> None:
    writer.write(json.dumps(message).encode() + b"\n")
    try:
        await writer.drain()
    except ConnectionError:
        pass


def _same_user(sock) -> bool:
    """Only the user who runs the node may use its control socket."""
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return True  # no way to ask; the 0700 folder and 0600 socket still apply
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


def control_path(home: Path) -> Path:
    return Path(home) / CONTROL_NAME


def node_running(home: Path) -> bool:
    """Whether a node runs on this home folder (its control socket answers)."""
    path = control_path(home)
    return path.exists() and _socket_alive(path)


def log(text: str) -> None:
    """One line on stdout, flushed (headless logs go to a pipe or a journal). A closed
    pipe (the log reader went away) silences the log; it never stops the node."""
    global _log_broken
    if _log_broken:
        return
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        _log_broken = True


_log_broken = False
