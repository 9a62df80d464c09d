"""Start, stop and kill node processes (``tests/node_proc.py``) and read their events.

A reader thread per process turns each stdout line into a dict and appends it to
``NodeProc.events``. Tests never sleep to synchronise: they wait, with a timeout, for
the event they expect (``wait``), or for the reply to a command (``request``). On a
timeout the error shows the process's last events and its stderr.
"""

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

RUNNER = Path(__file__).with_name("node_proc.py")
REPO = RUNNER.parent.parent

# Quick reconnects so a restarted peer is found within about a second.
FAST_RECONNECT = {"reconnect_min": "0.1", "reconnect_max": "1.0"}
# A receiver of the bulk tests: one sender at full speed is the point there, so the
# receive quotas per contact (PROTOCOL.md "Receive quotas") are raised out of the way.
BULK_RECEIVER = {
    "receive_rate_per_peer": "1e7",
    "receive_burst_per_peer": "1e7",
    "receive_bytes_rate_per_peer": "1e10",
    "receive_bytes_burst_per_peer": "1e10",
}


def write_key_file(path: Path, key) -> Path:
    """An unencrypted PKCS8 PEM for the runner (test-only; never Enclave's key format)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return path


class ProcError(AssertionError):
    pass


class NodeProc:
    """One running ``node_proc.py``. Use ``start``; then ``wait``/``request``; end with
    ``terminate`` (SIGTERM, clean stop) or ``kill`` (SIGKILL)."""

    _tags = itertools.count(1)

    def __init__(
        self,
        name: str,
        home: Path,
        key_file: Path,
        port: int,
        *,
        each: bool,
        settings: dict | None,
        log_dir: Path,
        log_level: str | None = None,
        prefix: list[str] | None = None,
        host: str | None = None,
    ) -> None:
        self.name = name
        self.home, self.key_file, self.requested_port = home, key_file, port
        self.events: list[dict] = []
        self.port: int | None = None
        self.fp: str | None = None
        self._cond = threading.Condition()
        self._eof = False
        self.reaped = False
        self.stderr_path = log_dir / f"{name}.stderr"
        cmd = [
            sys.executable,
            str(RUNNER),
            "--home",
            str(home),
            "--key-file",
            str(key_file),
            "--port",
            str(port),
        ]
        if host:
            cmd += ["--host", host]
        if each:
            cmd.append("--each")
        log_level = log_level or os.environ.get("ENCLAVE_TEST_LOG")
        if log_level:
            cmd += ["--log-level", log_level]
        for key, value in (settings or {}).items():
            cmd += ["--set", f"{key}={value}"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self._stderr = open(self.stderr_path, "ab")  # closed in _reap
        self.proc = subprocess.Popen(
            (prefix or []) + cmd,  # e.g. ["ip", "netns", "exec", NS]: it execs, same pid
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, name=f"read-{name}", daemon=True)
        self._reader.start()

    @classmethod
    def start(
        cls,
        name: str,
        home: Path,
        key_file: Path,
        port: int = 0,
        *,
        each: bool = False,
        settings: dict | None = None,
        log_dir: Path | None = None,
        log_level: str | None = None,
        timeout: float = 30.0,
        prefix: list[str] | None = None,
        host: str | None = None,
    ) -> "NodeProc":
        """Start the process and wait for its ``ready`` line."""
        p = cls(
            name,
            home,
            key_file,
            port,
            each=each,
            settings=settings,
            log_dir=log_dir or home.parent,
            log_level=log_level,
            prefix=prefix,
            host=host,
        )
        try:
            ready = p.wait(lambda e: e["ev"] == "ready", timeout, what="ready")
        except BaseException:
            p.kill()
            raise
        p.port, p.fp = ready["port"], ready["fp"]
        return p

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

    def wait(self, predicate, timeout: float, *, start: int = 0, what: str = "") -> dict:
        """The first event at index >= ``start`` that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        i = start
        with self._cond:
            while True:
                while i < len(self.events):
                    if predicate(self.events[i]):
                        return self.events[i]
                    i += 1
                if self._eof:
                    raise self._failure(f"exited while waiting for {what or predicate}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._failure(
                        f"timed out after {timeout:.0f} s waiting for {what or predicate}"
                    )
                self._cond.wait(left)

    def mark(self) -> int:
        """The index of the next event: pass it as ``start`` to wait for what comes after."""
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
            f"node {self.name} (pid {self.proc.pid}, exit {self.proc.poll()}): {text}\n"
            f" last events:\n  {lines}\n stderr:\n{err}"
        )

    # --- commands -----------------------------------------------------------------------

    def send_command(self, cmd: str, **args) -> str:
        tag = f"{self.name}-{next(self._tags)}"
        line = json.dumps({"cmd": cmd, "tag": tag, **args}) + "\n"
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()
        return tag

    def reply(self, tag: str, timeout: float = 30.0) -> dict:
        """Wait for the reply to the command sent with ``tag``; an error fails the test."""
        reply = self.wait(lambda e: e.get("re") == tag, timeout, what=f"reply {tag}")
        if reply["ev"] == "error":
            raise self._failure(f"{reply['cmd']} failed: {reply['error']}")
        return reply

    def replied(self, tag: str) -> bool:
        with self._cond:
            return any(e.get("re") == tag for e in self.events)

    def request(self, cmd: str, timeout: float = 30.0, **args) -> dict:
        """Send a command and wait for its reply."""
        return self.reply(self.send_command(cmd, **args), timeout)

    # --- ending -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM: the node stops cleanly; returns the exit code."""
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
