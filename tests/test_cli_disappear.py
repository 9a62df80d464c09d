"""``enclave disappear PEER TIME`` with and without a running node."""

import asyncio

import pytest
import test_cli
from support.nodes import Recorder, alice_and_bob
from test_cli import assert_one_line_error, run, run_process

from enclave.faces import runner
from enclave.identity.home import Home
from enclave.node.book import open_book
from enclave.node.events import TimerChanged

# test_cli's fixtures, used by name here too
# test_cli's home with carol, its identity at the real cost (``alice``): with no node
# running the TIMER joins the sealed outbox, and carol's name is sealed.
home_dir, alice = test_cli.home_dir, test_cli.alice
key_files, with_carol = test_cli.key_files, test_cli.with_carol


@pytest.fixture
def carol(alice, with_carol):
    """carol as stored, and what is owed to her, read with the store key."""

    def read():
        with open_book(Home(with_carol).db_path, store_key=alice.store_key) as book:
            (carol,) = [p for p in book.contacts() if p.name == "carol"]
            return carol, book._store.outbox_for(carol.fingerprint)

    return read


def test_without_a_node_the_timer_waits_in_the_outbox(carol, capsys):
    code, out, _ = run(capsys, "disappear", "carol", "1d")
    assert code == 0 and out.startswith("Messages with carol now disappear after 1 day;")
    assert "no node is running" in out
    peer, owed = carol()
    assert peer.disappear_s == 86400 and [o.timer for o in owed] == [86400]
    code, out, _ = run(capsys, "disappear", "carol", "off")
    assert code == 0 and out.startswith("Disappearing messages with carol are off")
    peer, owed = carol()
    assert peer.disappear_s == 0 and [o.timer for o in owed] == [86400, 0]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (("disappear", "carol", "soon"), "'soon' is no duration"),
        (("disappear", "carol", "10s"), "a timer is off or between 30 seconds and 4 weeks"),
        (("disappear", "carol", "5w"), "a timer is off or between 30 seconds and 4 weeks"),
        (("disappear", "nobody", "1d"), "no peer matches 'nobody'"),
        (("disappear", "carol"), "the following arguments are required: TIME"),
    ],
)
def test_mistakes_are_one_line_and_change_nothing(carol, capsys, argv, fragment):
    assert_one_line_error(*run(capsys, *argv), fragment)
    peer, owed = carol()
    assert peer.disappear_s == 0 and owed == []


@pytest.mark.asyncio
async def test_through_the_running_node(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        server = await runner.start_control(a, runner.control_path(a.home))
        try:
            rb = Recorder(b)
            done = await asyncio.to_thread(
                run_process, "--home", str(a.home), "disappear", "bob", "1h"
            )
            assert done.returncode == 0, done.stderr
            assert done.stdout == (
                "Messages with bob now disappear after 1 hour; the running node told bob\n"
            )
            await rb.until(lambda r: any(isinstance(e, TimerChanged) for e in r.events))
            assert b.contacts()[0].disappear_s == 3600
            bad = await asyncio.to_thread(
                run_process, "--home", str(a.home), "disappear", "bob", "20s"
            )
            assert bad.returncode == 2 and "between 30 seconds and 4 weeks" in bad.stderr
        finally:
            server.close()
            await server.wait_closed()
