"""``enclave listen`` and its subcommand forms as real processes: the start-up line,
``--verbose``, and ``listen --json`` events read by a script between two real nodes.

Identities are written at Enclave's real KDF cost, since the CLI refuses anything
cheaper when it unlocks. Every wait reads the node's stdout line by line through a
queue with a deadline (``Lines``); nothing sleeps to synchronise.
"""

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.ports import listen_port as _free_port  # below the ephemeral range

from enclave.identity import home, keys
from enclave.node.settings import KNOBS
from enclave.store import Store

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
TIMEOUT = 60.0


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env.update(PYTHONPATH=str(ROOT), ENCLAVE_PASSWORD=PASSWORD)
    return env


class Person:
    """One identity with a home folder and a port."""

    def __init__(self, base: Path, name: str, key) -> None:
        self.name, self.home, self.port = name, base / name, _free_port()
        self.identity = keys.save_identity(home.Home(self.home), key, PASSWORD)
        self.fingerprint = self.identity.fingerprint

    def knows(self, other: "Person") -> None:
        with Store.open(self.home / "enclave.db") as store:
            store.upsert_peer(
                other.fingerprint,
                other.identity.public_pem.decode(),
                f"127.0.0.1:{other.port}",
                other.name,
                time.time(),
            )

    def listen(self, *extra: str) -> "Lines":
        argv = ["--home", str(self.home), "listen", "--host", "127.0.0.1"]
        return Lines(enclave_process(*argv, "--port", str(self.port), *extra))


def enclave_process(*argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "enclave", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
    )


def enclave(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "enclave", *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=TIMEOUT,
    )


class Lines:
    """A process's stdout, line by line, through a reader thread: ``wait`` takes the
    next lines until one matches, each read bounded by the deadline."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.seen: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self._ended, self._err = False, ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait(self, predicate, what: str, timeout: float = TIMEOUT) -> str:
        for line in self.seen:
            if predicate(line):
                return line
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                raise AssertionError(f"no {what} within {timeout} s; saw {self.seen!r}") from None
            if line is None:
                self._queue.put(None)  # stop() reads up to it too
                raise AssertionError(f"no {what}: the process ended; saw {self.seen!r}")
            self.seen.append(line)
            if predicate(line):
                return line

    def event(self, what: str, **fields) -> dict:
        """The first JSON event whose fields hold ``fields``."""

        def matches(line: str) -> bool:
            event = json.loads(line)
            return all(event.get(k) == v for k, v in fields.items())

        return json.loads(self.wait(matches, what))

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(TIMEOUT)
        while not self._ended and (line := self._queue.get(timeout=TIMEOUT)) is not None:
            self.seen.append(line)
        if not self._ended:
            self._ended, self._err = True, self.proc.stderr.read()
        return code, self._err


@pytest.fixture
def pair(tmp_path, rsa_keys):
    alice = Person(tmp_path, "alice", rsa_keys["alice"])
    bob = Person(tmp_path, "bob", rsa_keys["bob"])
    alice.knows(bob)
    bob.knows(alice)
    return alice, bob


def test_start_up_is_one_short_line_and_verbose_shows_the_settings(pair):
    alice, _ = pair
    node = alice.listen()
    try:
        first = node.wait(lambda line: line.startswith("Listening on"), "start-up line")
    finally:
        code, err = node.stop()
    assert code == 0, err
    assert first == f"Listening on 127.0.0.1:{alice.port} · 1 contact · web off"
    assert len(first) < 100
    assert not any(line.startswith("settings:") for line in node.seen)
    assert all(len(line) < 100 for line in node.seen), node.seen

    verbose = alice.listen("--verbose", "--set", "crypto_workers=3")
    try:
        line = verbose.wait(lambda line: line.startswith("settings:"), "the settings line")
    finally:
        code, err = verbose.stop()
    assert code == 0, err
    assert "crypto_workers=3" in line and "(defaults; --set crypto_workers)" in line
    assert all(f" {knob}=" in line for knob in KNOBS)


def test_listen_json_events_for_scripts(pair):
    alice, bob = pair
    bob_node = bob.listen("--json")
    alice_node = None
    try:
        started = bob_node.event("bob's start", type="started")
        assert started["fingerprint"] == bob.fingerprint and started["contacts"] == 1
        alice_node = alice.listen("--json")
        alice_node.event("alice's start", type="started")
        sent = enclave("send", "bob", "Build 42 passed", "--home", str(alice.home))
        assert sent.returncode == 0, sent.stderr

        message = bob_node.event("the message", type="message")
        assert (message["peer"], message["name"]) == (alice.fingerprint, "alice")
        assert message["text"] == "Build 42 passed" and not message["legacy"]
        assert len(message["id"]) == 32 and int(message["id"], 16) >= 0
        assert isinstance(message["timestamp"], float) and message["timestamp"] > 1e9
        online = bob_node.event("alice online", type="presence", peer=alice.fingerprint)
        assert online == {"type": "presence", "peer": alice.fingerprint, "name": "alice",
                          "online": True}  # fmt: skip

        queued = alice_node.event("queued", type="delivery", state="queued")
        assert queued["text"] == "Build 42 passed"  # sent through the node: its text too
        assert queued["ref"] == sent.stdout.split()[0]  # the reference the command printed
        delivered = alice_node.event("delivered", type="delivery", state="delivered")
        assert (delivered["peer"], delivered["name"]) == (bob.fingerprint, "bob")
        assert delivered["id"] == message["id"] and isinstance(delivered["rowid"], int)
        assert delivered["ref"] == queued["ref"] and "text" not in delivered
        alice_node.event("bob online", type="presence", peer=bob.fingerprint, online=True)
        assert bob_node.stop()[0] == 0
        alice_node.event("bob offline", type="presence", peer=bob.fingerprint, online=False)
    finally:
        results = [node.stop() for node in (bob_node, alice_node) if node is not None]
    assert all(code == 0 for code, _ in results), results
    for node in (bob_node, alice_node):
        events = [json.loads(line) for line in node.seen]  # nothing but JSON on stdout
        assert all("type" in event for event in events)
        assert events[-1]["type"] == "stopping"


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_options_either_side_as_processes(pair, where):
    alice, _ = pair
    home_option = ["--home", str(alice.home)]
    argv = (
        [*home_option, "send", "bob", "x"]
        if where == "before"
        else ["send", "bob", "x", *home_option]
    )
    done = enclave(*argv)
    assert done.returncode == 0, done.stderr
    assert re.match(
        r"No node is running; the message to bob \(#[0-9a-z]{4}\) is queued", done.stdout
    )
    fingerprint = (
        enclave("fingerprint", *home_option)
        if where == "after"
        else enclave(*home_option, "fingerprint")
    )
    assert fingerprint.stdout.strip() == keys.group(alice.fingerprint)
