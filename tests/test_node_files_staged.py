"""Staged copies (``<home>/outgoing``, what a face copies before sending) between real
nodes on loopback: a copy goes when its last transfer settles, a broadcast keeps it
until every recipient settled, a restart clears orphans, and a user's own file (or what
a link in ``outgoing`` points to) is never removed."""

import pytest
from support.nodes import Recorder, alice_and_bob, introduce, start
from test_node_files import files, make, settled, sha256

from enclave.node.settings import Settings

pytestmark = pytest.mark.asyncio
ASKS = Settings(file_auto_accept_bytes=0)  # every offer waits for the user


def staged(node, name: str, size: int = 40_000):
    """A copy as the web face makes one: in a fresh folder from ``upload_folder``."""
    return make(node.upload_folder() / name, size)


def outgoing(node) -> list[str]:
    return sorted(str(p.relative_to(node.home)) for p in (node.home / "outgoing").rglob("*"))


async def test_a_delivered_copy_goes_with_its_folder(tmp_path, rsa_keys):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        copy = staged(a, "photo.bin")
        digest = sha256(copy)
        await a.send_file("bob", str(copy))
        await rb.until(settled, what="bob has it")
        await ra.until(settled, what="alice hears it arrived")
        assert settled(ra)[0].state == "delivered"
        assert sha256(settled(rb)[0].path) == digest
        assert outgoing(a) == []  # removed before the settled event was published
        assert (a.home / "outgoing").is_dir()


async def test_a_broadcast_copy_stays_until_every_recipient_settles(tmp_path, rsa_keys):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        c = await start(tmp_path / "c", rsa_keys["carol"], ASKS)
        try:
            introduce(a, c, rsa_keys["alice"], rsa_keys["carol"], names=("alice", "carol"))
            ra, rc = Recorder(a), Recorder(c)
            copy = staged(a, "slides.pdf")
            sent = await a.send_file_to_many(["bob", "carol"], str(copy))
            to_bob = next(f.key for f in sent if f.peer == b.fingerprint)
            await ra.until(lambda r: [e for e in settled(r) if e.key == to_bob], what="bob's")
            assert copy.exists(), "carol's transfer still reads it"
            await rc.until(lambda r: [e for e in files(r) if e.waiting], what="carol asked")
            await c.decline_file()
            await ra.until(lambda r: len(settled(r)) == 2, what="carol's declined")
            assert outgoing(a) == []
        finally:
            await c.stop()


async def test_a_cancelled_copy_goes(tmp_path, rsa_keys):
    async with alice_and_bob(tmp_path, rsa_keys, bob_settings=ASKS) as (a, b):
        copy = staged(a, "draft.txt")
        sent = await a.send_file("bob", str(copy))
        assert copy.exists()
        assert (await a.cancel_file(sent.key)).state == "cancelled"
        assert outgoing(a) == []


async def test_a_refused_send_leaves_no_copy(tmp_path, rsa_keys):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, _):
        a.block_contact("bob")
        with pytest.raises(Exception, match="blocked"):
            await a.send_file("bob", str(staged(a, "x.bin")))
        assert outgoing(a) == []


async def test_a_restart_removes_orphans_and_keeps_what_open_transfers_read(tmp_path, rsa_keys):
    mine = make(tmp_path / "mine.bin", 1000)
    a = await start(tmp_path / "a", rsa_keys["alice"])
    b = await start(tmp_path / "b", rsa_keys["bob"])
    introduce(a, b, rsa_keys["alice"], rsa_keys["bob"])
    await b.stop()  # bob offline: alice's offer stays open across her restart
    try:
        kept = staged(a, "waiting.bin")
        sent = await a.send_file("bob", str(kept))
    finally:
        await a.stop()
    root = tmp_path / "a" / "outgoing"
    (root / "0rphan").mkdir()
    orphan = make(root / "0rphan" / "crash.bin", 10)  # the node died before the record
    (root / "1ink").mkdir()
    (root / "1ink" / "link.bin").symlink_to(mine)
    stray = make(root / "stray.bin", 10)
    a = await start(tmp_path / "a", rsa_keys["alice"])
    try:
        assert a.file(sent.key).state == "offered"
        assert outgoing(a) == [
            f"outgoing/{kept.parent.name}",
            f"outgoing/{kept.parent.name}/waiting.bin",
        ]
        assert not orphan.exists() and not stray.exists()
        assert mine.stat().st_size == 1000  # the link went, not what it named
    finally:
        await a.stop()


async def test_a_users_own_file_is_never_removed(tmp_path, rsa_keys):
    mine = make(tmp_path / "report.pdf", 50_000)
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        ra = Recorder(a)
        link = a.upload_folder() / "report.pdf"  # in outgoing, but the file is the user's
        link.symlink_to(mine)
        await a.send_file("bob", str(mine))
        await a.send_file("bob", str(link))
        await ra.until(lambda r: len(settled(r)) == 2, what="both delivered")
        assert [e.state for e in settled(ra)] == ["delivered", "delivered"]
        assert mine.stat().st_size == 50_000
        assert link.is_symlink()  # in outgoing, but it names the user's file: kept
