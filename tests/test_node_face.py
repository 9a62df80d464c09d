"""Node methods the faces need: typing hints and message search."""

import pytest
from support.nodes import Recorder, introduce, start

from enclave.errors import UserError
from enclave.node.events import TypingChanged


@pytest.mark.asyncio
async def test_typing_reaches_an_online_peer_and_is_never_queued(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    try:
        introduce(a, b, ka, kb)
        assert a.typing("bob", True) is False  # no session yet: dropped, not queued
        ra, rb = Recorder(a), Recorder(b)
        await a.send("bob", "hi")
        await ra.until(lambda r: r.states("delivered"))
        assert a.typing("bob", True) is True
        await rb.until(lambda r: any(isinstance(e, TypingChanged) for e in r.events))
        typing = [e for e in rb.events if isinstance(e, TypingChanged)]
        assert typing == [TypingChanged(a.fingerprint, True)]
        assert a.stats()["queued"] == 0
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_search_finds_text_in_any_chat(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    try:
        introduce(a, b, ka, kb)
        await a.send("bob", "the Blue door")
        await a.send("bob", "a red door")
        assert [m.body for m in a.search("blue")] == ["the Blue door"]
        assert [m.body for m in a.search(" door ")] == ["the Blue door", "a red door"]
        assert a.search("100%") == []
        with pytest.raises(UserError, match="nothing to search"):
            a.search("  ")
    finally:
        await a.stop()
        await b.stop()
