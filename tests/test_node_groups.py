"""Group chat through the Node API, with real nodes on 127.0.0.1 (issue 18).

Alice knows Bob and Carol; Bob and Carol are not each other's contacts. They meet
through the group's log: its member entries carry their keys and address hints.
"""

import contextlib

import pytest
from support.nodes import Recorder, public_pem, small_key, start
from support.waiting import eventually

from enclave.errors import UserError
from enclave.node.events import DeliveryChanged, GroupChanged, GroupMessageReceived
from enclave.protocol.messages import GroupPost


def posts(rec: Recorder, group: str | None = None) -> list[GroupMessageReceived]:
    return [
        e
        for e in rec.events
        if isinstance(e, GroupMessageReceived) and (group is None or e.group == group)
    ]


def delivered(rec: Recorder, group: str) -> list[DeliveryChanged]:
    return [
        e
        for e in rec.events
        if isinstance(e, DeliveryChanged) and e.state == "delivered" and e.group == group
    ]


@pytest.fixture(scope="module")
def trio_keys():
    return {n: small_key() for n in ("alice", "bob", "carol")}


@contextlib.asynccontextmanager
async def trio(tmp_path, keys):
    """Alice, Bob and Carol running; Alice has both as contacts, they have only her."""
    nodes = {n: await start(tmp_path / n, keys[n]) for n in keys}
    a, b, c = nodes["alice"], nodes["bob"], nodes["carol"]
    try:
        for other, name in ((b, "bob"), (c, "carol")):
            a.add_peer(public_pem(keys[name]), f"127.0.0.1:{other.address[1]}", name)
            other.add_peer(public_pem(keys["alice"]), f"127.0.0.1:{a.address[1]}", "alice")
        yield nodes
    finally:
        for node in nodes.values():
            await node.stop()


async def listed(node, rec: Recorder, name: str) -> str:
    """Wait until ``node`` lists the group ``name``; its id."""
    await rec.until(
        lambda r: any(g.name == name for g in node.groups_list()), what=f"{name} listed"
    )
    return next(g.id for g in node.groups_list() if g.name == name)


@pytest.mark.asyncio
async def test_a_group_of_non_contacts_talks_and_a_removed_member_hears_nothing_more(
    tmp_path, trio_keys
):
    async with trio(tmp_path, trio_keys) as n:
        a, b, c = n["alice"], n["bob"], n["carol"]
        ra, rb, rc = Recorder(a), Recorder(b), Recorder(c)
        info = await a.create_group("trio", ["bob", "carol"])
        assert [m.name for m in info.members if m.admin] == ["you"]
        gid = await listed(b, rb, "trio")
        assert gid == info.id == await listed(c, rc, "trio")
        seen_by_b = {m.name: m for m in b.group("trio").members}
        assert seen_by_b["alice"].contact and seen_by_b["alice"].admin
        assert not seen_by_b["carol"].contact  # in trio, not a contact of Bob's
        with pytest.raises(UserError, match="not a contact"):
            await b.send(c.fingerprint[:16], "a direct message to a non-contact")

        sent = await b.group_send("trio", "hello from bob")
        assert len(sent.rowids) == 2
        await rc.until(lambda r: [p.body for p in posts(r)] == ["hello from bob"])
        await ra.until(lambda r: [p.body for p in posts(r)] == ["hello from bob"])
        await rb.until(lambda r: len(delivered(r, gid)) == 2, what="delivered to 2 of 2")
        line = b.group_history("trio")[-1]
        assert line.body == "hello from bob" and set(line.states.values()) == {"delivered"}
        assert posts(rc)[0].sender == b.fingerprint

        await a.group_remove("trio", "carol")
        await rc.until(lambda r: c.groups_list()[0].state == "removed", what="carol removed")
        await rb.until(
            lambda r: any(isinstance(e, GroupChanged) and e.kind == "remove" for e in r.events)
        )
        await b.group_send("trio", "after carol left")
        await ra.until(lambda r: len(posts(r)) == 2)
        await rb.until(lambda r: len(delivered(r, gid)) == 3)
        assert b.group_history("trio")[-1].states.keys() == {a.fingerprint}
        with pytest.raises(UserError, match="no longer in trio"):
            await c.group_send("trio", "carol tries")
        assert [p.body for p in posts(rc)] == ["hello from bob"]


@pytest.mark.asyncio
async def test_a_removed_member_that_posts_anyway_is_refused_and_alice_serves_on(
    tmp_path, trio_keys
):
    async with trio(tmp_path, trio_keys) as n:
        a, b, c = n["alice"], n["bob"], n["carol"]
        ra, rb, rc = Recorder(a), Recorder(b), Recorder(c)
        await a.create_group("trio", ["bob", "carol"])
        gid = bytes.fromhex(await listed(c, rc, "trio"))
        await listed(b, rb, "trio")
        await a.group_remove("trio", "carol")
        await rc.until(lambda r: c.groups_list()[0].state == "removed")
        epoch = c.groups.groups[gid].log.epoch
        # Carol's node would refuse; a hostile Carol writes the post on her session.
        link = c.sessions.pick(a.identity.fingerprint)
        post = GroupPost(
            b"\x07" * 16, c.identity.fingerprint, a.identity.fingerprint, 1, gid, epoch, 99, 1,
            "carol after her removal",
        )  # fmt: skip
        link.conn.send_group_posts([post])
        link.schedule_flush()
        await eventually(lambda: a.stats()["group_posts_refused"] == 1, what="the post refused")
        await b.group_send("trio", "bob still heard")
        await ra.until(lambda r: [p.body for p in posts(r)] == ["bob still heard"])
        # Bob shares no group with Carol any more: she is a stranger to him again.
        await eventually(lambda: not b.sessions.online(c.identity.fingerprint), what="no session")
        assert c.identity.fingerprint not in b.sessions.policy.keys


@pytest.mark.asyncio
async def test_a_removed_contact_stays_a_member_and_still_gets_posts(tmp_path, trio_keys):
    async with trio(tmp_path, trio_keys) as n:
        a, b = n["alice"], n["bob"]
        ra, rb = Recorder(a), Recorder(b)
        await a.create_group("trio", ["bob", "carol"])
        await listed(b, rb, "trio")
        b.remove_contact("alice")
        await eventually(
            lambda: not next(m for m in b.group("trio").members if m.admin).contact,
            what="Alice shown as a member, not a contact",
        )
        await b.group_send("trio", "still talking")
        await ra.until(lambda r: [p.body for p in posts(r)] == ["still talking"])
        with pytest.raises(UserError, match="not a contact"):
            await b.send(a.fingerprint[:16], "directly")
