"""``enclave backup`` and ``enclave restore`` (issue 20, items 3 and 5) as real processes.

One chat between two real nodes is backed up once, while alice's node runs (the store
is a live WAL database); the tests restore that file, or damaged copies of it. A
restored home runs on another port and its contact reaches it there; a truncated,
tampered, hostile or wrong-password backup writes nothing and says so in one line.
Identities are the suite's cached RSA keys at Enclave's real KDF cost (the CLI
refuses less), so each unlock or backup password costs one scrypt run (~0.3 s).
"""

import os
import pty
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_processes import (
    PASSWORD,
    ROOT,
    TIMEOUT,
    Lines,
    Person,
    _env,
    _free_port,
    enclave_process,
)

from enclave.identity import backup, home, keys

MARKER = "ZEBRAQUILL"  # the word no backup may hold in clear
BACKUP_PASSWORD = "a different password for the backup"
KiB, MiB = 1 << 10, 1 << 20


def run(*argv: str, **env: str) -> subprocess.CompletedProcess:
    """``enclave ARGV`` with ENCLAVE_PASSWORD = the identities' password unless ``env``
    says otherwise (a value None removes the variable)."""
    environ = _env()
    for name, value in env.items():
        environ.pop(name, None) if value is None else environ.update({name: value})
    return subprocess.run(
        [sys.executable, "-m", "enclave", *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=environ,
        cwd=ROOT,
        timeout=TIMEOUT,
    )


def listen(place: Path, port: int) -> Lines:
    argv = ("--home", str(place), "listen", "--json", "--host", "127.0.0.1", "--port", str(port))
    lines = Lines(enclave_process(*argv))
    lines.event(f"the node of {place.name} up", type="started")
    return lines


def say(sender: Path, to: str, text: str, node: Lines) -> None:
    sent = run("--home", str(sender), "send", to, text)
    assert sent.returncode == 0, sent.stderr
    node.event(f"{text!r} received", type="message", text=text)


def one_line_error(done: subprocess.CompletedProcess, *said: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("enclave: error: "), done.stderr
    assert all(s in lines[0] for s in said), (said, lines[0])
    assert "Traceback" not in done.stderr


def left_nothing(parent: Path, target: Path) -> None:
    """A refused restore wrote neither its home nor a staging folder beside it."""
    assert not target.exists()
    assert not [p.name for p in parent.iterdir() if ".restore-" in p.name]


@pytest.fixture(scope="module")
def made(tmp_path_factory, rsa_keys):
    """(base, alice, bob, backup file): a chat both ways with the marker word, backed up
    while alice's node still runs; a settings file, a large REPL history (so the backup
    has several chunks) and a received file in alice's home."""
    base = tmp_path_factory.mktemp("backup")
    alice = Person(base, "alice", rsa_keys["alice"])
    bob = Person(base, "bob", rsa_keys["bob"])
    alice.knows(bob)
    bob.knows(alice)
    (alice.home / "enclave.toml").write_text('display_name = "alice"\n')
    entry = "\n# 2026-12-06 10:00:00.000000\n+/peers\n"
    (alice.home / "repl_history").write_text(entry * (int(2.5 * MiB) // len(entry)))
    (alice.home / "downloads").mkdir()
    (alice.home / "downloads" / "photo.jpg").write_bytes(b"the user's own file")
    (alice.home / "web.url").write_text("http://127.0.0.1:5000/#token=launch-token\n")  # a page's
    a, b = listen(alice.home, alice.port), listen(bob.home, bob.port)
    try:
        say(bob.home, "alice", f"{MARKER} from bob", a)
        say(alice.home, "bob", f"{MARKER} from alice", b)
        a.event("bob acked", type="delivery", state="delivered")
        bak = base / "alice.bak"
        done = run("--home", str(alice.home), "backup", str(bak))
        assert done.returncode == 0, done.stderr
    finally:
        a.stop()
        b.stop()
    assert done.stderr == ""  # no progress line without a terminal
    assert "Backed up" in done.stdout and "not your received files" in done.stdout
    assert "Sealed under your identity's password" in done.stdout
    return base, alice, bob, bak


def test_a_restored_home_runs_on_another_port_and_keeps_its_conversation(made):
    base, alice, bob, bak = made
    restored = base / "restored"
    done = run("restore", str(bak), "--home", str(restored))
    assert done.returncode == 0, done.stderr
    assert f"Restored identity {keys.group(alice.fingerprint, 4)}" in done.stdout
    names = sorted(p.name for p in restored.iterdir())  # no downloads/, -wal or web.url
    assert names == ["enclave.db", "enclave.toml", "identity.key", "identity.pub", "repl_history"]
    assert (restored / "repl_history").read_bytes() == (alice.home / "repl_history").read_bytes()
    check_fresh_home_modes(restored)

    port = _free_port()
    pem = base / "alice.pem"
    pem.write_bytes(alice.identity.public_pem)
    moved = run("--home", str(bob.home), "add", str(pem), "--address", f"127.0.0.1:{port}",
                "--name", "alice")  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    r, b = listen(restored, port), listen(bob.home, bob.port)
    try:
        say(bob.home, "alice", "to the restored home", r)
        say(restored, "bob", "from the restored home", b)
    finally:
        r.stop()
        b.stop()
    history = run("--home", str(restored), "history", "bob")
    assert history.returncode == 0, history.stderr
    said = [line.split("  ", 1)[1].rsplit("  (#", 1)[0] for line in history.stdout.splitlines()]
    assert said == [
        f"bob -> you: {MARKER} from bob",
        f"you -> bob: {MARKER} from alice",
        "bob -> you: to the restored home",
        "you -> bob: from the restored home",
    ]


def check_fresh_home_modes(place: Path) -> None:
    assert stat.S_IMODE(place.stat().st_mode) == 0o700
    assert stat.S_IMODE((place / "identity.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((place / "identity.pub").stat().st_mode) == 0o644
    if (place / "enclave.db").exists():  # (a home that never had a contact has none)
        assert stat.S_IMODE((place / "enclave.db").stat().st_mode) == 0o600
    for path in place.rglob("*"):
        if path.name != "identity.pub" and "downloads" not in path.parts:  # (the user's)
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_the_backup_holds_no_word_of_the_chat_in_clear(made):
    *_, bak = made
    grep = subprocess.run(["grep", "-a", "-c", MARKER, str(bak)], capture_output=True, text=True)
    assert grep.stdout.strip() == "0"
    assert stat.S_IMODE(bak.stat().st_mode) == 0o600
    assert bak.read_bytes()[:8] == backup.MAGIC
    assert not Path(f"{bak}.part").exists()


def test_a_wrong_password_writes_nothing(made, tmp_path):
    *_, bak = made
    done = run("restore", str(bak), "--home", str(tmp_path / "r"), ENCLAVE_PASSWORD="not it")
    one_line_error(done, "the password does not open this backup")
    left_nothing(tmp_path, tmp_path / "r")


def chunk_cuts(size: int) -> list[int]:
    whole = backup.CHUNK + backup.TAG_BYTES
    last = (size - backup.HEADER_LEN) % whole or whole
    return [
        backup.HEADER_LEN + 2 * whole - 1,  # the middle chunk ends a byte early
        size - last,  # the final chunk dropped: the file ends between two chunks
        size - 1,  # the final chunk's last byte
    ]


@pytest.mark.parametrize("cut", ["magic", "header", "first chunk", "chunks"])
def test_a_truncated_backup_writes_nothing(made, tmp_path, cut):
    *_, bak = made
    data = bak.read_bytes()
    assert len(data) > backup.HEADER_LEN + 2 * backup.CHUNK  # three chunks
    ends = {
        "magic": [3],
        "header": [8, 40, backup.HEADER_LEN - 1],
        "first chunk": [backup.HEADER_LEN, backup.HEADER_LEN + 100],
        "chunks": chunk_cuts(len(data)),
    }[cut]
    for end in ends:
        short = tmp_path / f"cut-{end}.bak"
        short.write_bytes(data[:end])
        done = run("restore", str(short), "--home", str(tmp_path / "r"))
        one_line_error(done, "this backup is damaged or incomplete (it was cut short)")
        left_nothing(tmp_path, tmp_path / "r")


@pytest.mark.parametrize(
    ("where", "said"),
    [
        (3, "is not an Enclave backup"),  # the magic
        (20, "the password does not open this backup"),  # the salt: other keys
        (45, "the password does not open this backup"),  # the check itself
        (backup.HEADER_LEN + 10, "damaged (part 1 of 3 fails its check)"),
        (backup.HEADER_LEN + backup.CHUNK + 30, "damaged (part 2 of 3 fails its check)"),
        (-1, "damaged (part 3 of 3 fails its check)"),  # the final chunk's tag
    ],
)
def test_one_flipped_byte_is_refused(made, tmp_path, where, said):
    *_, bak = made
    data = bytearray(bak.read_bytes())
    data[where] ^= 0x01
    flipped = tmp_path / "flipped.bak"
    flipped.write_bytes(data)
    one_line_error(run("restore", str(flipped), "--home", str(tmp_path / "r")), said)
    left_nothing(tmp_path, tmp_path / "r")


def test_swapped_chunks_are_refused(made, tmp_path):
    *_, bak = made
    data = bak.read_bytes()
    whole, start = backup.CHUNK + backup.TAG_BYTES, backup.HEADER_LEN
    first, second = data[start : start + whole], data[start + whole : start + 2 * whole]
    swapped = tmp_path / "swapped.bak"
    swapped.write_bytes(data[:start] + second + first + data[start + 2 * whole :])
    done = run("restore", str(swapped), "--home", str(tmp_path / "r"))
    one_line_error(done, "damaged (part 1 of 3 fails its check)")
    left_nothing(tmp_path, tmp_path / "r")


@pytest.fixture(scope="module")
def sealing():
    """One set of keys for every crafted backup (one scrypt run, not one per case)."""
    return backup.Sealing.new(PASSWORD)


def craft(path: Path, sealing, fingerprint: str, records: list[backup.Entry]) -> None:
    """A backup sealed under the right password whose records are ``records``."""
    backup.write_entries(path, sealing, [backup.manifest(fingerprint, False), *records])


def record(name: bytes, data: bytes = b"owned", kind: bytes = backup.FILE) -> backup.Entry:
    return backup.Entry(kind, name, 0o600, len(data), data=data)


HOSTILE = {  # case -> (its records, what the refusal says)
    "dotdot": ([record(b"../escape")], "names a file outside its home ('../escape')"),
    "nested-dotdot": ([record(b"retired/../../escape")], "outside its home"),
    "backslash": ([record(b"a\\..\\..\\escape")], "outside its home"),
    "no-folder": ([record(b"missing/escape")], "comes before its folder"),
    "downloads": ([record(b"downloads", b"", backup.FOLDER)], "which no backup holds"),
    "wal": ([record(b"enclave.db-wal")], "which no backup holds"),
    "symlink": ([record(b"link", b"../escape", b"L")], "a record of unknown kind"),
    "twice": ([record(b"twice"), record(b"twice")], "is in it twice"),
    "no-identity": ([], "it holds no identity"),
}


@pytest.mark.parametrize("case", [*HOSTILE, "absolute"])
def test_a_hostile_backup_writes_nothing_anywhere(made, sealing, tmp_path, case):
    _, alice, *_ = made
    escape = tmp_path / "escape"
    records, said = HOSTILE.get(case) or ([record(os.fsencode(escape))], "outside its home")
    hostile = tmp_path / "hostile.bak"
    craft(hostile, sealing, alice.fingerprint, records)
    target = tmp_path / "sub" / "r"  # escape is target/../../escape
    done = run("restore", str(hostile), "--home", str(target))
    one_line_error(done, said)
    assert not escape.exists() and not (tmp_path / "sub").exists()  # nor the folder made for it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.bak"]


def test_restoring_onto_an_identity_needs_force_and_moves_the_old_home_aside(
    made, rsa_keys, tmp_path
):
    *_, bak = made
    carol = Person(tmp_path, "carol", rsa_keys["carol"])
    (carol.home / "downloads").mkdir()
    (carol.home / "downloads" / "kept.txt").write_text("carol's received file")
    before = sorted(p.name for p in carol.home.iterdir())
    refused = run("restore", str(bak), "--home", str(carol.home))
    one_line_error(refused, "already holds an identity", "--force")
    assert sorted(p.name for p in carol.home.iterdir()) == before
    left_nothing(tmp_path, tmp_path / "nothing")

    done = run("restore", str(bak), "--home", str(carol.home), "--force")
    assert done.returncode == 0, done.stderr
    assert f"It replaced the identity {keys.group(carol.fingerprint, 4)}" in done.stdout
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith("carol.before-restore-")]
    assert str(aside) in done.stdout and "wipe" in done.stdout
    assert keys.read_public_identity(home.Home(aside)).fingerprint == carol.fingerprint
    fingerprint = run("--home", str(carol.home), "fingerprint")
    assert fingerprint.stdout.strip() == keys.group(made[1].fingerprint)
    assert (carol.home / "downloads" / "kept.txt").read_text() == "carol's received file"
    check_fresh_home_modes(carol.home)


def test_a_folder_that_is_no_home_is_never_moved_aside_unasked(made, tmp_path):
    *_, bak = made
    documents = tmp_path / "Documents"
    documents.mkdir()
    (documents / "thesis.txt").write_text("someone's own work")
    refused = run("restore", str(bak), "--home", str(documents))
    one_line_error(refused, "is not empty and holds no Enclave identity", "--force")
    assert [p.name for p in tmp_path.iterdir()] == ["Documents"]
    assert (documents / "thesis.txt").read_text() == "someone's own work"
    done = run("restore", str(bak), "--home", str(documents), "--force")
    assert done.returncode == 0, done.stderr
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith("Documents.before-restore-")]
    assert (aside / "thesis.txt").read_text() == "someone's own work"
    assert "nothing was erased" in done.stdout and "wipe" not in done.stdout


def test_a_backup_password_from_the_environment_or_a_file(made, tmp_path):
    _, alice, bob, _ = made
    from_env = tmp_path / "env.bak"
    done = run("--home", str(alice.home), "backup", str(from_env),
               ENCLAVE_NEW_PASSWORD=BACKUP_PASSWORD)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Sealed under the backup password you gave" in done.stdout
    secret = tmp_path / "backup-password"
    secret.write_text(BACKUP_PASSWORD + "\n")
    secret.chmod(0o644)
    from_file = tmp_path / "file.bak"
    lax = run("--home", str(alice.home), "backup", str(from_file), "--new-password-file",
              str(secret))  # fmt: skip
    one_line_error(lax, "accessible by other users", "chmod 600")
    assert not from_file.exists() and not Path(f"{from_file}.part").exists()
    secret.chmod(0o600)
    done = run("--home", str(alice.home), "backup", str(from_file), "--new-password-file",
               str(secret))  # fmt: skip
    assert done.returncode == 0, done.stderr
    for bak in (from_env, from_file):
        target = tmp_path / f"from-{bak.stem}"
        mine = run("restore", str(bak), "--home", str(target))  # the identity's: not this one's
        one_line_error(mine, "the password does not open this backup")
        done = run("restore", str(bak), "--home", str(target), ENCLAVE_PASSWORD=BACKUP_PASSWORD)
        assert done.returncode == 0, done.stderr
        assert "Unlock it with the identity's own password" in done.stdout
        history = run("--home", str(target), "history", "bob")  # its own password opens it
        assert history.returncode == 0 and f"{MARKER} from bob" in history.stdout
        wrong = run("--home", str(target), "history", "bob", ENCLAVE_PASSWORD=BACKUP_PASSWORD)
        one_line_error(wrong, "wrong password")


def test_backup_checks_its_file_and_the_identity_password_first(made, tmp_path):
    _, alice, *_ = made
    inside = run("--home", str(alice.home), "backup", str(alice.home / "in.bak"))
    one_line_error(inside, "inside the home it backs up")
    other = tmp_path / "notes.txt"
    other.write_text("someone's notes")
    one_line_error(run("--home", str(alice.home), "backup", str(other)), "not an Enclave backup")
    assert other.read_text() == "someone's notes"
    target = tmp_path / "new.bak"
    wrong = run("--home", str(alice.home), "backup", str(target), ENCLAVE_PASSWORD="not it")
    one_line_error(wrong, "wrong password")
    assert not target.exists() and not Path(f"{target}.part").exists()
    first = run("--home", str(alice.home), "backup", str(target))
    assert first.returncode == 0, first.stderr
    again = run("--home", str(alice.home), "backup", str(target))  # an older backup: replaced
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.bak", "notes.txt"]


def test_a_killed_runs_plaintext_scratch_is_erased_by_the_next_run(made, tmp_path):
    base, alice, _, bak = made
    dead = subprocess.Popen(["true"])  # a process that has ended: its pid is free
    dead.wait()
    stale = alice.home / f".backup-{dead.pid}-x1y2"
    stale.mkdir()
    (stale / "enclave.db").write_bytes(b"a plaintext snapshot")
    live = alice.home / f".backup-{os.getpid()}-z3"  # a run that is still going: kept
    live.mkdir()
    done = run("--home", str(alice.home), "backup", str(tmp_path / "again.bak"))
    assert done.returncode == 0, done.stderr
    assert not stale.exists() and live.exists()
    live.rmdir()
    home = tmp_path / "home"
    left = tmp_path / f".home.restore-{dead.pid}-q9"
    left.mkdir()
    (left / "enclave.db").write_bytes(b"a decrypted store")
    done = run("restore", str(bak), "--home", str(home))
    assert done.returncode == 0, done.stderr
    assert not left.exists()


def test_a_progress_line_only_on_a_terminal(made, tmp_path):
    _, alice, *_ = made
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "enclave", "--home", str(alice.home), "backup",
             str(tmp_path / "tty.bak")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal,
            env=_env(), cwd=ROOT,
        )  # fmt: skip
        os.close(terminal)
        shown = b""
        while chunk := _read_pty(controller):
            shown += chunk
        assert proc.wait(TIMEOUT) == 0, shown
    finally:
        os.close(controller)
    assert b"backup: " in shown and b"(100%)" in shown, shown


def _read_pty(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except OSError:  # EIO: the process closed its side
        return b""


def test_the_manifest_names_the_identity_and_its_password(made, tmp_path):
    """The restore side reads what the backup side wrote (in-process: the format)."""
    from enclave.identity import restore

    _, alice, _, bak = made
    opened = restore.open_backup(bak, PASSWORD)
    assert opened.header.chunks == 3 and opened.header.file_size == bak.stat().st_size
    done = restore.restore(opened, home.Home(tmp_path / "r"), force=False)
    assert done.fingerprint == alice.fingerprint and not done.separate and done.aside is None
    assert done.files == 5


def test_the_keys_rotated_away_from_go_with_the_identity(rsa_keys, tmp_path):
    carol = Person(tmp_path, "carol", rsa_keys["carol"])
    rotated = run("--home", str(carol.home), "rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    retired = sorted(p.name for p in (carol.home / "retired").iterdir())
    assert retired and all(name.startswith("1-") for name in retired)
    bak, target = tmp_path / "carol.bak", tmp_path / "restored"
    assert run("--home", str(carol.home), "backup", str(bak)).returncode == 0
    done = run("restore", str(bak), "--home", str(target))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (target / "retired").iterdir()) == retired
    for name in retired:
        assert (target / "retired" / name).read_bytes() == (
            carol.home / "retired" / name
        ).read_bytes()
    check_fresh_home_modes(target)
    assert stat.S_IMODE((target / "retired").stat().st_mode) == 0o700
    new = run("--home", str(target), "fingerprint").stdout
    assert new == run("--home", str(carol.home), "fingerprint").stdout
    assert new.replace(" ", "").strip() != carol.fingerprint  # the key it rotated to
    opened = run("--home", str(target), "history", "nobody")  # unlocks, retired keys too
    one_line_error(opened, "no peer matches 'nobody'")
    assert "not unlocked" not in opened.stderr
