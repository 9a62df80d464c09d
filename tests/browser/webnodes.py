"""Real ``enclave --web`` processes for the browser tests, and their introductions."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from support.ports import listen_port as free_port  # below the ephemeral range

from enclave.identity import home, keys

PASSWORD = "browser test password 1"
# Output that is not a terminal names the private file that holds the address with the token.
URL = re.compile(
    r"Enclave web page: https?://\S+/ \(its address with this launch's token is in (\S+),"
)


class WebNode:
    """One ``enclave --web`` process. ``url`` is the address it printed."""

    def __init__(self, name: str, home_dir: Path, *, key=None) -> None:
        self.name = name
        self.home = home_dir
        self.port = free_port()
        self.key = key
        self.store_key: bytes | None = None  # what seals its store (contact names too)
        if key is not None:
            self.store_key = keys.save_identity(home.Home(home_dir), key, PASSWORD).store_key
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.output: list[str] = []
        self.env: dict[str, str] = {}  # more environment for its process

    def public_pem_file(self) -> Path:
        path = self.home.parent / f"{self.name}.pem"
        pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        path.write_bytes(pem)
        return path

    def add_peer(self, other: WebNode | None, name: str, *, key=None, port=None, legacy=False):
        """Add a peer as ``enclave add`` does (before start): another WebNode, or a bare
        key. The name is sealed in the store: the book is opened with the store key the
        identity was written with (no password to unlock at scrypt's cost)."""
        from enclave.node.book import open_book

        pem = other.public_pem_file() if other else _pem_file(self.home.parent, name, key)
        port = other.port if other else port
        db_path = home.Home(self.home).db_path
        with open_book(db_path, self.fingerprint, self.store_key) as book:
            protocol = "v1" if legacy else None
            book.add(pem.read_bytes(), f"127.0.0.1:{port}", name, protocol, source=str(pem))

    @property
    def fingerprint(self) -> str:
        return keys.fingerprint(self.key.public_key())

    def start(self, *, unlock: bool = True, web_args: tuple = ()) -> str:
        """Start the process; with ``unlock`` and a key, ENCLAVE_PASSWORD unlocks it.
        ``web_args``: more flags, e.g. ``--web-host``, ``--web-cert``, ``--web-key``."""
        env = {k: v for k, v in os.environ.items() if k != "ENCLAVE_PASSWORD"}
        if self.key is not None and unlock:
            env["ENCLAVE_PASSWORD"] = PASSWORD
        env.update(self.env)
        argv = [sys.executable, "-m", "enclave", "--web", "--home", str(self.home)]
        argv += ["--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--web-port", str(free_port()), "--set", "reconnect_max=1.0", *web_args]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for _ in range(30):  # bounded: the URL is among the first lines
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            found = URL.search(line)
            if found:
                self.url = Path(found.group(1)).read_text().strip()
                threading.Thread(target=self._drain, daemon=True).start()
                return self.url
        self.stop()
        raise AssertionError(f"{self.name} printed no URL: {''.join(self.output)}")

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def running(made: dict, web_args: dict | None = None):
    """Start every node of ``made`` (name -> WebNode; ``web_args`` by name), yield
    ``made``, and stop those that started."""
    started = []
    try:
        for name, node in made.items():
            node.start(web_args=(web_args or {}).get(name, ()))
            started.append(node)
        yield made
    finally:
        for node in started:
            node.stop()


def alice_bob_and_carol(rsa_keys, base: Path, *, fixed_port: bool = False) -> dict:
    """Three WebNodes, not started: alice has bob and carol as contacts, each has alice.
    ``fixed_port``: alice's page keeps one port across restarts (``alice_web_args``)."""
    made = {n: WebNode(n, base / n, key=rsa_keys[n]) for n in ("alice", "bob", "carol")}
    alice = made["alice"]
    for other in (made["bob"], made["carol"]):
        alice.add_peer(other, other.name)
        other.add_peer(alice, "alice")
    if fixed_port:
        alice.web_port = free_port()  # kept across its restarts: the same origin, as :5000 is
    return made


def movable_clocks(made: dict, base: Path) -> None:
    """Each node's clock moves when the test writes a forward offset (ms) into
    ``node.offset`` (``enclave.node.clock.OFFSET_FILE_ENV``); it starts at 0."""
    from enclave.node.clock import OFFSET_FILE_ENV

    for node in made.values():
        node.offset = base / f"{node.name}.offset"
        node.offset.write_text("0")
        node.env[OFFSET_FILE_ENV] = str(node.offset)


def alice_web_args(made: dict) -> dict:
    """``running``'s web_args that keep alice's page on its one port."""
    return {"alice": ("--web-port", str(made["alice"].web_port))}


def closed(pages: dict) -> None:
    """A module's pages at its end: no script error on any, each context closed."""
    for page in pages.values():
        assert page.watch.script_errors() == []
        page.context.close()


def add_failed_message(node: WebNode, peer_fp: str, body: str, reason: str, created_ms: int):
    """A message that already failed, as the store keeps one (the node is not running),
    sealed under the node's store key."""
    from enclave.store import Store

    with Store.open(node.home / "enclave.db", key=node.store_key) as store:
        (rowid,) = store.enqueue_outgoing([(peer_fp, os.urandom(16), body, created_ms)])
        store.mark_failed([rowid], reason)


def _pem_file(folder: Path, name: str, key) -> Path:
    path = folder / f"{name}.pem"
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path
