"""``enclave rename / block / unblock / remove`` with and without a running node.

With none, each command unlocks the identity (contact names are sealed in the store):
``alice`` is written at Enclave's real cost, which the command line unlocks."""

import asyncio

import pytest
import test_cli
from support.nodes import Recorder, alice_and_bob, public_pem
from test_cli import assert_one_line_error, run, run_process

from enclave.faces import runner
from enclave.identity.home import Home
from enclave.node.book import open_book
from enclave.node.events import ContactChanged

# test_cli's fixtures, used by name here too
home_dir, alice_home, alice = test_cli.home_dir, test_cli.alice_home, test_cli.alice
key_files, with_carol = test_cli.key_files, test_cli.with_carol


@pytest.fixture
def peers(alice, with_carol):
    """The contacts of alice's home by name, read with her store key."""

    def read() -> dict:
        with open_book(Home(with_carol).db_path, store_key=alice.store_key) as book:
            return {p.name: p for p in book.contacts()}

    return read


def test_rename_block_unblock_without_a_node(with_carol, peers, capsys):
    code, out, _ = run(capsys, "rename", "carol", "caro")
    assert code == 0 and out == "Renamed carol to caro\n"
    assert set(peers()) == {"caro"}
    code, out, _ = run(capsys, "block", "caro")
    assert code == 0 and out.startswith("Blocked caro:") and "unblock caro" in out
    assert peers()["caro"].blocked
    code, out, _ = run(capsys, "--peers")
    assert "caro (blocked)" in out
    code, out, _ = run(capsys, "unblock", "caro")
    assert code == 0 and not peers()["caro"].blocked


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (("rename", "nobody", "x"), "no peer matches 'nobody'"),
        (("rename", "carol", "bidi\u202ename"), "invalid peer name"),
        (("rename", "carol"), "the following arguments are required: NEW"),
        (("block",), "the following arguments are required: PEER"),
        (("remove", "carol"), "add --yes"),  # no terminal to ask on
    ],
)
def test_contact_mistakes_are_one_line_and_change_nothing(peers, capsys, argv, fragment):
    before = peers()
    assert_one_line_error(*run(capsys, *argv), fragment)
    assert peers() == before


def test_remove_asks_at_a_terminal(with_carol, peers, capsys, monkeypatch):
    answers = iter(["n", "y"])
    prompts = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    monkeypatch.delenv("ENCLAVE_PASSWORD")
    monkeypatch.setattr("getpass.getpass", lambda p: prompts.append(p) or test_cli.PASSWORD)
    assert_one_line_error(*run(capsys, "remove", "carol"), "nothing removed")
    assert "carol" in peers()
    code, out, _ = run(capsys, "remove", "carol")
    assert code == 0 and out == "Removed carol with its history\n" and peers() == {}
    # Once a command, though each opens the store twice (counting, then removing).
    assert len(prompts) == 2 and "identity.key" in prompts[0]


def test_remove_yes_counts_undelivered(with_carol, capsys):
    assert run(capsys, "send", "carol", "one")[0] == 0
    assert run(capsys, "send", "carol", "two")[0] == 0
    code, out, _ = run(capsys, "remove", "--yes", "carol")
    assert code == 0 and out == "Removed carol with its history and 2 undelivered\n"


def test_global_options_go_either_side_as_a_process(with_carol, peers):
    home, env = str(with_carol), {"ENCLAVE_PASSWORD": test_cli.PASSWORD}
    done = run_process("--home", home, "rename", "carol", "c2", env_extra=env)
    assert done.returncode == 0, done.stderr
    done = run_process("block", "c2", "--home", home, env_extra=env)
    assert done.returncode == 0 and done.stdout.startswith("Blocked c2"), done.stderr
    assert peers()["c2"].blocked
    done = run_process("--home", home, "block", "c2")  # no password: no name to match
    assert done.returncode == 2 and "a password is needed" in done.stderr


@pytest.mark.asyncio
async def test_changes_go_through_the_running_node(rsa_keys, tmp_path):
    """With a node running on the home, the CLI asks it: its sessions and faces follow."""
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        server = await runner.start_control(a, runner.control_path(a.home))
        try:
            ra = Recorder(a)

            async def cli(*argv):
                done = await asyncio.to_thread(run_process, "--home", str(a.home), *argv)
                assert done.returncode == 0, done.stderr
                return done.stdout

            assert await cli("rename", "bob", "robert") == "Renamed bob to robert\n"
            listed = (await cli("peers")).splitlines()  # the node's list: no password
            assert listed[0].split()[0] == "NAME" and listed[1].split()[0] == "robert"
            assert (await cli("block", "robert")).startswith("Blocked robert")
            assert (
                a.resolve("robert").blocked
                and a.sessions.policy.peer_key(bytes.fromhex(b.fingerprint)) is None
            )
            await cli("unblock", "robert")
            await cli("remove", "robert", "--yes")
            assert a.contacts() == []
            # Adding while the node runs: the node knows the contact at once (its
            # handshake policy too), with no restart.
            pem = tmp_path / "carol.pem"
            pem.write_text(public_pem(rsa_keys["carol"]))
            out = await cli("add", str(pem), "--address", "127.0.0.1:9", "--name", "carol")
            assert out.startswith("Added peer carol at 127.0.0.1:9")
            carol = a.resolve("carol")
            assert a.sessions.policy.peer_key(bytes.fromhex(carol.fingerprint)) is not None
            changes = [e.change for e in ra.events if isinstance(e, ContactChanged)]
            assert changes == ["renamed", "blocked", "unblocked", "removed", "added"]
        finally:
            server.close()
            await server.wait_closed()


def test_keep_history_without_a_node(peers, capsys):
    code, out, _ = run(capsys, "keep-history", "carol", "off")
    assert code == 0 and out.startswith("History with carol is off: new messages are shown")
    assert "clear carol" in out and not peers()["carol"].keep_history
    code, out, _ = run(capsys, "keep-history", "carol", "on")
    assert out == "History with carol is on: new messages are kept\n"
    assert peers()["carol"].keep_history
    assert_one_line_error(*run(capsys, "keep-history", "carol", "maybe"), "invalid choice")
    assert_one_line_error(*run(capsys, "keep-history", "nobody", "off"), "no peer matches")


@pytest.mark.asyncio
async def test_keep_history_goes_through_the_running_node(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        server = await runner.start_control(a, runner.control_path(a.home))
        try:
            ra = Recorder(a)
            done = await asyncio.to_thread(
                run_process, "--home", str(a.home), "keep-history", "bob", "off"
            )
            assert done.returncode == 0 and "is off" in done.stdout, done.stderr
            assert bytes.fromhex(b.fingerprint) in a.delivery.unkept  # the node follows
            changes = [e.change for e in ra.events if isinstance(e, ContactChanged)]
            assert changes == ["history_off"]
        finally:
            server.close()
            await server.wait_closed()
