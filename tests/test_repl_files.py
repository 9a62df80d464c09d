"""The REPL's /file, /broadcast --file, /accept, /decline, /cancel, /files and the lines
file events print, driven through prompt-toolkit over real nodes on loopback."""

import hashlib
import os

import pytest
import pytest_asyncio
import test_repl
from prompt_toolkit.document import Document
from support.nodes import Recorder, introduce, start
from test_repl import repl

from enclave.faces.repl import PeerCompleter
from enclave.faces.repl_commands import HELP, Commands
from enclave.faces.repl_files import FileLines
from enclave.node.display import message_ref
from enclave.node.events import FileChanged, PeerOnline
from enclave.node.settings import Settings

pair = test_repl.pair  # the fixtures, used by name
alone = test_repl.alone
ASKS = Settings(file_auto_accept_bytes=0)  # every file waits for Bob's yes


@pytest_asyncio.fixture
async def asking(rsa_keys, tmp_path):
    """Alice and Bob online; Bob takes no file without being asked."""
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb, ASKS)
    seen = Recorder(a)
    introduce(a, b, ka, kb)
    await seen.until(lambda r: any(isinstance(e, PeerOnline) for e in r.events))
    yield a, b
    await a.stop()
    await b.stop()


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def make(path, size: int = 300_000):
    path.write_bytes(os.urandom(size))
    return path


def files(rec: Recorder, *states: str) -> list[FileChanged]:
    return [e for e in rec.events if isinstance(e, FileChanged) and e.state in states]


@pytest.mark.asyncio
async def test_file_delivers_to_bob(pair, tmp_path):
    a, b = pair
    rb = Recorder(b)
    src = make(tmp_path / "my photo.bin", 4 << 20)  # a space: PATH is the rest of the line
    async with repl(a, tmp_path) as r:
        out = await r.run(f"/file bob {src}", "you -> bob: file my photo.bin")
        ref = out.split("(")[-1].rstrip(")")
        assert ref.startswith("#")
        await r.screen.shows(f"{ref} my photo.bin to bob: delivered")
        progress = [line for line in r.screen.text.splitlines() if "% (" in line]
        assert len(progress) <= 9  # at most one line per 10 %, not one per event
    await rb.until(lambda rec: files(rec, "delivered"), what="bob has it")
    landed = files(rb, "delivered")[0].path
    assert os.path.dirname(landed) == str(tmp_path / "b" / "downloads")
    assert sha256(landed) == sha256(src)


@pytest.mark.asyncio
async def test_broadcast_file_offers_it_to_every_contact(pair, tmp_path):
    a, b = pair
    rb = Recorder(b)
    src = make(tmp_path / "notes.bin")
    async with repl(a, tmp_path) as r:
        await r.run(f"/broadcast --file {src}", "Offering notes.bin to 1 contact(s): bob")
        await r.screen.shows("notes.bin to bob: delivered")
        await r.run("/broadcast --file", "error: usage: /broadcast --file PATH")
    await rb.until(lambda rec: files(rec, "delivered"), what="bob has it")
    assert sha256(files(rb, "delivered")[0].path) == sha256(src)


@pytest.mark.asyncio
async def test_a_waiting_offer_shows_the_hint_and_accept_takes_it(asking, tmp_path):
    a, b = asking
    src = make(tmp_path / "report.bin")
    async with repl(b, tmp_path) as r:
        await r.run("/fingerprint", "Your fingerprint")  # the REPL is listening
        sent = await a.send_file("bob", str(src))
        ref = message_ref(sent.id)
        await r.screen.shows(f"alice offers you report.bin (293.0 KiB)  ({ref})")
        await r.screen.shows(f"— /accept {ref} or /decline {ref}")
        await r.run("/files", "waiting for /accept")
        out = await r.run(f"/accept {ref}", "delivered, saved to ")
        assert "error" not in out
    landed = b.files_of(None, open_only=False)[0].path
    assert sha256(landed) == sha256(src)


@pytest.mark.asyncio
async def test_decline_refuses_the_waiting_file(asking, tmp_path):
    a, b = asking
    ra = Recorder(a)
    src = make(tmp_path / "unwanted.bin")
    async with repl(b, tmp_path) as r:
        await r.run("/fingerprint", "Your fingerprint")
        await a.send_file("bob", str(src))
        await r.screen.shows("/decline #")
        await r.run("/decline", "unwanted.bin from alice: cancelled")
        await r.run("/accept", "error: no file waits for an answer")
    await ra.until(lambda rec: files(rec, "cancelled"), what="alice hears no")
    downloads = tmp_path / "b" / "downloads"
    assert not downloads.exists() or os.listdir(downloads) == []


@pytest.mark.asyncio
async def test_files_lists_and_cancel_stops_an_offer(asking, tmp_path):
    a, b = asking
    rb = Recorder(b)
    src = make(tmp_path / "big.bin")
    async with repl(a, tmp_path) as r:
        await r.run("/files", "No open file transfers")
        out = await r.run(f"/file bob {src}", "you -> bob: file big.bin")
        ref = out.split("(")[-1].rstrip(")")
        listing = await r.run("/files", ref)
        row = [line for line in listing.splitlines() if ref in line][0]
        assert row.split()[:4] == [ref, "->", "bob", "big.bin"] and row.endswith("offered  0%")
        assert listing.splitlines()[0].split() == ["REF", "PEER", "NAME", "SIZE", "STATE", "DONE"]
        await r.run(f"/cancel {ref}", f"{ref} big.bin to bob: cancelled")
        await r.run("/files", "No open file transfers")
    await rb.until(lambda rec: files(rec, "cancelled"), what="bob hears the offer is withdrawn")
    assert a.files_of(None, open_only=False)[0].state == "cancelled"


@pytest.mark.asyncio
async def test_bad_file_input_is_one_line_each(pair, tmp_path):
    a, _ = pair
    folder = tmp_path / "folder"
    folder.mkdir()
    src = make(tmp_path / "x.bin", 10)
    async with repl(a, tmp_path) as r:
        for line, expect in [
            (f"/file nobody {src}", "error: no peer matches 'nobody'"),
            ("/file bob", "error: usage: /file PEER PATH"),
            ("/file", "error: usage: /file PEER PATH"),
            (f"/file bob {folder}", "is a folder"),
            (f"/file bob {tmp_path / 'missing.bin'}", "no such file"),
            ("/cancel", "error: usage: /cancel REF"),
            ("/cancel #zzzz", "error: no open file transfer #ZZZZ"),
            ("/accept", "error: no file waits for an answer"),
            ("/decline a b", "error: usage: /decline [REF]"),
        ]:
            out = await r.run(line, expect)
            assert out.startswith("error: ") and "\n" not in out, (line, out)
        await r.run("/help", "/file PEER PATH")
    assert "Traceback" not in r.screen.text


def _complete(node, text: str) -> list[str]:
    return [c.text for c in PeerCompleter(node).get_completions(Document(text), None)]


@pytest.mark.asyncio
async def test_path_completion_after_the_peer(pair, tmp_path):
    a, _ = pair
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("notes.md", "a photo.jpg", "other.txt"):
        (folder / name).write_text("x")
    assert _complete(a, "/file bo") == ["bob "]  # the peer still completes
    assert sorted(_complete(a, f"/file bob {folder}/")) == ["a photo.jpg", "notes.md", "other.txt"]
    assert _complete(a, f"/file bob {folder}/no") == ["tes.md"]
    assert _complete(a, f"/broadcast --file {folder}/a ph") == ["oto.jpg"]
    assert "/files " in _complete(a, "/fi") and "/accept " in _complete(a, "/ac")


def _event(state: str, done: int, key: int = 7, **more) -> FileChanged:
    return FileChanged(
        peer="ab" * 32,
        key=key,
        rowid=1,
        id=bytes(16),
        direction="in",
        name="movie.bin",
        size=1000,
        state=state,
        done_bytes=done,
        **more,
    )


@pytest.mark.asyncio
async def test_progress_prints_at_most_every_ten_percent(alone):
    lines = FileLines(Commands(alone, lambda text: None))
    shown = [
        lines.render(_event(state, done), "12:00")
        for state, done in [("accepted", 0)] + [("transferring", d) for d in range(0, 1000, 7)]
    ]
    progress = [s for s in shown[1:] if s]
    assert [p.split(": ")[1].split("%")[0] for p in progress] == [
        str(n) for n in range(10, 100, 10)
    ]
    assert lines.render(_event("delivered", 1000, path="/d/movie.bin"), "12:00").endswith(
        "delivered, saved to /d/movie.bin"
    )
    assert lines.render(_event("delivered", 1000, path="/d/movie.bin"), "12:00") is None
    failed = lines.render(_event("failed", 10, key=8, reason="digest\nmismatch"), "12:00")
    assert failed.endswith("failed (digest mismatch)")


def test_help_names_the_file_commands():
    for command in ("/file PEER PATH", "/broadcast --file PATH", "/files", "/accept [REF]",
                    "/decline [REF]", "/cancel REF"):  # fmt: skip
        assert command in HELP
