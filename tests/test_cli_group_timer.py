"""``enclave group disappear GROUP TIME``: with no node running it signs the timer into
the group's log with the unlocked key (the password), and posts queued after it carry
their expiry; with a node running the control request sets it through the node;
mistakes are one line, exit 2, and change nothing."""

import time

import pytest
from support.nodes import Recorder, introduce, start
from support.stores import unlocked_store
from test_cli_groups import alice, alice_peer, run, stored_group  # noqa: F401
from test_cli_processes import PASSWORD

from enclave.faces.control_groups import serve_group
from enclave.node.events import GroupChanged
from enclave.protocol import group_log as gl

DAY = 86400


def test_without_a_node_the_admin_signs_the_timer_and_posts_expire(alice, rsa_keys):  # noqa: F811
    gid = stored_group(alice, rsa_keys)
    done = run(alice, "disappear", "crew", "1d")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Posts in crew now disappear after 1 day;")
    assert "no node is running" in done.stdout
    assert "disappearing: 1 day" in run(alice, "list").stdout
    before = int(time.time() * 1000)
    assert run(alice, "send", "crew", "gone tomorrow").returncode == 0
    with unlocked_store(alice.home, PASSWORD) as store:
        row = store.get_group(gid)
        assert row.disappear_s == DAY and len(row.records) == 2
        glog = gl.GroupLog.load([gl.decode_record(r) for r in row.records])
        assert glog.timer_s == DAY and glog.records[1].kind == gl.TIMER
        (owed,) = store.outbox_for(alice_peer(store, "bob"))
        with store._lock:
            (expires,) = store._db.execute(
                "SELECT expires_ms FROM messages WHERE rowid = ?", (owed.rowid,)
            ).fetchone()
    assert owed.body == "gone tomorrow" and before + DAY * 1000 <= expires
    done = run(alice, "disappear", "crew", "off")
    assert done.returncode == 0 and done.stdout.startswith("Disappearing messages in crew are off")


@pytest.mark.parametrize(
    "argv, said",
    [
        (("disappear", "crew", "soon"), "'soon' is no duration"),
        (("disappear", "crew", "10s"), "a timer is off or between 30 seconds and 4 weeks"),
        (("disappear", "crew", "5w"), "a timer is off or between 30 seconds and 4 weeks"),
        (("disappear", "crew", "off"), "disappearing messages in crew are off already"),
        (("disappear", "nosuch", "1d"), "no group matches 'nosuch'"),
        (("disappear", "crew"), "the following arguments are required: TIME"),
    ],
)
def test_mistakes_are_one_line_and_change_nothing(alice, rsa_keys, argv, said):  # noqa: F811
    gid = stored_group(alice, rsa_keys)
    done = run(alice, *argv)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    with unlocked_store(alice.home, PASSWORD) as store:
        assert len(store.get_group(gid).records) == 1


@pytest.mark.asyncio
async def test_the_running_nodes_side_sets_it_for_every_member(tmp_path, rsa_keys):
    a = await start(tmp_path / "a", rsa_keys["alice"])
    b = await start(tmp_path / "b", rsa_keys["bob"])
    try:
        introduce(a, b, rsa_keys["alice"], rsa_keys["bob"])
        rb = Recorder(b)
        await a.create_group("crew", ["bob"])
        await rb.until(lambda r: b.groups_list(), what="bob holds crew")
        answers = []

        async def answer(data):
            answers.append(data)

        request = {"op": "group", "action": "disappear", "group": "crew", "seconds": 3600}
        await serve_group(a, request, answer, 1.0)
        assert answers[-1]["group"]["disappear_s"] == 3600
        await rb.until(
            lambda r: any(isinstance(e, GroupChanged) and e.seconds == 3600 for e in r.events)
        )
        await serve_group(a, {**request, "seconds": 5}, answer, 1.0)
        assert "between 30 seconds and 4 weeks" in answers[-1]["error"]
        await serve_group(a, {**request, "seconds": "1h"}, answer, 1.0)
        assert "needs seconds" in answers[-1]["error"]
    finally:
        await a.stop()
        await b.stop()
