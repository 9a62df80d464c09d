"""``enclave --listen`` and ``enclave send`` as real processes.

The REPL runs in tmux (a real terminal): keys go in with send-keys and the screen comes
back with capture-pane, polled until the expected text appears. Headless mode and the
error exits run as plain subprocesses. Identities are written at Enclave's real KDF
cost, since the CLI refuses anything cheaper when it unlocks.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from support.ports import listen_port as _free_port  # below the ephemeral range
from support.stores import unlocked_store
from support.waiting import eventually_blocking

from enclave.identity import home, keys
from enclave.store import Store

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
TIMEOUT = 60.0

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def _env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env.update(PYTHONPATH=str(ROOT), ENCLAVE_PASSWORD=PASSWORD, TERM="xterm-256color")
    env.update(extra or {})
    return env


class Person:
    """One identity with a home folder and a port."""

    def __init__(self, base: Path, name: str, key) -> None:
        self.name = name
        self.home = base / name
        self.port = _free_port()
        self.identity = keys.save_identity(home.Home(self.home), key, PASSWORD)
        self.fingerprint = self.identity.fingerprint

    def knows(self, other: "Person", address: str | None = None) -> None:
        with Store.open(self.home / "enclave.db") as store:
            store.upsert_peer(
                other.fingerprint,
                other.identity.public_pem.decode(),
                address or f"127.0.0.1:{other.port}",
                other.name,
                time.time(),
            )

    def argv(self, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "enclave",
            "--listen",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--home",
            str(self.home),
            *extra,
        ]


@pytest.fixture
def people(tmp_path, rsa_keys):
    made = {n: Person(tmp_path, n, rsa_keys[n]) for n in ("alice", "bob", "carol")}
    for a in made.values():
        for b in made.values():
            if a is not b:
                a.knows(b)
    return made


class Tmux:
    """A private tmux server (its own socket) with one window per person."""

    def __init__(self, tmp_path: Path) -> None:
        self.socket = str(tmp_path / f"tmux-{uuid.uuid4().hex[:8]}")
        self.folder = tmp_path

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", self.socket, *args], capture_output=True, text=True, timeout=30
        )
        if done.returncode != 0:
            raise AssertionError(f"tmux {args[0]} failed: {done.stderr}")
        return done.stdout

    def start(self, name: str, argv: list[str], env: dict) -> None:
        command = " ".join(_quote(a) for a in argv)
        envs = [f"{k}={_quote(v)}" for k, v in env.items() if k in _PASSED]
        # tmux may notice a dead pane late; the shell reports the status at once, in a
        # file (a line on the screen once went missing while the pane's shell exited 0).
        self._status_file(name).unlink(missing_ok=True)  # a name started again
        status = _quote(str(self._status_file(name)))
        script = (
            f"cd {_quote(str(ROOT))} && env {' '.join(envs)} {command}; s=$?;"
            f' echo "$s" > {status}.new && mv {status}.new {status}; echo "[exit status $s]"'
        )
        if not hasattr(self, "_started"):
            self("new-session", "-d", "-s", "t", "-n", name, "-x", "160", "-y", "50", script)
            self("set-option", "-g", "remain-on-exit", "on")  # keep the screen to read
            self._started = True
        else:
            self("new-window", "-d", "-t", "t", "-n", name, script)

    def keys(self, name: str, *keys: str) -> None:
        self("send-keys", "-t", f"t:{name}", *keys)

    def type(self, name: str, text: str) -> None:
        self("send-keys", "-t", f"t:{name}", "-l", text)

    def screen(self, name: str) -> str:
        return self("capture-pane", "-p", "-J", "-S", "-200", "-t", f"t:{name}")

    def until(self, name: str, text: str, count: int = 1) -> str:
        # A pane is another process's screen: nothing tells when it changes, so poll it.
        return eventually_blocking(
            lambda: (s := self.screen(name)).count(text) >= count and s,
            TIMEOUT,
            lambda: f"{text!r} on {name}'s screen; it shows:\n{self.screen(name)}",
        )

    def _status_file(self, name: str) -> Path:
        return self.folder / f"{name}.exit-status"

    def exit_status(self, name: str) -> int:
        """The exit status the pane's shell wrote once enclave ended (its file is
        renamed into place whole), once tmux has read the pane to its end (the pane
        is dead only then), so the screen shows everything enclave printed."""
        path = self._status_file(name)
        eventually_blocking(path.exists, TIMEOUT, lambda: self._stuck(name))
        eventually_blocking(
            lambda: self("display-message", "-p", "-t", f"t:{name}", "#{pane_dead}").strip() == "1",
            TIMEOUT,
            lambda: f"tmux to see {name}'s pane end; it shows:\n{self.screen(name)}",
        )
        return int(path.read_text())

    def _stuck(self, name: str) -> str:
        """What a failed wait for an exit says: the screen, with every thread's stack
        (the node prints them on SIGUSR1)."""
        shell = self("display-message", "-p", "-t", f"t:{name}", "#{pane_pid}").strip()
        children = subprocess.run(["pgrep", "-P", shell], capture_output=True, text=True)
        for pid in children.stdout.split():
            os.kill(int(pid), signal.SIGUSR1)
        time.sleep(1)  # the stacks are printed by the stuck process: nothing to wait on
        deadline = time.monotonic() + 5  # until the stacks show (a failing test's report)
        while "most recent call first" not in (screen := self.screen(name)):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return f"{name}'s enclave to exit; its screen shows:\n{screen}"

    def kill(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=30)


_PASSED = ("PYTHONPATH", "ENCLAVE_PASSWORD", "TERM", "PATH", "HOME")


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


@pytest.fixture
def tmux(tmp_path):
    t = Tmux(tmp_path)
    yield t
    t.kill()


def test_two_people_chat_in_tmux_and_broadcast(people, tmux):
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    for p in (alice, bob, carol):
        tmux.start(p.name, p.argv(), _env())
    for p in (alice, bob, carol):
        screen = tmux.until(p.name, "Type /help for commands.")
        assert f"Listening on 127.0.0.1:{p.port} · 2 contacts · web off" in screen
        assert f"Your fingerprint: {keys.group(p.fingerprint)}" in screen
        assert "settings:" not in screen  # only with --verbose

    # Bob has half a line typed when Alice's message arrives.
    tmux.type("bob", "half a line")
    tmux.until("bob", "> half a line")
    tmux.type("alice", "/send bob Hi Bob!")
    tmux.keys("alice", "Enter")
    screen = tmux.until("bob", "alice: Hi Bob!")
    tmux.until("alice", "to bob: delivered")
    screen = tmux.screen("bob")
    lines = [line for line in screen.splitlines() if line.strip()]
    assert lines[-1] == "> half a line"  # the half line is intact, below the message
    assert any("alice: Hi Bob!" in line for line in lines[:-1])

    # Bob finishes his line differently: clear it, reply.
    tmux.keys("bob", "C-u")
    tmux.type("bob", "/send alice Hello Alice!")
    tmux.keys("bob", "Enter")
    tmux.until("alice", "bob: Hello Alice!")
    tmux.until("bob", "to alice: delivered")

    tmux.type("alice", "/broadcast Team meeting in 5 minutes!")
    tmux.keys("alice", "Enter")
    screen = tmux.until("alice", "Broadcast complete: 2/2 sent successfully")
    assert "you -> 2 peer(s): Team meeting in 5 minutes!  (broadcast)" in screen
    tmux.until("carol", "alice: Team meeting in 5 minutes!")
    tmux.until("bob", "alice: Team meeting in 5 minutes!")
    tmux.until("alice", "broadcast delivered to 2 of 2")

    for p in (alice, bob, carol):
        tmux.type(p.name, "/quit")
        tmux.keys(p.name, "Enter")
    for p in (alice, bob, carol):
        assert tmux.exit_status(p.name) == 0
        assert "Stopping; 0 message(s) stay queued in the outbox" in tmux.screen(p.name)
        assert "Traceback" not in tmux.screen(p.name)


def test_ctrl_c_clears_the_line_and_ctrl_d_leaves(people, tmux):
    alice = people["alice"]
    tmux.start("alice", alice.argv(), _env())
    tmux.until("alice", "Type /help for commands.")
    tmux.type("alice", "/broadcast never sent")
    tmux.keys("alice", "C-c")
    tmux.type("alice", "/fingerprint")
    tmux.keys("alice", "Enter")
    tmux.until("alice", "Your fingerprint:", count=2)
    tmux.keys("alice", "C-d")
    assert tmux.exit_status("alice") == 0
    assert "(broadcast)" not in tmux.screen("alice")


# --- headless, enclave send, error exits ------------------------------------------------


def _spawn(person: Person, *extra: str, closed_stdin: bool = False) -> subprocess.Popen:
    return subprocess.Popen(
        person.argv(*extra),
        stdin=None if closed_stdin else subprocess.DEVNULL,
        preexec_fn=(lambda: os.close(0)) if closed_stdin else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
    )


def _read_until(proc: subprocess.Popen, text: str, seen: list[str]) -> list[str]:
    """Read the process's stdout line by line until ``text`` shows (or it ends)."""
    deadline = time.monotonic() + TIMEOUT
    while not any(text in line for line in seen):
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never printed; got {seen!r}")
        seen.append(line)
    return seen


def _enclave(*argv: str, home_dir: Path | None = None) -> subprocess.CompletedProcess:
    extra = ["--home", str(home_dir)] if home_dir else []
    return subprocess.run(
        [sys.executable, "-m", "enclave", *argv, *extra],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=TIMEOUT,
    )


def _stop(proc: subprocess.Popen) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out, err


def test_headless_node_keeps_its_outbox_through_sigterm(people):
    alice, bob = people["alice"], people["bob"]  # Bob is not running
    done = _enclave("send", "bob", "written while no node runs", home_dir=alice.home)
    assert done.returncode == 0, done.stderr
    assert re.search(
        r"No node is running; the message to bob \(#[0-9a-z]{4}\) is queued in the outbox",
        done.stdout,
    )

    proc = _spawn(alice, closed_stdin=True)
    try:
        seen = _read_until(proc, "Running without a terminal", [])
        assert f"Listening on 127.0.0.1:{alice.port} · 2 contacts · web off\n" in seen
        done = _enclave("send", "bob", "through the running node", home_dir=alice.home)
        assert done.returncode == 0, done.stderr
        assert "Queued in the running node; it delivers to bob as soon as it can" in done.stdout
    finally:
        code, out, err = _stop(proc)
    assert code == 0, err
    assert "Stopping; 2 message(s) stay queued in the outbox" in out
    assert "Traceback" not in err
    assert not (alice.home / "control.sock").exists()
    with unlocked_store(alice.home, PASSWORD) as store:  # the outbox is sealed
        queued = store.outbox_for(bob.fingerprint)
    assert [(m.body, m.state) for m in queued] == [
        ("written while no node runs", "queued"),
        ("through the running node", "queued"),
    ]


def test_enclave_send_through_a_running_node_is_delivered(people):
    alice, bob = people["alice"], people["bob"]
    procs = {p.name: _spawn(p) for p in (alice, bob)}
    seen = {name: [] for name in procs}
    try:
        for name, proc in procs.items():
            _read_until(proc, "Running without a terminal", seen[name])
        done = _enclave("send", "bob", "see you at 5", home_dir=alice.home)
        assert done.returncode == 0, done.stderr
        assert re.fullmatch(r"#[0-9a-z]{4} Delivered to bob by the running node\n", done.stdout)
        ref = done.stdout.split()[0]
        _read_until(procs["bob"], "alice: see you at 5", seen["bob"])
        # The running node shows the text sent through it, then its states, by reference.
        _read_until(procs["alice"], f"you -> bob: see you at 5  ({ref})", seen["alice"])
        _read_until(procs["alice"], f"{ref} to bob: delivered", seen["alice"])
        refused = _enclave("send", "nobody", "hi", home_dir=alice.home)
        assert refused.returncode == 2
        assert refused.stderr.startswith("enclave: error: no peer matches 'nobody'")
        again = _spawn(alice)
        code, _, err = again.wait(timeout=TIMEOUT), None, again.stderr.read()
        assert code == 2 and "another Enclave node is already running" in err
    finally:
        for proc in procs.values():
            code, out, err = _stop(proc)
            assert code == 0 and "Traceback" not in err


def test_enclave_send_mistakes_queue_nothing(people):
    alice = people["alice"]
    for argv, fragment in (
        (("send", "nobody", "hi"), "no peer matches 'nobody'"),
        (("send", "bob", " "), "the message is empty"),
        (("send", "bob", "x" * 10_001), "the limit is 10,000"),
    ):
        done = _enclave(*argv, home_dir=alice.home)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.count("\n") == 1 and fragment in done.stderr
    with Store.open(alice.home / "enclave.db") as store:
        assert store.outbox_peers() == []


def _listen_error(person: Person, *extra: str, env: dict | None = None) -> str:
    done = subprocess.run(
        person.argv(*extra),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env(env),
        cwd=ROOT,
        timeout=TIMEOUT,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("enclave: error: "), done.stderr
    return lines[0]


def test_listen_errors_are_one_line(people, tmp_path):
    alice = people["alice"]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", alice.port))
        busy.listen()
        line = _listen_error(alice)
    assert f"cannot listen on 127.0.0.1:{alice.port}" in line and "try --port" in line
    assert "wrong password for" in _listen_error(alice, env={"ENCLAVE_PASSWORD": "not it"})
    no_password = subprocess.run(
        alice.argv(),
        preexec_fn=lambda: os.close(0),
        capture_output=True,
        text=True,
        env={k: v for k, v in _env().items() if k != "ENCLAVE_PASSWORD"},
        cwd=ROOT,
        timeout=TIMEOUT,
    )
    assert no_password.returncode == 2 and no_password.stderr.startswith(
        "enclave: error: a password is needed and there is no terminal to ask it on"
    )
    nobody = Person.__new__(Person)
    nobody.home, nobody.port = tmp_path / "empty", alice.port
    assert f"run: enclave --home {nobody.home} --generate" in _listen_error(nobody)
    assert "unknown key 'crypto_worker'" in _listen_error(alice, "--set", "crypto_worker=4")


def test_set_overrides_show_in_the_verbose_summary(people):
    alice = people["alice"]
    proc = _spawn(alice, "--verbose", "--set", "crypto_workers=3", "--set", "legacy_v1=false")
    try:
        seen = _read_until(proc, "settings:", [])
    finally:
        code, _, _ = _stop(proc)
    summary = next(line for line in seen if line.startswith("settings:"))
    assert "crypto_workers=3" in summary and "legacy_v1=false" in summary
    assert "--set crypto_workers,legacy_v1" in summary
    assert code == 0
