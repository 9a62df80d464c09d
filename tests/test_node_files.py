"""File transfer between real nodes on loopback: offers, pulls, checks, resumption."""

import hashlib
import os

import pytest
from support.nodes import Recorder, alice_and_bob

from enclave.node.events import FileChanged

pytestmark = pytest.mark.asyncio


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def files(rec: Recorder, *states: str) -> list[FileChanged]:
    return [
        e for e in rec.events if isinstance(e, FileChanged) and (not states or e.state in states)
    ]


async def test_a_file_arrives_whole_under_its_own_name(tmp_path, rsa_keys):
    src = tmp_path / "photo.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 123))
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        sent = await a.send_file("bob", str(src))
        assert sent.state == "offered" and sent.size == src.stat().st_size
        await rb.until(lambda r: files(r, "delivered", "failed"), what="bob's file settled")
        got = files(rb, "delivered", "failed")
        assert got[0].state == "delivered", got
        await ra.until(lambda r: files(r, "delivered", "failed"), what="alice's file settled")
        assert files(ra, "delivered", "failed")[0].state == "delivered"
        landed = got[0].path
        assert os.path.basename(landed) == "photo.bin"
        assert sha256(landed) == sha256(src)
        assert not os.path.exists(landed + ".part")
