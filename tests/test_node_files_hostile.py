"""A hostile contact's file messages against a real node: each is refused with a
logged reason (and a FILE_CANCEL saying why), and the node keeps serving Alice."""

import asyncio
import os

import pytest
from support.attackers import RawPeer
from support.nodes import Recorder, alice_and_bob, public_pem

from enclave.node.events import FileChanged
from enclave.node.settings import Settings
from enclave.protocol import files
from enclave.protocol.events import FileCancelled, FileRequested
from enclave.protocol.file_messages import CANCEL_REASONS, FileChunk

pytestmark = pytest.mark.asyncio
MiB = 1 << 20


def cancels(p: RawPeer) -> dict:
    return {
        ev.transfer_id: CANCEL_REASONS[ev.reason] for ev in p.events if type(ev) is FileCancelled
    }


def requests(p: RawPeer, tid: bytes) -> list:
    return [ev for ev in p.events if type(ev) is FileRequested and ev.transfer_id == tid]


async def honest_file_arrives(a, b, tmp_path, name: str) -> None:
    src = tmp_path / name
    src.write_bytes(os.urandom(MiB + 7))
    rb = Recorder(b)
    await a.send_file("bob", str(src))
    await rb.until(lambda r: [e for e in r.events if isinstance(e, FileChanged) and e.state == "delivered"],
                   what="alice's file delivered")  # fmt: skip


async def test_a_hostile_contacts_file_messages_are_refused_and_alice_is_served(tmp_path, rsa_keys):
    bob_settings = Settings(file_pending_offers=2)
    async with alice_and_bob(tmp_path, rsa_keys, bob_settings=bob_settings) as (a, b):
        b.add_peer(public_pem(rsa_keys["mallory"]), None, "mallory")
        mallory = RawPeer(rsa_keys["mallory"], b, source="127.0.0.2")
        await mallory.handshake()

        # A piece of a transfer Bob never heard of.
        ghost = os.urandom(16)
        mallory.conn.send_file_chunk(FileChunk(ghost, 0, 0, 0, b"x" * 100))
        mallory._push()
        await mallory.until(lambda p: ghost in cancels(p), 10)
        assert cancels(mallory)[ghost] == "unknown_transfer"

        # A name that is nothing once made safe.
        bad = files.make_offer(os.urandom(16), "../..", b"abc")
        mallory.conn.send_file_offer(bad)
        mallory._push()
        await mallory.until(lambda p: bad.transfer_id in cancels(p), 10)
        assert cancels(mallory)[bad.transfer_id] == "bad_name"

        # Corrupt chunks: asked for again, then the transfer fails as corrupt.
        data = os.urandom(2 * MiB)
        offer = files.make_offer(os.urandom(16), "tool.bin", data)
        mallory.conn.send_file_offer(offer)
        mallory._push()
        for attempt in range(files.MAX_CHUNK_FAILURES):
            await mallory.until(lambda p, n=attempt: len(requests(p, offer.transfer_id)) > n, 10)
            for piece in files.chunk_messages(offer.transfer_id, 0, os.urandom(MiB)):
                mallory.conn.send_file_chunk(piece)
            mallory._push()
        await mallory.until(lambda p: offer.transfer_id in cancels(p), 10)
        assert cancels(mallory)[offer.transfer_id] == "corrupt"
        assert b.stats()["file_chunks_refetched"] == files.MAX_CHUNK_FAILURES
        await asyncio.get_running_loop().run_in_executor(b.files.write_pool, lambda: None)
        assert [p for p in os.listdir(tmp_path / "b" / "downloads") if p.endswith(".part")] == []

        # Offers beyond the quota of open offers (two here; mallory never sends their data).
        big = [files.make_offer(os.urandom(16), f"big{k}.bin", data) for k in range(3)]
        for o in big:
            mallory.conn.send_file_offer(o)
        mallory._push()
        await mallory.until(lambda p: big[2].transfer_id in cancels(p), 10)
        assert cancels(mallory)[big[2].transfer_id] == "too_many_offers"

        # Through it all, Alice's files arrive.
        await honest_file_arrives(a, b, tmp_path, "honest.bin")
        await mallory.close()


async def test_a_flood_of_made_up_transfers_closes_the_session(tmp_path, rsa_keys):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        b.add_peer(public_pem(rsa_keys["mallory"]), None, "mallory")
        mallory = RawPeer(rsa_keys["mallory"], b, source="127.0.0.2")
        await mallory.handshake()
        for _ in range(200):
            mallory.conn.send_file_chunk(FileChunk(os.urandom(16), 0, 0, 0, b"x" * 100))
        mallory._push()
        await mallory.until(lambda p: p.eof.is_set(), 10)
        assert mallory.conn.closed or mallory.eof.is_set()
        await honest_file_arrives(a, b, tmp_path, "still.bin")
        await mallory.close()
