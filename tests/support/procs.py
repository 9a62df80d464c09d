"""Worker processes that speak JSON lines: start them, talk to them, stop or kill them.

The tests, the fault lab (tests/lab/) and the benchmarks (bench/) run every process of
theirs through ``Proc``: a node (``NodeProc``, the program ``node_worker.py`` beside this
file) or any other worker that writes one JSON object per stdout line (bench's reference
and fleet workers).

Rules:
- A reader thread per process turns each stdout line into a dict and appends it to
  ``events``; nothing is dropped, so a caller can look back (``of``, ``last``, ``mark``).
- Callers never sleep to synchronise: they wait, with a timeout, for the line they
  expect (``wait``, ``line``) or for the reply to a command (``request``). On a timeout
  or an early exit the error names the process and shows its last lines and its stderr.
- Each process's stderr goes to ``<log_dir>/<name>.stderr``, appended: a node restarted
  under the same name keeps one log.
- The child imports this checkout's ``enclave`` (PYTHONPATH), whatever else is installed.

This lives with the tests, not in the package: it is test and benchmark machinery, and
the benchmarks run from a checkout, where tests/ is always present.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization

NODE_WORKER = Path(__file__).with_name("node_worker.py")
REPO = NODE_WORKER.parents[2]

# Quick reconnects so a restarted peer is found within about a second.
FAST_RECONNECT = {"reconnect_min": "0.1", "reconnect_max": "1.0"}
# A receiver of one sender at full speed (the bulk tests, the benchmarks' throughput):
# the receive quotas per contact (PROTOCOL.md "Receive quotas") are raised out of the way.
BULK_RECEIVER = {
    "receive_rate_per_peer": "1e7",
    "receive_burst_per_peer": "1e7",
    "receive_bytes_rate_per_peer": "1e10",
    "receive_bytes_burst_per_peer": "1e10",
}


def write_key_file(path: Path, key) -> Path:
    """An unencrypted PKCS8 PEM for a worker (tests and benchmarks only; never Enclave's
    key format)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return path


class ProcError(AssertionError):
    pass


class Proc:
    """One running worker: ``python ARGV...``, optionally behind ``prefix`` (e.g.
    ``["ip", "netns", "exec", NS]``: it execs, same pid). Read with ``wait``/``line``,
    command with ``request``; end with ``close`` (end of stdin), ``terminate`` (SIGTERM)
    or ``kill`` (SIGKILL)."""

    _tags = itertools.count(1)

    def __init__(
        self,
        name: str,
        argv: list,
        log_dir: Path,
        *,
        prefix: list[str] | None = None,
        reply_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self.reply_timeout = reply_timeout  # how long ``request`` waits unless told
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self._eof = False
        self._next_line = 0
        self.reaped = False
        self.stderr_path = Path(log_dir) / f"{name}.stderr"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self._stderr = open(self.stderr_path, "ab")  # closed in _reap
        self.proc = subprocess.Popen(
            (prefix or []) + [sys.executable, *map(str, argv)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, name=f"read-{name}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    # --- reading ------------------------------------------------------------------------

    def _read(self) -> None:
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                event = {"ev": "garbage", "line": raw.decode(errors="replace")}
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _find(self, predicate, timeout: float, start: int, what: str) -> int:
        deadline = time.monotonic() + timeout
        i = start
        with self._cond:
            while True:
                while i < len(self.events):
                    if predicate(self.events[i]):
                        return i
                    i += 1
                if self._eof:
                    raise self._failure(f"exited while waiting for {what or predicate}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._failure(
                        f"timed out after {timeout:.0f} s waiting for {what or predicate}"
                    )
                self._cond.wait(left)

    def wait(self, predicate, timeout: float, *, start: int = 0, what: str = "") -> dict:
        """The first line at index >= ``start`` that satisfies ``predicate``."""
        i = self._find(predicate, timeout, start, what)
        with self._cond:
            return self.events[i]

    def line(self, timeout: float) -> dict:
        """The next line that is not a reply to a command, each returned once: what a
        worker reports on its own (``ready``, a run's result)."""
        i = self._find(lambda e: "re" not in e, timeout, self._next_line, "its next line")
        self._next_line = i + 1
        with self._cond:
            return self.events[i]

    def mark(self) -> int:
        """The index of the next line: pass it as ``start`` to wait for what comes after."""
        with self._cond:
            return len(self.events)

    def last(self, ev: str) -> dict | None:
        with self._cond:
            return next((e for e in reversed(self.events) if e["ev"] == ev), None)

    def of(self, ev: str, start: int = 0) -> list[dict]:
        with self._cond:
            return [e for e in self.events[start:] if e["ev"] == ev]

    def _failure(self, text: str) -> ProcError:
        with self._cond:
            tail = self.events[-15:]
        try:
            err = self.stderr_path.read_text(errors="replace")[-4000:]
        except OSError:
            err = ""
        lines = "\n  ".join(json.dumps(e)[:300] for e in tail)
        return ProcError(
            f"{self.name} (pid {self.proc.pid}, exit {self.proc.poll()}): {text}\n"
            f" last lines:\n  {lines}\n stderr:\n{err}"
        )

    # --- commands -----------------------------------------------------------------------

    def send_command(self, cmd: str, **args) -> str:
        tag = f"{self.name}-{next(self._tags)}"
        line = json.dumps({"cmd": cmd, "tag": tag, **args}) + "\n"
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()
        return tag

    def reply(self, tag: str, timeout: float | None = None) -> dict:
        """Wait for the reply to the command sent with ``tag``; an error reply raises."""
        timeout = self.reply_timeout if timeout is None else timeout
        reply = self.wait(lambda e: e.get("re") == tag, timeout, what=f"reply {tag}")
        if reply["ev"] == "error":
            raise self._failure(f"{reply['cmd']} failed: {reply['error']}")
        return reply

    def replied(self, tag: str) -> bool:
        with self._cond:
            return any(e.get("re") == tag for e in self.events)

    def request(self, cmd: str, timeout: float | None = None, **args) -> dict:
        """Send a command and wait for its reply."""
        return self.reply(self.send_command(cmd, **args), timeout)

    # --- ending -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def end_input(self) -> None:
        """Close the worker's stdin: the sign to finish (a node stops cleanly)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def close(self, timeout: float = 30.0) -> int:
        """End of stdin, then the exit code; killed if it has not exited in ``timeout``."""
        self.end_input()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass  # it had its chance: ``kill`` below
        return self.kill(timeout)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM: a node stops cleanly; returns the exit code."""
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
        return self._reap(timeout)

    def kill(self, timeout: float = 30.0) -> int:
        """SIGKILL: no chance to commit, flush or say goodbye."""
        if self.running:
            self.proc.kill()
        return self._reap(timeout)

    def _reap(self, timeout: float) -> int:
        self.reaped = True
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise self._failure(f"did not exit within {timeout:.0f} s") from None
        self._reader.join(timeout)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self._stderr.close()
        return code


class NodeProc(Proc):
    """One running node (``node_worker.py``): ``start`` it, then ``wait``/``request``.

    ``each``: every message event is a line; ``quiet``: replies only, for a node that is
    being measured (see node_worker.py). ``sealed``: the history sealed under a store
    key, as a user's node keeps it. ``settings``: ``--set`` overrides, as text
    ("0.1", "normal") or as numbers."""

    def __init__(
        self,
        name: str,
        home: Path,
        key_file: Path,
        port: int = 0,
        *,
        log_dir: Path,
        each: bool = False,
        quiet: bool = False,
        settings: dict | None = None,
        log_level: str | None = None,
        prefix: list[str] | None = None,
        host: str | None = None,
        reply_timeout: float = 30.0,
        sealed: bool = False,
    ) -> None:
        argv = [NODE_WORKER, "--home", home, "--key-file", key_file, "--port", port]
        argv += ["--sealed"] * sealed
        if host:
            argv += ["--host", host]
        argv += ["--each"] * each + ["--quiet"] * quiet
        log_level = log_level or os.environ.get("ENCLAVE_TEST_LOG")
        if log_level:
            argv += ["--log-level", log_level]
        for key, value in (settings or {}).items():
            text = value if isinstance(value, str) else json.dumps(value)  # TOML scalar
            argv += ["--set", f"{key}={text}"]
        super().__init__(name, argv, log_dir, prefix=prefix, reply_timeout=reply_timeout)
        self.home, self.key_file, self.requested_port = home, key_file, port
        self.port: int | None = None
        self.fp: str | None = None

    @classmethod
    def start(
        cls,
        name: str,
        home: Path,
        key_file: Path,
        port: int = 0,
        *,
        log_dir: Path | None = None,
        timeout: float = 30.0,
        **options,
    ) -> NodeProc:
        """Start the process and wait for its ``ready`` line (``options``: see the class)."""
        p = cls(name, home, key_file, port, log_dir=log_dir or home.parent, **options)
        try:
            ready = p.wait(lambda e: e["ev"] == "ready", timeout, what="ready")
        except BaseException:
            p.kill()
            raise
        p.port, p.fp = ready["port"], ready["fp"]
        return p


class Cluster:
    """The processes a test started; ``close`` kills whatever is still running."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.procs: list[NodeProc] = []

    def start(self, name: str, key_file: Path, port: int = 0, **kw) -> NodeProc:
        p = NodeProc.start(name, self.tmp / name, key_file, port, log_dir=self.tmp, **kw)
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in self.procs:
            if not p.reaped:
                p.kill()
