"""The ``enclave`` command for keys and peers, in process and as a real process.

Identities are written with the tests' cheap KDF cost (tests/support/keyfactory.py) except in
the few tests marked ``slow``, which go through the real ``--generate``,
``--import-key`` and ``--change-password`` paths at Enclave's real cost, and the tests
whose command reads or writes a contact name (``alice``: sealed names take the password).
"""

import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from support.keyfactory import (
    PASSWORD,
    ec_key,
    ed25519_key,
    make_identity,
    private_pem,
    public_pem,
    real_cost_identity,
    small_rsa,
)
from support.stores import unlocked_store

import enclave
from enclave.faces import cli, parsers
from enclave.identity import home, keys, passwords
from enclave.store import Store
from enclave.store.sealing import LOCKED

ROOT = Path(__file__).resolve().parent.parent
BOB_ADDRESS = "192.168.1.101:8000"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_process(*argv: str, env_extra: dict | None = None, input_text: str | None = None):
    """``enclave ARGV`` as a real process; without ``input_text`` it has no terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(env_extra or {})
    stdin = {"input": input_text} if input_text is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run(
        [sys.executable, "-m", "enclave", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        **stdin,
    )


def secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    """A password file as a careful user writes it (mode 600 unless told)."""
    path.write_text(text)
    os.chmod(path, mode)
    return path


def assert_one_line_error(code: int, out: str, err: str, *fragments: str) -> None:
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("enclave: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``folder`` with its mode and bytes."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): (stat.S_IMODE(p.stat().st_mode), p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def home_dir(tmp_path, monkeypatch) -> Path:
    """An empty home chosen through ENCLAVE_HOME, with ENCLAVE_PASSWORD set."""
    path = tmp_path / "home"
    monkeypatch.setenv("ENCLAVE_HOME", str(path))
    monkeypatch.setenv("ENCLAVE_PASSWORD", PASSWORD)
    return path


@pytest.fixture
def alice_home(home_dir, rsa_keys) -> Path:
    make_identity(home_dir, rsa_keys["alice"])
    return home_dir


@pytest.fixture
def key_files(tmp_path, rsa_keys) -> dict[str, str]:
    files = {
        "bob": public_pem(rsa_keys["bob"]),
        "carol": public_pem(rsa_keys["carol"]),
        "alice": public_pem(rsa_keys["alice"]),
        "garbage": b"this is not a key\n",
        "private": private_pem(small_rsa(2048)),
        "small": public_pem(small_rsa(1024)),
        "weak": public_pem(small_rsa(2048)),
        "ec": public_pem(ec_key()),
        "ed25519": public_pem(ed25519_key()),
    }
    folder = tmp_path / "keys"
    folder.mkdir()
    for name, data in files.items():
        (folder / f"{name}.pem").write_bytes(data)
    return {name: str(folder / f"{name}.pem") for name in [*files, "missing"]}


@pytest.fixture
def alice(home_dir, rsa_keys) -> keys.Identity:
    """Alice's identity at Enclave's real cost: the commands that read or write contact
    names unlock it (the names are sealed in the store)."""
    return real_cost_identity(home_dir, rsa_keys["alice"])


@pytest.fixture
def with_carol(alice, home_dir, key_files) -> Path:
    """Alice's home with one peer, carol, so the database exists (added as ``enclave
    add`` does, with the store key at hand: no password to pay for)."""
    from enclave.node.book import open_book

    carol = Path(key_files["carol"]).read_bytes()
    with open_book(home.Home(home_dir).db_path, alice.fingerprint, alice.store_key) as book:
        book.add(carol, "10.0.0.3:8000", "carol")
    return home_dir


# --- help and version -----------------------------------------------------------------


def test_help_lists_the_seed_flags_and_examples(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for flag in (
        "--generate", "--add-peer", "--peer-address", "--listen", "--port", "--host",
        "--web", "--web-port", "--peers", "--fingerprint", "--public-key", "--import-key",
        "--home", "--password-file", "--force", "--name", "--version", "ENCLAVE_HOME",
        "ENCLAVE_PASSWORD", "examples:",
    ):  # fmt: skip
        assert flag in out


def test_version(capsys):
    assert run(capsys, "--version") == (0, f"enclave {enclave.__version__}\n", "")


def test_help_and_version_import_nothing_heavy():
    probe = (
        "import sys, io, contextlib\n"
        "from enclave.faces.cli import main\n"
        "for flag in ('--help', '--version'):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert main([flag]) == 0\n"
        "heavy = ('cryptography', 'msgpack', 'uvloop', 'asyncio', 'enclave.protocol',\n"
        "         'enclave.identity.keys', 'enclave.store', 'sqlite3', 'platformdirs', 'prompt_toolkit')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_help_as_a_process():
    result = run_process("--help")
    assert result.returncode == 0 and "usage: enclave" in result.stdout


# --- generating an identity -------------------------------------------------------------


@pytest.fixture(scope="session")
def real_identity(tmp_path_factory) -> tuple[Path, str]:
    """One identity made by the real ``enclave --generate`` in a separate process."""
    path = tmp_path_factory.mktemp("real") / "home"
    result = run_process(
        "--generate", "--home", str(path), env_extra={"ENCLAVE_PASSWORD": PASSWORD}
    )
    assert result.returncode == 0, result.stderr
    return path, result.stdout


@pytest.mark.slow
def test_generate_real_cost(real_identity):
    path, out = real_identity
    place = home.Home(path)
    fp = keys.read_public_identity(place).fingerprint
    assert f"Fingerprint: {keys.group(fp)}" in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE(place.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(place.pub_path.stat().st_mode) == 0o644
    assert keys.read_header(place.key_path.read_bytes()).kdf == keys.DEFAULT_KDF
    assert PASSWORD not in out


@pytest.mark.slow
def test_wrong_password_is_one_line_as_a_process(real_identity, tmp_path):
    place = tmp_path / "copy"
    shutil.copytree(real_identity[0], place)
    before = snapshot(place)
    result = run_process(
        "--change-password",
        "--home",
        str(place),
        env_extra={"ENCLAVE_PASSWORD": "not the password"},
    )
    assert_one_line_error(
        result.returncode,
        result.stdout,
        result.stderr,
        f"wrong password for {place / 'identity.key'}",
    )
    assert snapshot(place) == before


@pytest.mark.slow
def test_change_password_at_a_terminal(real_identity, tmp_path, capsys, monkeypatch):
    place = tmp_path / "copy"
    shutil.copytree(real_identity[0], place)
    old_fp = keys.read_public_identity(home.Home(place)).fingerprint
    store_key = keys.load_identity(home.Home(place), PASSWORD).store_key
    answers = iter([PASSWORD, "a brand new password", "a brand new password"])
    at_terminal(monkeypatch, answers)
    code, out, err = run(capsys, "--change-password", "--home", str(place))
    assert code == 0, err
    assert "re-encrypted" in out and "brand new" not in out + err
    now = keys.load_identity(home.Home(place), "a brand new password")
    assert now.fingerprint == old_fp
    assert now.store_key == store_key  # the history stays readable


def at_terminal(monkeypatch, answers) -> None:
    """Pretend a person types ``answers`` at hidden password prompts."""
    monkeypatch.delenv("ENCLAVE_PASSWORD", raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(passwords.getpass, "getpass", lambda prompt: next(answers))


def test_generate_refuses_to_overwrite(alice_home, capsys):
    before = snapshot(alice_home)
    code, out, err = run(capsys, "--generate")
    assert_one_line_error(code, out, err, "already exists", "--force")
    assert snapshot(alice_home) == before


@pytest.mark.slow
def test_generate_force_replaces(alice_home, capsys, monkeypatch, rsa_keys):
    monkeypatch.setattr(keys, "generate", lambda: rsa_keys["bob"])  # saves a key generation
    code, out, err = run(capsys, "--generate", "--force")
    assert code == 0, err
    bob_fp = keys.fingerprint(rsa_keys["bob"].public_key())
    assert f"Fingerprint: {keys.group(bob_fp)}" in out
    assert keys.read_public_identity(home.Home(alice_home)).fingerprint == bob_fp


def test_generate_without_terminal_or_password_says_how(home_dir, capsys, monkeypatch):
    monkeypatch.delenv("ENCLAVE_PASSWORD")
    code, out, err = run(capsys, "--generate")
    assert_one_line_error(code, out, err, "ENCLAVE_PASSWORD", "--password-file")
    assert not home_dir.exists() or snapshot(home_dir) == {}


def test_generate_passwords_must_match(home_dir, capsys, monkeypatch):
    at_terminal(monkeypatch, iter(["first password!!", "second password!"]))
    code, out, err = run(capsys, "--generate")
    assert_one_line_error(code, out, err, "do not match")
    assert snapshot(home_dir) == {}


def test_generate_refuses_an_empty_password(home_dir, capsys, monkeypatch):
    monkeypatch.setenv("ENCLAVE_PASSWORD", "")
    assert_one_line_error(*run(capsys, "--generate"), "ENCLAVE_PASSWORD is set but empty")


def test_generate_refuses_a_home_open_to_others(home_dir, capsys):
    home_dir.mkdir(mode=0o755)
    os.chmod(home_dir, 0o755)
    assert_one_line_error(*run(capsys, "--generate"), f"chmod 700 {home_dir}")


# --- password sources -------------------------------------------------------------------


def test_password_file_first_line(tmp_path):
    path = secret_file(tmp_path / "pw", "")
    path.write_bytes(b"secret line one\r\nsecond line\n")
    assert passwords.existing("?", password_file=str(path), environ={}) == "secret line one"
    assert passwords.new(password_file=str(path), environ={"ENCLAVE_PASSWORD": "other"}) == (
        "secret line one"
    )


@pytest.mark.parametrize(("content", "why"), [(b"", "empty"), (b"\n", "empty"), (b"\xff", "UTF-8")])
def test_password_file_refusals(tmp_path, content, why):
    path = secret_file(tmp_path / "pw", "")
    path.write_bytes(content)
    with pytest.raises(passwords.UserError, match=why):
        passwords.existing("?", password_file=str(path), environ={})


def test_password_file_missing(tmp_path):
    with pytest.raises(passwords.UserError, match="no such file"):
        passwords.existing("?", password_file=str(tmp_path / "nope"), environ={})


def test_short_new_password_warns(capsys):
    assert passwords.new(environ={"ENCLAVE_PASSWORD": "short"}) == "short"
    assert "warning" in capsys.readouterr().err


# --- importing the original client's key --------------------------------------------


@pytest.mark.slow
def test_import_seed_key(home_dir, tmp_path, capsys, rsa_keys, monkeypatch):
    seed = tmp_path / "private_key.pem"
    seed.write_bytes(private_pem(rsa_keys["carol"], PASSWORD.encode()))
    monkeypatch.setenv("ENCLAVE_NEW_PASSWORD", "the new enclave password")
    code, out, err = run(capsys, "--import-key", str(seed))
    assert code == 0, err
    fp = keys.fingerprint(rsa_keys["carol"].public_key())
    assert f"Fingerprint: {keys.group(fp)}" in out
    place = home.Home(home_dir)
    assert keys.read_header(place.key_path.read_bytes()).kdf == keys.DEFAULT_KDF
    assert keys.load_identity(place, "the new enclave password").fingerprint == fp
    assert stat.S_IMODE(place.key_path.stat().st_mode) == 0o600


def test_import_wrong_password_changes_nothing(home_dir, tmp_path, capsys, rsa_keys):
    seed = tmp_path / "private_key.pem"
    seed.write_bytes(private_pem(rsa_keys["carol"], b"the seed password"))
    assert_one_line_error(*run(capsys, "--import-key", str(seed)), f"wrong password for {seed}")
    assert not home_dir.exists()


def test_import_refuses_to_overwrite(alice_home, tmp_path, capsys, rsa_keys):
    seed = tmp_path / "private_key.pem"
    seed.write_bytes(private_pem(rsa_keys["carol"], PASSWORD.encode()))
    before = snapshot(alice_home)
    assert_one_line_error(*run(capsys, "--import-key", str(seed)), "already exists")
    assert snapshot(alice_home) == before


@pytest.mark.parametrize("which", ["missing", "bob", "garbage"])
def test_import_bad_files(home_dir, key_files, capsys, which):
    assert_one_line_error(*run(capsys, "--import-key", key_files[which]))
    assert not home_dir.exists()


# --- own fingerprint and public key -----------------------------------------------------


def test_fingerprint_and_public_key(alice_home, capsys, rsa_keys):
    fp = keys.fingerprint(rsa_keys["alice"].public_key())
    assert run(capsys, "--fingerprint") == (0, keys.group(fp) + "\n", "")
    assert run(capsys, "--public-key") == (0, public_pem(rsa_keys["alice"]).decode(), "")


def test_fingerprint_as_a_process(alice_home, rsa_keys):
    result = run_process("--fingerprint", "--home", str(alice_home))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == keys.group(keys.fingerprint(rsa_keys["alice"].public_key()))


@pytest.mark.parametrize("action", ["--fingerprint", "--public-key", "--change-password"])
def test_no_identity_yet(home_dir, capsys, action):
    assert_one_line_error(
        *run(capsys, action), "no identity yet", f"run: enclave --home {home_dir} --generate"
    )
    assert not home_dir.exists()


def test_readable_private_key_is_refused(alice_home, capsys):
    key_path = alice_home / "identity.key"
    os.chmod(key_path, 0o644)
    assert_one_line_error(*run(capsys, "--fingerprint"), f"chmod 600 {key_path}")


# --- adding and listing peers -------------------------------------------------------------


def test_add_peer_and_readd_updates_address(alice, home_dir, key_files, capsys, rsa_keys):
    alice_home = home_dir
    bob_fp = keys.fingerprint(rsa_keys["bob"].public_key())
    code, out, err = run(
        capsys, "--add-peer", key_files["bob"], "--peer-address", BOB_ADDRESS, "--name", "bob"
    )
    assert code == 0, err
    assert f"Added peer bob at {BOB_ADDRESS}" in out
    assert f"Fingerprint: {keys.group(bob_fp)}" in out
    code, out, err = run(capsys, "--add-peer", key_files["bob"], "--peer-address", "[FE80::1]:8001")
    assert code == 0, err
    assert "Updated peer bob at [fe80::1]:8001" in out
    with Store.open(alice_home / "enclave.db", key=alice.store_key) as store:
        peers = store.list_peers()
    assert [(p.fingerprint, p.name, p.address) for p in peers] == [
        (bob_fp, "bob", "[fe80::1]:8001")
    ]
    with Store.open(alice_home / "enclave.db") as store:  # the name is sealed
        assert [p.name for p in store.list_peers()] == [LOCKED]
    assert peers[0].public_key == public_pem(rsa_keys["bob"]).decode()
    assert stat.S_IMODE((alice_home / "enclave.db").stat().st_mode) == 0o600


def test_add_peer_as_a_process(alice, home_dir, key_files, tmp_path):
    secret = secret_file(tmp_path / "password", PASSWORD)  # a script's way to unlock
    result = run_process(
        "--add-peer", key_files["bob"], "--peer-address", BOB_ADDRESS, "--home", str(home_dir),
        "--password-file", str(secret),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Added peer" in result.stdout and result.stderr == ""


def test_add_weak_peer_warns(alice, key_files, capsys):
    code, out, err = run(capsys, "--add-peer", key_files["weak"], "--peer-address", BOB_ADDRESS)
    assert code == 0
    assert "warning" in err and "2048-bit" in err


BAD_ADD_PEER = [
    pytest.param(["--add-peer", "{missing}", "--peer-address", BOB_ADDRESS], "no such file", id="missing-file"),
    pytest.param(["--add-peer", "{garbage}", "--peer-address", BOB_ADDRESS], "not a PEM public key", id="not-pem"),
    pytest.param(["--add-peer", "{private}", "--peer-address", BOB_ADDRESS], "is a private key", id="private-key"),
    pytest.param(["--add-peer", "{small}", "--peer-address", BOB_ADDRESS], "1024-bit", id="rsa-1024"),
    pytest.param(["--add-peer", "{ec}", "--peer-address", BOB_ADDRESS], "an EC key", id="ec-key"),
    pytest.param(["--add-peer", "{ed25519}", "--peer-address", BOB_ADDRESS], "an Ed25519 key", id="ed25519-key"),
    pytest.param(["--add-peer", "{bob}", "--peer-address", "192.168.1.101"], "port is missing", id="no-port"),
    pytest.param(["--add-peer", "{bob}", "--peer-address", "192.168.1.101:0"], "outside 1-65535", id="port-0"),
    pytest.param(["--add-peer", "{bob}", "--peer-address", "192.168.1.101:65536"], "outside 1-65535", id="port-65536"),
    pytest.param(["--add-peer", "{bob}", "--peer-address", "192.168.1.101:http"], "not a number", id="port-text"),
    pytest.param(["--add-peer", "{bob}", "--peer-address", "fe80::1:8000"], "needs brackets", id="bare-ipv6"),
    pytest.param(["--add-peer", "{bob}", "--peer-address", ":8000"], "host is empty", id="empty-host"),
    pytest.param(["--add-peer", "{bob}", "--peer-address", "my host:8000"], "spaces", id="space-in-host"),
    pytest.param(["--add-peer", "{bob}", "--peer-address", "b@d!:8000"], "not a valid host name", id="bad-host-chars"),
    pytest.param(["--add-peer", "{bob}"], "needs --peer-address", id="no-address"),
    pytest.param(["--add-peer", "{bob}", "--peer-address", BOB_ADDRESS, "--name", "carol"], "already used", id="name-taken"),
    pytest.param(["--add-peer", "{bob}", "--peer-address", BOB_ADDRESS, "--name", "bo\u200bb"], "invalid peer name", id="bad-name"),
    pytest.param(["--add-peer", "{bob}", "--peer-address", BOB_ADDRESS, "--name", ""], "1 to 32", id="empty-name"),
    pytest.param(["--add-peer", "{alice}", "--peer-address", BOB_ADDRESS], "your own public key", id="own-key"),
    pytest.param(["--add-peer", "", "--peer-address", BOB_ADDRESS], "empty file name", id="empty-path"),
    pytest.param(["--peer-address", BOB_ADDRESS], "--peer-address needs an action", id="address-alone"),
    pytest.param(["--peers", "--peer-address", BOB_ADDRESS], "--peer-address goes with --add-peer", id="address-with-peers"),
    pytest.param(["--add-peer", "{bob}", "--peers"], "not allowed with", id="two-actions"),
    pytest.param(["--add-peer", "{bob}", "--peer-address", BOB_ADDRESS, "--force"], "--force with --add-peer only forces --protocol v1", id="force"),
    pytest.param(["--change-password", "--new-password-file", "x", "--peers"], "not allowed with", id="new-password-file-two-actions"),
    pytest.param(["--peers", "--new-password-file", "x"], "--new-password-file goes with --change-password or --import-key", id="new-password-file-with-peers"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "why"), BAD_ADD_PEER)
def test_bad_add_peer_input_changes_nothing(alice, with_carol, key_files, capsys, argv, why):
    before = snapshot(with_carol)
    argv = [arg.format(**key_files) for arg in argv]
    assert_one_line_error(*run(capsys, *argv), why)
    assert snapshot(with_carol) == before
    with Store.open(with_carol / "enclave.db", key=alice.store_key) as store:
        assert [p.name for p in store.list_peers()] == ["carol"]


def test_bad_add_peer_as_a_process_changes_nothing(with_carol, key_files):
    before = snapshot(with_carol)
    result = run_process(
        "--add-peer", key_files["private"], "--peer-address", BOB_ADDRESS, "--home", str(with_carol)
    )
    assert_one_line_error(result.returncode, result.stdout, result.stderr, "is a private key")
    assert snapshot(with_carol) == before


def test_add_peer_without_identity(home_dir, key_files, capsys):
    assert_one_line_error(
        *run(capsys, "--add-peer", key_files["bob"], "--peer-address", BOB_ADDRESS),
        "no identity yet",
    )
    assert not home_dir.exists()


def test_peers_listing(with_carol, key_files, capsys, rsa_keys):
    run(capsys, "--add-peer", key_files["bob"], "--peer-address", "[::1]:9000")
    code, out, err = run(capsys, "--peers")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "FINGERPRINT", "ADDRESS", "VERIFIED", "PROTO"]
    carol_fp = keys.fingerprint(rsa_keys["carol"].public_key())
    bob_fp = keys.fingerprint(rsa_keys["bob"].public_key())
    assert lines[1].split() == [
        "carol",
        *keys.group(carol_fp, 4).split(),
        "10.0.0.3:8000",
        "no",
        "auto",
    ]
    assert lines[2].split() == ["-", *keys.group(bob_fp, 4).split(), "[::1]:9000", "no", "auto"]


def test_peers_when_there_are_none(home_dir, capsys):
    code, out, _ = run(capsys, "--peers")
    assert code == 0 and "No peers yet" in out
    assert not home_dir.exists()


# --- the guard and the later parts --------------------------------------------------------


def part_from(monkeypatch, name: str, module: str) -> None:
    """Subcommand ``name`` (and its seed flag) run by ``module.run`` for this test."""
    sub = parsers.SUBCOMMANDS[name]
    monkeypatch.setitem(parsers.SUBCOMMANDS, name, sub._replace(module=module, function="run"))


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["--name", "x"], "--name needs an action"),
        (["--bogus"], "unrecognized arguments"),
        (["--gen"], "unrecognized arguments"),
        (["--generate", "--name", "x"], "--name goes with --add-peer"),
        (["--web-port", "5001", "--listen"], "--web-port goes with --web"),
        (["--listen", "--port", "0"], "invalid port"),
        (["--listen", "--port", "http"], "invalid port"),
        (["--web", "--web-port", "70000"], "invalid port"),
        (["--listen", "--host", "bad host"], "spaces"),
        (["send"], "required"),
    ],
)
def test_usage_mistakes_are_one_line(home_dir, capsys, monkeypatch, argv, why):
    part_from(monkeypatch, "listen", "enclave._not_built_for_test")
    part_from(monkeypatch, "web", "enclave._not_built_for_test")
    assert_one_line_error(*run(capsys, *argv), why)


def test_missing_part_says_not_available(home_dir, capsys, monkeypatch):
    part_from(monkeypatch, "listen", "enclave._not_built_for_test")
    assert_one_line_error(*run(capsys, "--listen"), "--listen is not available in this build yet")
    assert_one_line_error(*run(capsys, "listen"), "enclave listen is not available in this build")


def test_a_part_missing_a_dependency_is_a_bug_not_a_user_error(monkeypatch):
    import importlib

    def import_module(name):
        raise ModuleNotFoundError("No module named 'quart'", name="quart")

    monkeypatch.setattr(importlib, "import_module", import_module)
    with pytest.raises(ModuleNotFoundError):
        cli._run_later("enclave.faces.web", "--web", types.SimpleNamespace())


def fake_part(monkeypatch, name: str) -> list:
    seen = []
    part = types.ModuleType(name)
    part.run = lambda args: seen.append(args) or 0
    monkeypatch.setitem(sys.modules, name, part)
    return seen


def test_listen_and_web_get_normalized_flags(home_dir, capsys, monkeypatch):
    seen = fake_part(monkeypatch, "enclave._fake_part")
    part_from(monkeypatch, "listen", "enclave._fake_part")
    part_from(monkeypatch, "web", "enclave._fake_part")
    assert run(capsys, "--listen")[0] == 0
    assert cli.main_web(["--port", "8001", "--host", "::"]) == 0
    listen, web = seen
    assert (listen.listen, listen.port, listen.host) == (True, 8000, "0.0.0.0")
    assert (web.web, web.port, web.host, web.web_port) == (True, 8001, "::", 5000)


def test_send_subcommand(home_dir, monkeypatch):
    seen = fake_part(monkeypatch, "enclave.faces.send")
    assert cli.main(["send", "bob", "hello", "there", "--home", "/x"]) == 0
    assert (seen[0].peer, seen[0].message, seen[0].home) == ("bob", "hello there", "/x")


def test_user_error_from_a_part_is_one_line(home_dir, capsys, monkeypatch):
    part = types.ModuleType("enclave.faces.send")

    def fail(args):
        raise cli.UserError("no peer named 'bob'\nsecond line \x1b[31m")

    part.run = fail
    monkeypatch.setitem(sys.modules, "enclave.faces.send", part)
    code, out, err = run(capsys, "send", "bob", "hi")
    assert_one_line_error(code, out, err, "no peer named 'bob' second line ?[31m")


def test_ctrl_c_exits_130_quietly(alice_home, capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_fingerprint", interrupted)
    code, out, err = run(capsys, "--fingerprint")
    assert code == 130 and "Traceback" not in err


def test_unlock_helper_for_later_parts(alice_home):
    # The later parts unlock through cli.unlock; at Enclave's floor a test-cost file is refused.
    args = types.SimpleNamespace(home=None, password_file=None)
    with pytest.raises(cli.UserError, match="below Enclave's minimum"):
        cli.unlock(args)
    assert cli.home_of(args).path == alice_home


def test_add_peer_can_mark_a_legacy_peer(alice, home_dir, key_files, capsys):
    """--protocol v1 marks a peer that runs only the original client; auto undoes it."""
    alice_home = home_dir
    base = ["--add-peer", key_files["bob"], "--peer-address", "127.0.0.1:8000"]
    code, out, _ = run(capsys, *base, "--protocol", "v1")
    assert code == 0 and "Marked legacy" in out
    with Store.open(alice_home / "enclave.db") as store:
        assert [p.proto for p in store.list_peers()] == ["v1"]
    code, out, _ = run(capsys, *base, "--protocol", "auto")
    assert code == 0 and "Marked legacy" not in out
    with Store.open(alice_home / "enclave.db") as store:
        assert [p.proto for p in store.list_peers()] == ["auto"]


# --- new passwords come from their own sources (issue 14, item 8) -------------------------

NEW_PASSWORD = "a brand new password"


def real_copy(real_identity, tmp_path) -> Path:
    """A copy of the identity made at Enclave's real cost (the unlock floor refuses less)."""
    place = tmp_path / "copy"
    shutil.copytree(real_identity[0], place)
    return place


@pytest.mark.slow
def test_change_password_without_a_new_password_or_terminal_is_one_line(real_identity, tmp_path):
    """The old password alone (a script that forgot the new one) is an error, never the
    old password kept under a message saying it changed."""
    place = real_copy(real_identity, tmp_path)
    before = snapshot(place)
    result = run_process(
        "--change-password", "--home", str(place), env_extra={"ENCLAVE_PASSWORD": PASSWORD}
    )
    assert_one_line_error(
        result.returncode,
        result.stdout,
        result.stderr,
        "a new password is needed and there is no terminal",
        "ENCLAVE_NEW_PASSWORD",
        "--new-password-file FILE",
    )
    assert snapshot(place) == before


@pytest.mark.slow
@pytest.mark.parametrize("source", ["variable", "file"])
def test_change_password_takes_the_new_one_from_its_own_source(real_identity, tmp_path, source):
    place = real_copy(real_identity, tmp_path)
    fp = keys.read_public_identity(home.Home(place)).fingerprint
    old_file = secret_file(tmp_path / "old password", PASSWORD + "\n")
    argv = ["--change-password", "--home", str(place), "--password-file", str(old_file)]
    env = {"ENCLAVE_PASSWORD": "a variable that must lose to the file"}
    if source == "variable":
        env["ENCLAVE_NEW_PASSWORD"] = NEW_PASSWORD
    else:
        argv += ["--new-password-file", str(secret_file(tmp_path / "new pw", NEW_PASSWORD))]
    result = run_process(*argv, env_extra=env)
    assert result.returncode == 0, result.stderr
    assert "re-encrypted" in result.stdout and NEW_PASSWORD not in result.stdout + result.stderr
    assert keys.load_identity(home.Home(place), NEW_PASSWORD).fingerprint == fp
    with pytest.raises(cli.UserError, match="wrong password"):
        keys.load_identity(home.Home(place), PASSWORD)


@pytest.mark.slow
def test_import_key_takes_the_new_password_from_its_own_source(tmp_path, rsa_keys):
    seed = tmp_path / "private_key.pem"
    seed.write_bytes(private_pem(rsa_keys["carol"], b"the seed password"))
    place = tmp_path / "home"
    argv = ["--import-key", str(seed), "--home", str(place)]
    alone = run_process(*argv, env_extra={"ENCLAVE_PASSWORD": "the seed password"})
    assert_one_line_error(
        alone.returncode, alone.stdout, alone.stderr, "new password", "ENCLAVE_NEW_PASSWORD"
    )
    assert not place.exists()
    env = {"ENCLAVE_PASSWORD": "the seed password", "ENCLAVE_NEW_PASSWORD": NEW_PASSWORD}
    result = run_process(*argv, env_extra=env)
    assert result.returncode == 0, result.stderr
    fp = keys.fingerprint(rsa_keys["carol"].public_key())
    assert keys.load_identity(home.Home(place), NEW_PASSWORD).fingerprint == fp
    with pytest.raises(cli.UserError, match="wrong password"):
        keys.load_identity(home.Home(place), "the seed password")


class Terminal:
    """``enclave`` with a pseudo-terminal as stdin, stdout and stderr: what a person sees,
    and keys typed when a prompt shows."""

    def __init__(self, argv: list[str], env_extra: dict) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
        env.update(PYTHONPATH=str(ROOT), **env_extra)
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "enclave", *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.screen = ""

    def answer(self, prompt: str, text: str) -> None:
        self.wait_for(prompt)
        os.write(self.master, text.encode() + b"\r")

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        import select

        deadline = time.monotonic() + timeout
        while text not in self.screen:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.master], [], [], max(left, 0))
            chunk = self._read() if ready else b""
            if not chunk:
                raise AssertionError(f"no {text!r} on the terminal; it showed {self.screen!r}")
            self.screen += chunk.decode(errors="replace")

    def finish(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout)
        while chunk := self._read():
            self.screen += chunk.decode(errors="replace")
        os.close(self.master)
        return code

    def _read(self) -> bytes:
        try:
            return os.read(self.master, 4096)
        except OSError:  # EIO: the process closed the terminal
            return b""


@pytest.mark.slow
@pytest.mark.parametrize("repeat", [NEW_PASSWORD, "not the same password"])
def test_change_password_asks_twice_at_a_real_terminal(real_identity, tmp_path, repeat):
    place = real_copy(real_identity, tmp_path)
    before = snapshot(place)
    term = Terminal(["--change-password", "--home", str(place)], {"ENCLAVE_PASSWORD": PASSWORD})
    term.answer("New password for your Enclave identity: ", NEW_PASSWORD)
    term.answer("Repeat the password: ", repeat)
    code = term.finish()
    assert NEW_PASSWORD not in term.screen and PASSWORD not in term.screen  # never echoed
    if repeat == NEW_PASSWORD:
        assert code == 0, term.screen
        assert keys.load_identity(home.Home(place), NEW_PASSWORD)
    else:
        assert code == 2 and "the two passwords do not match" in term.screen
        assert snapshot(place) == before


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660], ids=oct)
@pytest.mark.parametrize("kind", ["current", "new"])
def test_a_password_file_other_users_can_reach_is_refused(tmp_path, mode, kind):
    path = secret_file(tmp_path / "my password", "secret password one", mode)
    read = passwords.existing if kind == "current" else passwords.replacement
    kwargs = {"password_file": str(path), "environ": {}}
    if kind == "current":
        kwargs["prompt"] = "?"
    with pytest.raises(passwords.UserError) as refused:
        read(**kwargs)
    text = str(refused.value)
    what = "new password file" if kind == "new" else "password file"
    assert text.startswith(f"{what} {path} is accessible by other users")
    assert text.endswith(f"run: chmod 600 '{path}'") and "\n" not in text
    assert f"mode {mode & 0o777:03o}" in text and "secret" not in text


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700], ids=oct)
def test_an_owner_only_password_file_is_accepted(tmp_path, mode):
    path = secret_file(tmp_path / "pw", "secret password one", mode)
    assert passwords.existing("?", password_file=str(path), environ={}) == "secret password one"
    assert passwords.replacement(password_file=str(path), environ={}) == "secret password one"


def test_a_readable_password_file_is_refused_by_the_command(alice_home, tmp_path):
    path = secret_file(tmp_path / "pw", PASSWORD, 0o644)
    result = run_process(
        "--change-password", "--home", str(alice_home), "--password-file", str(path)
    )
    assert_one_line_error(
        result.returncode, result.stdout, result.stderr, f"chmod 600 {path}", "(mode 644)"
    )


# --- global options anywhere, and hints that work as printed (issue 14, item 10) ----------


@pytest.fixture
def other_home(tmp_path, monkeypatch, rsa_keys) -> Path:
    """Alice's home in a folder chosen only by --home (no ENCLAVE_HOME), knowing bob.
    Queueing with no node running seals the text: the password comes from the
    environment (or --password-file)."""
    monkeypatch.delenv("ENCLAVE_HOME", raising=False)
    monkeypatch.setenv("ENCLAVE_PASSWORD", PASSWORD)
    path = tmp_path / "alice's home"
    make_identity(path, rsa_keys["alice"], kdf=keys.DEFAULT_KDF)  # the CLI unlocks it
    with Store.open(home.Home(path).db_path) as store:
        bob_pem = public_pem(rsa_keys["bob"]).decode()
        store.upsert_peer(
            keys.fingerprint(rsa_keys["bob"].public_key()), bob_pem, BOB_ADDRESS, "bob", 0
        )
    return path


def outbox_bodies(path: Path) -> list[str]:
    with unlocked_store(path, PASSWORD) as store:
        return [m.body for m in store.history(store.find_peers("bob")[0].fingerprint, 10)]


@pytest.mark.parametrize(
    "argv",
    [
        ["--home", "{home}", "send", "bob", "hello", "there"],
        ["send", "--home", "{home}", "bob", "hello", "there"],
        ["send", "bob", "hello", "there", "--home", "{home}"],
        ["--home={home}", "send", "bob", "hello", "there"],
        ["--set", "commit_batch=64", "--home", "{home}", "send", "bob", "hello", "there"],
        ["send", "bob", "--set", "commit_batch=64", "hello", "there", "--home", "{home}"],
        ["--password-file", "{pw}", "send", "--home", "{home}", "bob", "hello", "there"],
    ],
)
def test_global_options_go_before_or_after_send(other_home, tmp_path, capsys, argv):
    pw = secret_file(tmp_path / "pw", PASSWORD)
    argv = [a.format(home=other_home, pw=pw) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert re.match(r"No node is running; the message to bob \(#[0-9a-z]{4}\) is queued", out)
    assert outbox_bodies(other_home) == ["hello there"]


def test_home_before_send_as_a_process(other_home):
    result = run_process(
        "--home", str(other_home), "send", "bob", "See you at 5",
        env_extra={"ENCLAVE_PASSWORD": PASSWORD},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert outbox_bodies(other_home) == ["See you at 5"]


def test_a_home_folder_named_like_the_subcommand(tmp_path, monkeypatch, rsa_keys, capsys):
    monkeypatch.delenv("ENCLAVE_HOME", raising=False)
    monkeypatch.setenv("ENCLAVE_PASSWORD", PASSWORD)
    monkeypatch.chdir(tmp_path)
    make_identity(tmp_path / "send", rsa_keys["alice"], kdf=keys.DEFAULT_KDF)
    with Store.open(tmp_path / "send" / "enclave.db") as store:
        bob_pem = public_pem(rsa_keys["bob"]).decode()
        store.upsert_peer(keys.fingerprint(rsa_keys["bob"].public_key()), bob_pem, None, "bob", 0)
    assert run(capsys, "--home", "send", "send", "bob", "hi")[0] == 0
    assert outbox_bodies(tmp_path / "send") == ["hi"]


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["--peers", "send", "bob", "hi"], "unrecognized arguments: --peers"),
        (["--home", "{home}", "send"], "required"),
        (["--set", "no_such_knob=1", "--home", "{home}", "send", "bob", "hi"], "no_such_knob"),
        (["--home", "{home}", "bob", "hi"], "unrecognized arguments: bob hi"),
    ],
)
def test_send_mistakes_with_global_options_are_one_line(other_home, capsys, argv, why):
    argv = [a.format(home=other_home) for a in argv]
    assert_one_line_error(*run(capsys, *argv), why)
    assert outbox_bodies(other_home) == []


class Shell:
    """Runs a command exactly as Enclave printed it, in /bin/sh, with ``enclave`` on the
    PATH and a HOME of its own (so the default home folder is a fresh one)."""

    def __init__(self, tmp_path: Path) -> None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        shim = bin_dir / "enclave"
        shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m enclave "$@"\n')
        shim.chmod(0o755)
        self.cwd = tmp_path / "cwd"
        self.cwd.mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("ENCLAVE_", "XDG_"))}
        user = tmp_path / "user"
        self.env.update(
            PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHONPATH=str(ROOT), HOME=str(user)
        )
        self.default_home = user / ".local" / "share" / "enclave"

    def __call__(self, command: str, **env_extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=self.cwd,
            env={**self.env, **env_extra},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self, command: str, **env_extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=self.cwd,
            env={**self.env, **env_extra},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def hint(text: str, after: str, before: str | None = None) -> str:
    """The command printed after ``after`` (up to ``before`` or the end of its line)."""
    assert after in text, text
    command = text.split(after, 1)[1].splitlines()[0]
    return command.split(before, 1)[0] if before else command


def q(path) -> str:
    return shlex.quote(str(path))


@pytest.mark.slow
def test_hints_for_a_new_home_work_as_printed(tmp_path, rsa_keys):
    sh = Shell(tmp_path)
    place = tmp_path / "alice's home"  # a space and a quote: the hint must quote it
    missing = sh(f"enclave --home {q(place)} --fingerprint")
    generate = hint(missing.stderr, "run: ")
    assert generate == f"enclave --home {q(place)} --generate"
    idle = sh(f"enclave --home {q(place)}")
    assert (
        idle.returncode == 0
        and hint(idle.stdout, "Create one: ") == f"enclave --home {q(place)} generate"
    )
    made = sh(generate, ENCLAVE_PASSWORD=PASSWORD)
    assert made.returncode == 0, made.stderr
    share = sh(hint(made.stdout, "Share your public key with: "))
    assert share.returncode == 0, share.stderr
    assert (sh.cwd / "my-key.pem").read_bytes() == (place / "identity.pub").read_bytes()

    bob = tmp_path / "bob.pem"
    bob.write_bytes(public_pem(rsa_keys["bob"]))
    for listing in (
        sh(f"enclave --home {q(place)} --peers"),
        sh(f"enclave --home {q(place)} send bob hi"),
    ):
        add = hint(listing.stdout + listing.stderr, "dd one: ")
        add = add.replace("FILE", q(bob)).replace("HOST:PORT", "127.0.0.1:9")
        added = sh(add, ENCLAVE_PASSWORD=PASSWORD)  # the name is sealed: the password
        assert added.returncode == 0 and "peer" in added.stdout, added.stderr
        (place / "enclave.db").unlink()  # the second hint starts from no peers again
        for extra in place.glob("enclave.db-*"):
            extra.unlink()

    (place / "identity.pub").unlink()
    lost = sh(f"enclave --home {q(place)} --fingerprint")
    regenerate = hint(lost.stderr, "restore it or run: ")
    assert regenerate == f"enclave --home {q(place)} --generate --force"
    assert sh(regenerate, ENCLAVE_PASSWORD=PASSWORD).returncode == 0
    assert sh(f"enclave --home {q(place)} --fingerprint").returncode == 0

    # The default home needs no --home in its hints.
    plain = hint(sh("enclave --fingerprint").stderr, "run: ")
    assert plain == "enclave --generate"
    assert sh(plain, ENCLAVE_PASSWORD=PASSWORD).returncode == 0
    assert (sh.default_home / "identity.key").exists()


@pytest.mark.slow
def test_permission_hints_work_as_printed(tmp_path, rsa_keys):
    sh = Shell(tmp_path)
    place = tmp_path / "a home"
    keys.save_identity(home.Home(place), rsa_keys["alice"], PASSWORD)
    fingerprint = f"enclave --home {q(place)} --fingerprint"
    for target, mode in ((place, 0o755), (place / "identity.key", 0o640)):
        os.chmod(target, mode)
        refused = sh(fingerprint)
        assert refused.returncode == 2
        fix = hint(refused.stderr, "run: ")
        assert fix == f"chmod {'700' if target == place else '600'} {q(target)}"
        assert sh(fix).returncode == 0
        assert sh(fingerprint).returncode == 0

    old = secret_file(tmp_path / "old password", PASSWORD, 0o644)
    new = secret_file(tmp_path / "new password", NEW_PASSWORD, 0o640)
    change = (
        f"enclave --home {q(place)} --change-password "
        f"--password-file {q(old)} --new-password-file {q(new)}"
    )
    for path in (old, new):
        refused = sh(change)
        assert refused.returncode == 2 and str(path) in refused.stderr, refused.stderr
        fix = hint(refused.stderr, "run: ")
        assert fix == f"chmod 600 {q(path)}"
        assert sh(fix).returncode == 0
    assert sh(change).returncode == 0
    assert keys.load_identity(home.Home(place), NEW_PASSWORD)


@pytest.mark.slow
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="runs the printed --listen (port 8000) in its own network namespace: needs root",
)
def test_node_hints_work_as_printed(tmp_path, rsa_keys):
    sh = Shell(tmp_path)
    place = tmp_path / "a home"
    keys.save_identity(home.Home(place), rsa_keys["alice"], PASSWORD)
    with Store.open(home.Home(place).db_path) as store:
        bob_pem = public_pem(rsa_keys["bob"]).decode()
        store.upsert_peer(
            keys.fingerprint(rsa_keys["bob"].public_key()), bob_pem, "127.0.0.1:9", "bob", 0
        )
    queued = sh(f"enclave --home {q(place)} send bob first", ENCLAVE_PASSWORD=PASSWORD)
    listen = hint(queued.stdout, "leaves when the node runs: ")
    assert listen == f"enclave --home {q(place)} listen"
    # As printed, in a network namespace of its own, where port 8000 is surely free.
    node = sh.start(f"unshare -n /bin/sh -c {q(listen)}", ENCLAVE_PASSWORD=PASSWORD)
    try:
        lines = []
        for line in node.stdout:  # bounded by the node's start; it prints this early
            lines.append(line)
            if line.startswith("Listening on"):
                break
        assert lines and lines[-1].startswith("Listening on 0.0.0.0:8000"), lines
        second = sh(listen, ENCLAVE_PASSWORD=PASSWORD)
        assert second.returncode == 2
        reach = hint(second.stderr, "reach it with: ")
        assert reach == f"enclave --home {q(place)} send PEER MESSAGE"
        sent = sh(reach.replace("PEER", "bob").replace("MESSAGE", "'second one'"))
        assert sent.returncode == 0 and "Queued in the running node" in sent.stdout, sent.stderr
    finally:
        os.killpg(node.pid, signal.SIGTERM)
        rest = node.communicate(timeout=60)[0]
    assert "Stopping; 2 message(s) stay queued in the outbox" in rest


# --- no silent downgrade (issue 14, item 6) -----------------------------------------------


def test_readding_a_peer_that_spoke_v2_as_v1_needs_force(
    alice, home_dir, key_files, capsys, rsa_keys
):
    alice_home = home_dir
    bob_fp = keys.fingerprint(rsa_keys["bob"].public_key())
    base = ["--add-peer", key_files["bob"], "--peer-address", BOB_ADDRESS, "--name", "bob"]
    assert run(capsys, *base)[0] == 0
    with Store.open(alice_home / "enclave.db") as store:
        store.mark_v2_seen(bob_fp)  # what the node records once bob speaks v2
    before = snapshot(alice_home)
    again = ["--add-peer", key_files["bob"], "--peer-address", "10.0.0.9:8000", "--protocol", "v1"]
    result = run_process(
        *again, "--home", str(alice_home), env_extra={"ENCLAVE_PASSWORD": PASSWORD}
    )
    assert_one_line_error(
        result.returncode,
        result.stdout,
        result.stderr,
        "bob has spoken Enclave's own protocol (v2)",
        "only if it went back to the original client, add --force",
    )
    assert snapshot(alice_home) == before  # not even the new address
    code, out, err = run(capsys, *again, "--force")
    assert code == 0 and "Marked legacy (v1)" in out
    assert err.startswith("enclave: warning: bob had spoken Enclave's own protocol (v2)")
    assert len(err.splitlines()) == 1
    with Store.open(alice_home / "enclave.db") as store:
        peer = store.get_peer(bob_fp)
    assert (peer.proto, peer.v2_seen, peer.address) == ("v1", False, "10.0.0.9:8000")
    code, out, err = run(capsys, *again, "--protocol", "auto")  # the upgrade needs nothing
    assert code == 0 and err == ""
    with Store.open(alice_home / "enclave.db") as store:
        assert store.get_peer(bob_fp).proto == "auto"


# --- subcommands, their seed aliases, status and completion (issue 16, items 6-7) -------

ALIASES = [
    (["generate", "--force"], ["--generate", "--force"], ("force",)),
    (["import-key", "k.pem"], ["--import-key", "k.pem"], ("import_key",)),
    (["change-password", "--new-password-file", "n"], ["--change-password", "--new-password-file", "n"], ("new_password_file",)),
    (["add", "b.pem", "--address", BOB_ADDRESS, "--name", "bob"], ["--add-peer", "b.pem", "--peer-address", BOB_ADDRESS, "--name", "bob"], ("add_peer", "peer_address", "name")),
    (["add", "b.pem", "--peer-address", BOB_ADDRESS, "--protocol", "v1"], ["--add-peer", "b.pem", "--peer-address", BOB_ADDRESS, "--protocol", "v1"], ("add_peer", "peer_address", "protocol")),
    (["peers"], ["--peers"], ()),
    (["fingerprint"], ["--fingerprint"], ()),
    (["public-key"], ["--public-key"], ()),
    (["listen", "--port", "8001", "--host", "127.0.0.1", "--json"], ["--listen", "--port", "8001", "--host", "127.0.0.1", "--json"], ("port", "host", "json")),
    (["web", "--web-port", "5001", "--verbose"], ["--web", "--web-port", "5001", "--verbose"], ("web_port", "verbose")),
]  # fmt: skip


@pytest.mark.parametrize(("sub", "seed", "same"), ALIASES, ids=[a[0][0] for a in ALIASES])
def test_a_subcommand_and_its_seed_flag_parse_to_the_same_action(sub, seed, same):
    sub_name, sub_args, _ = cli.parse(sub)
    seed_name, seed_args, typed = cli.parse(seed)
    assert sub_name == seed_name == sub[0] and typed == seed[0]
    for dest in (*same, "home", "password_file", "set_overrides"):
        assert getattr(sub_args, dest) == getattr(seed_args, dest), dest


@pytest.mark.parametrize("name", ["generate", "add", "peers", "listen", "send", "settings"])
@pytest.mark.parametrize("side", ["before", "after"])
def test_global_options_go_either_side_of_any_subcommand(name, side):
    own = {"add": ["b.pem", "--address", BOB_ADDRESS], "send": ["bob", "hi"]}.get(name, [])
    options = ["--home", "/h", "--password-file", "/pw", "--set", "crypto_workers=3"]
    argv = [*options, name, *own] if side == "before" else [name, *own, *options]
    got, args, _ = cli.parse(argv)
    assert got == name
    assert (args.home, args.password_file, args.set_overrides) == (
        "/h",
        "/pw",
        ["crypto_workers=3"],
    )


@pytest.mark.parametrize("name", list(parsers.SUBCOMMANDS))
def test_every_subcommand_has_its_own_help_with_an_example(capsys, name):
    code, out, _ = run(capsys, name, "--help")
    assert code == 0 and out.startswith(f"usage: enclave {name}")
    sub = parsers.SUBCOMMANDS[name]
    assert sub.summary[1:] in out and f"example:\n  {sub.example}\n" in out
    assert "--home DIR" in out  # the global options, on every subcommand


def test_main_help_lists_the_subcommands(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name, sub in parsers.SUBCOMMANDS.items():
        assert f"  {name} " in out and sub.summary in out


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["add", "b.pem"], "required: --address"),
        (["listen", "--web-port", "5001"], "unrecognized arguments: --web-port"),
        (["completion", "tcsh"], "invalid choice"),
        (["rename", "bob"], "required: NEW"),
        (["peers", "extra"], "unrecognized arguments: extra"),
    ],
)
def test_subcommand_mistakes_are_one_line(home_dir, capsys, argv, why):
    assert_one_line_error(*run(capsys, *argv), why, f"see enclave {argv[0]} --help")


def test_subcommand_values_are_checked_as_the_seed_flags_are(home_dir, capsys):
    assert_one_line_error(*run(capsys, "listen", "--port", "0"), "invalid port '0'")
    assert_one_line_error(*run(capsys, "web", "--host", "bad host"), "spaces")


@pytest.mark.parametrize(
    ("argv", "attrs"),
    [
        (["remove", "bob", "--yes"], {"peer": "bob", "yes": True}),
        (["block", "bob"], {"peer": "bob"}),
        (["unblock", "bob"], {"peer": "bob"}),
        (["rename", "bob", "robert"], {"peer": "bob", "new_name": "robert"}),
    ],
)
def test_contact_subcommands_go_to_the_contacts_module(home_dir, capsys, monkeypatch, argv, attrs):
    name = argv[0]
    assert parsers.SUBCOMMANDS[name][:2] == ("enclave.faces.contacts", name)
    seen = []
    part = types.ModuleType("enclave.faces.contacts")
    setattr(part, name, lambda args: seen.append(args) or 0)
    monkeypatch.setitem(sys.modules, "enclave.faces.contacts", part)
    assert run(capsys, *argv, "--home", "/x")[0] == 0
    assert {k: getattr(seen[0], k) for k in attrs} == attrs and seen[0].home == "/x"


def test_a_contact_subcommand_missing_from_the_build_is_one_line(home_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "enclave.faces.contacts", None)  # as if not built
    code, out, err = run(capsys, "block", "bob")
    assert_one_line_error(code, out, err, "enclave block is not available in this build yet")


def test_bare_enclave_without_identity_says_to_generate(home_dir, capsys):
    code, out, err = run(capsys)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"No Enclave identity in {home_dir} yet.",
        f"Create one: enclave --home {shlex.quote(str(home_dir))} generate",
    ]
    assert not home_dir.exists()


def test_bare_enclave_shows_the_status_and_next_commands(other_home, capsys, rsa_keys):
    code, out, err = run(capsys, "--home", str(other_home))
    assert (code, err) == (0, "")
    fingerprint = keys.fingerprint(rsa_keys["alice"].public_key())
    assert f"Fingerprint: {keys.group(fingerprint)}\n" in out
    assert "Contacts:    1\n" in out and "Node:        not running\n" in out
    prefix = f"enclave --home {shlex.quote(str(other_home))}"
    for command in ("listen", "web", "send PEER MESSAGE", "peers"):
        assert f"  {prefix} {command} " in out
    assert run(capsys, "status", "--home", str(other_home))[1] == out


def test_status_sees_a_running_node(other_home, capsys):
    import socket as sockets

    path = other_home / "control.sock"
    with sockets.socket(sockets.AF_UNIX) as node:
        node.bind(str(path))
        node.listen()
        code, out, _ = run(capsys, "--home", str(other_home))
    assert code == 0 and "Node:        running on this home\n" in out
    assert " listen " not in out  # no second node suggested


def test_settings_prints_the_configuration_in_effect(other_home, capsys):
    (other_home / "enclave.toml").write_text("crypto_workers = 4\n")
    code, out, _ = run(capsys, "settings", "--home", str(other_home), "--set", "legacy_v1=false")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"# settings in effect for {other_home} (from ")
    assert "crypto_workers = 4" in lines and "legacy_v1 = false" in lines
    assert 'store_sync = "full"' in lines
    import tomllib

    from enclave.node.settings import KNOBS

    assert set(tomllib.loads(out)) == set(KNOBS)  # a valid enclave.toml, every knob


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script(capsys, shell):
    code, out, _ = run(capsys, "completion", shell)
    assert code == 0
    for name in ("generate", "import-key", "add", "listen", "send", "completion"):
        assert name in out
    if shell == "bash":
        checked = subprocess.run(["bash", "-n"], input=out, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        assert "-F _shtab_enclave enclave" in out
        assert complete_in_bash(out, "enclave ge") == "generate"
        assert complete_in_bash(out, "enclave listen --j") == "--json"


def complete_in_bash(script: str, line: str) -> str:
    """What the completion script offers for ``line`` (a tab at its end)."""
    probe = (
        f"{script}\nCOMP_WORDS=({line}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); "
        '_shtab_enclave; echo "${COMPREPLY[@]}"'
    )
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
