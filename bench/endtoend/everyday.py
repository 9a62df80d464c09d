"""Everyday use: a contact's presence as it starts and stops, and ``enclave send`` into a
running node, timed to where its text shows.

Two nodes of their own, P (alice's key) and Q (bob's), each knowing the other at its
address, with the settings a user gets (``presence`` on, ``reconnect_min`` and
``reconnect_max`` at their defaults). Q always listens on the same port, as a user's
node does, so P's own dials (``enclave/node/dialing.py``) find it too. Times come from
``time.monotonic()``, the clock every process on this machine shares: P notes its events
(node_timing ``note``/``noted``), Q says when it listens (its ``ready`` line), this
process notes when it sent SIGTERM or launched a command.
"""

from __future__ import annotations

import os
import re
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

from endtoend import REPO
from endtoend.processes import node, stop

SEND_TIMEOUT = 60.0


def presence_and_send(tmp: Path, keys, rounds: int, runs: int) -> dict:
    """P and Q up and online to each other; then ``rounds`` times: Q stopped (SIGTERM)
    until P sees it offline, Q started again until P sees it online. Then ``runs``
    ``enclave send`` commands into P (its control socket), Q online to deliver them."""
    p = node("P", tmp, keys["alice"][0])
    q = node("Q", tmp, keys["bob"][0])
    port = q.port
    try:
        p.request("note")
        p.request(
            "add_peer", pem=keys["bob"][1].read_text(), address=f"127.0.0.1:{port}", name="bob"
        )
        q.request(
            "add_peer",
            pem=keys["alice"][1].read_text(),
            address=f"127.0.0.1:{p.port}",
            name="alice",
        )
        p.request("noted", ev="online", peer=q.fp)
        presence = {"rounds": rounds, "settings": dialing_defaults()}
        samples: dict[str, list[float]] = {"online": [], "offline": [], "online_from_launch": []}
        for _ in range(rounds):
            p.request("note")
            t_stop = time.monotonic()
            q.terminate()
            samples["offline"].append(p.request("noted", ev="offline", peer=q.fp)["t"] - t_stop)
            p.request("note")
            t_launch = time.monotonic()
            q = node("Q", tmp, keys["bob"][0], port=port)
            listening = q.wait(lambda e: e["ev"] == "ready", 0)["t"]
            t_online = p.request("noted", ev="online", peer=q.fp)["t"]
            samples["online"].append(t_online - listening)
            samples["online_from_launch"].append(t_online - t_launch)
        presence.update({name: summary_ms(values) for name, values in samples.items()})
        send = send_echo(tmp, p, keys["alice"][0], runs)
        p.request("note", on=False)
    finally:
        stop(*(x for x in (p, q) if not x.reaped))  # (Q is reaped if its restart failed)
    return {"presence": presence, "send": send}


def send_echo(tmp: Path, p, key_file: Path, runs: int) -> dict:
    """``python -m enclave --home P send bob TEXT``, ``runs`` times after one unmeasured
    run (it writes the bytecode caches a user's install already has): from the launch to
    P publishing the message's "queued" with its text (what its REPL and page show), and
    to the command's exit after it printed "Delivered". Then where a command's time
    goes: a bare interpreter's start, and the imports (``-X importtime``)."""
    home = tmp / "P"
    write_identity(home, key_file)  # ``enclave send`` wants a home with an identity
    path = p.request("control")["path"]
    if path is None:
        raise RuntimeError(f"no control socket: {home} is too long a path")
    shown, wall = [], []
    first = None
    for i in range(runs + 1):
        text = f"e2e send {i} {secrets.token_hex(4)}"
        p.request("note")
        t0 = time.monotonic()
        out = enclave_send(home, text)
        t_exit = time.monotonic()
        if "Delivered" not in out.stdout:
            raise RuntimeError(f"enclave send did not report Delivered: {out.stdout!r}")
        t_shown = p.request("noted", ev="queued", body=text)["t"]
        if first is None:
            first = {"shown_ms": 1000 * (t_shown - t0), "wall_ms": 1000 * (t_exit - t0)}
            continue
        shown.append(t_shown - t0)
        wall.append(t_exit - t0)
    imports = enclave_send(home, "e2e send, import times", "-X", "importtime")
    return {
        "runs": runs,
        "shown": summary_ms(shown),
        "wall": summary_ms(wall),
        "first_run": first,
        "imports": import_times(imports.stderr),
        "interpreter_ms": interpreter_start_ms(),
    }


def dialing_defaults() -> dict:
    """The settings P and Q dial with: a user's defaults."""
    from enclave.node.settings import Settings

    d = Settings()
    names = ("presence", "presence_dials", "reconnect_min", "reconnect_max")
    return {name: getattr(d, name) for name in names}


def enclave_send(home: Path, text: str, *options: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, *options, "-m", "enclave", "--home", str(home), "send", "bob", text]
    return subprocess.run(
        argv, env=_env(), capture_output=True, text=True, check=True, timeout=SEND_TIMEOUT
    )


def write_identity(home: Path, key_file: Path) -> None:
    """The node's key as Enclave keeps it (``identity.key``, encrypted; the password is
    thrown away: nothing here unlocks it) and ``identity.pub``."""
    from cryptography.hazmat.primitives import serialization

    from enclave.identity import keys
    from enclave.identity.home import Home

    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    keys.save_identity(Home(home), key, secrets.token_urlsafe(16))


_IMPORT_LINE = re.compile(r"^import time:\s*(\d+)\s*\|\s*(\d+)\s*\|( *)(\S+)")


def import_times(stderr: str) -> dict:
    """``-X importtime``'s top-level imports, summed: all of them and the ``enclave``
    package's own (its parts and what they pull in), in ms."""
    total = enclave = 0
    for line in stderr.splitlines():
        m = _IMPORT_LINE.match(line)
        if m is None or len(m.group(3)) > 1:  # one space: a top-level import
            continue
        total += int(m.group(2))
        if m.group(4).split(".")[0] == "enclave":
            enclave += int(m.group(2))
    return {"all_ms": total / 1000, "enclave_ms": enclave / 1000}


def interpreter_start_ms(runs: int = 5) -> float:
    """A bare interpreter (``python -c pass``) from launch to exit, median of ``runs``."""
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], env=_env(), check=True, timeout=60)
        times.append(time.monotonic() - t0)
    return 1000 * statistics.median(times)


def summary_ms(values: list[float]) -> dict:
    return {
        "count": len(values),
        "p50_ms": 1000 * statistics.median(values),
        "max_ms": 1000 * max(values),
        "all_ms": [round(1000 * v, 1) for v in values],
    }


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}
