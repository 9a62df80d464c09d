"""A hostile contact against group chat (issue 18, item 7): posts from non-members, for
unknown groups and from the future; forged, forking and uninvited records; a group
over the member cap; a flood of HEADs. Each is refused with a logged reason, nothing
of it is stored or shown, and the node keeps serving its honest peers.

Mallory is a contact of Alice's and writes straight onto her own session with Alice,
below her node's checks.
"""

import contextlib
import os

import pytest
from support.nodes import Recorder, public_pem, small_key, start
from support.waiting import eventually

from enclave.node.events import GroupMessageReceived, MessageReceived
from enclave.node.settings import Settings
from enclave.protocol import group_log as gl
from enclave.protocol.crypto import spki_pem
from enclave.protocol.messages import GroupPost

CAP = 4  # Alice's group_max_members


@pytest.fixture(scope="module")
def keys():
    return {n: small_key() for n in ("alice", "bob", "mallory", "eve")}


@contextlib.asynccontextmanager
async def cast(tmp_path, keys):
    a = await start(tmp_path / "a", keys["alice"], Settings(group_max_members=CAP))
    b = await start(tmp_path / "b", keys["bob"])
    m = await start(tmp_path / "m", keys["mallory"])
    try:
        for other, name in ((b, "bob"), (m, "mallory")):
            a.add_peer(public_pem(keys[name]), f"127.0.0.1:{other.address[1]}", name)
            other.add_peer(public_pem(keys["alice"]), f"127.0.0.1:{a.address[1]}", "alice")
        yield a, b, m
    finally:
        for node in (a, b, m):
            await node.stop()


async def mallory_link(m, a):
    """Mallory's session with Alice, once it is up."""
    fp = a.identity.fingerprint
    await eventually(lambda: m.sessions.pick(fp), what="Mallory's session with Alice")
    return m.sessions.pick(fp)


def post(m, a, gid: bytes, epoch: int, text: str, n: int) -> GroupPost:
    mid = n.to_bytes(16, "big")
    return GroupPost(mid, m.identity.fingerprint, a.identity.fingerprint, 1, gid, epoch, 9, n, text)


def entry(identity, name: str) -> gl.Entry:
    return gl.entry(spki_pem(identity.peer_key.key), name)


async def still_serving(a, m, ra: Recorder, text: str) -> None:
    await m.send("alice", text)
    await ra.until(lambda r: any(e.body == text for e in r.received()), what=text)


@pytest.mark.asyncio
async def test_posts_from_a_stranger_to_the_group_for_no_group_and_from_the_future(tmp_path, keys):
    async with cast(tmp_path, keys) as (a, b, m):
        ra = Recorder(a)
        duo = bytes.fromhex((await a.create_group("duo", ["bob"])).id)
        trio = bytes.fromhex((await a.create_group("trio", ["bob", "mallory"])).id)
        await eventually(lambda: len(m.groups_list()) == 1, what="Mallory holds trio")
        link = await mallory_link(m, a)
        link.conn.send_group_posts([
            post(m, a, duo, 0, "not a member of duo", 1),
            post(m, a, os.urandom(16), 0, "no such group", 2),
            post(m, a, trio, 7, "from epoch 7", 3),
        ])  # fmt: skip
        link.schedule_flush()
        await eventually(lambda: a.stats()["group_posts_refused"] == 3, what="three refusals")
        await still_serving(a, m, ra, "an honest line after")
        assert not [e for e in ra.events if isinstance(e, GroupMessageReceived)]
        assert a.group_history("duo") == [] and a.group_history("trio") == []


@pytest.mark.asyncio
async def test_forged_forking_uninvited_and_oversized_records_change_nothing(tmp_path, keys):
    async with cast(tmp_path, keys) as (a, b, m):
        ra = Recorder(a)
        trio = bytes.fromhex((await a.create_group("trio", ["bob", "mallory"])).id)
        await eventually(lambda: len(m.groups_list()) == 1, what="Mallory holds trio")
        glog = m.groups.groups[trio].log
        mid, now = m.identity, 1_800_000_000_000
        forged = glog.add(mid, [entry(gl_identity(keys["eve"]), "eve")], now)  # not an admin
        fork = gl.sign_record(
            mid, gl.Record(gl.CREATE, trio, 0, gl.ZERO_HASH, b"", now, ("trio", (entry(mid, "m"),)))
        )
        uninvited = gl.GroupLog.create(
            mid, os.urandom(16), "ours", [entry(mid, "m"), entry(b.identity, "b")], now
        )
        too_big = gl.GroupLog.create(
            mid, os.urandom(16), "big",
            [entry(mid, "m"), entry(a.identity, "a"), entry(b.identity, "b")]
            + [entry(gl_identity(small_key()), f"x{i}") for i in range(2)],
            now,
        )  # fmt: skip
        link = await mallory_link(m, a)
        link.conn.send_group_records(trio, 1, (gl.encode_record(forged),))
        link.conn.send_group_records(trio, 0, (gl.encode_record(fork),))
        link.conn.send_group_records(uninvited.group_id, 0, tuple(uninvited.encoded))
        link.conn.send_group_records(too_big.group_id, 0, tuple(too_big.encoded))
        link.schedule_flush()
        await eventually(lambda: a.stats()["group_records_refused"] >= 3, what="refusals")
        await still_serving(a, m, ra, "an honest line after")
        assert [g.name for g in a.groups_list()] == ["trio"]  # no group adopted
        assert a.groups.groups[trio].log.epoch == 0  # nothing applied to trio


def gl_identity(key):
    from enclave.protocol.crypto import Identity

    return Identity(key)


@pytest.mark.asyncio
async def test_a_flood_of_heads_for_unknown_groups_is_answered_a_few_times(tmp_path, keys):
    from enclave.node.group_sync import MAX_ASKS

    async with cast(tmp_path, keys) as (a, b, m):
        ra = Recorder(a)
        answers = []
        real = m.groups.sync.on_head
        m.groups.sync.on_head = lambda link, peer, gid, count: (
            answers.append(gid), real(link, peer, gid, count))  # fmt: skip
        link = await mallory_link(m, a)
        for _ in range(10):
            for _ in range(100):
                link.conn.send_group_head(os.urandom(16), 5, os.urandom(32))
            link.schedule_flush()
        await still_serving(a, m, ra, "after the flood")
        await eventually(lambda: len(answers) >= MAX_ASKS, what="Alice's answers")
        await still_serving(a, m, ra, "and once more")
        assert len(answers) == MAX_ASKS
        assert (
            len(a.groups.sync._asked.get(a.sessions.pick(m.identity.fingerprint), ())) <= MAX_ASKS
        )
        assert any(isinstance(e, MessageReceived) for e in ra.events)
