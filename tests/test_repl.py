"""The REPL driven through prompt-toolkit pipe input, over real nodes on loopback.

Every command, every error line and the ambiguous prefix case. The screen is what
``Repl`` writes; tests wait on it (never on sleeps).
"""

import asyncio
import contextlib
import os
import re
import socket
import stat
import time
from dataclasses import replace

import pytest
import pytest_asyncio
from prompt_toolkit.application import create_app_session
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from support.attackers import RawPeer
from support.keyfactory import private_pem, small_rsa
from support.nodes import Recorder, introduce, public_pem, start
from support.waiting import Watched, eventually

from enclave.faces.repl import PeerCompleter, Repl, redact
from enclave.identity import keys, safety
from enclave.node.display import message_ref
from enclave.node.events import PeerOnline
from enclave.protocol.events import Acked
from enclave.protocol.messages import MAX_BODY_CHARS, Chat
from enclave.store import Message


class Screen(Watched):
    """What the REPL printed; ``shows`` waits for some text to appear."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[str] = []

    def write(self, text: str) -> None:
        self.blocks.append(text)
        self.changed()

    @property
    def text(self) -> str:
        return "\n".join(self.blocks)

    def describe(self) -> str:
        return f"; screen:\n{self.text}"

    async def shows(self, fragment: str, count: int = 1, timeout: float = 20.0) -> str:
        """The whole screen, once ``fragment`` is on it ``count`` times."""
        await self.until(lambda s: s.text.count(fragment) >= count, timeout, repr(fragment))
        return self.text

    def mark(self) -> int:
        return len(self.blocks)

    def since(self, mark: int) -> str:
        return "\n".join(self.blocks[mark:])


class Driver:
    def __init__(self, pipe, screen: Screen, task: asyncio.Task) -> None:
        self.pipe, self.screen, self.task = pipe, screen, task

    async def run(self, line: str, expect: str) -> str:
        """Type ``line`` + Enter; return what was printed up to and including ``expect``."""
        mark = self.screen.mark()
        self.pipe.send_text(line + "\r")
        await self.screen.shows(expect, count=self.screen.text.count(expect) + 1)
        return self.screen.since(mark)


@contextlib.asynccontextmanager
async def repl(node, tmp_path):
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        screen = Screen()
        loop = Repl(node, history_path=tmp_path / "repl_history", write=screen.write)
        task = asyncio.create_task(loop.run())
        driver = Driver(pipe, screen, task)
        try:
            yield driver
        finally:
            if not task.done():
                pipe.send_bytes(b"\x04")
                await asyncio.wait_for(task, 10)


@pytest_asyncio.fixture
async def pair(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    seen = Recorder(a)
    introduce(a, b, ka, kb)
    # Presence: the two nodes open a session as soon as they know each other; the tests
    # start from there (no "bob is online" line arriving in the middle of one).
    await seen.until(lambda r: any(isinstance(e, PeerOnline) for e in r.events))
    yield a, b
    await a.stop()
    await b.stop()


@pytest_asyncio.fixture
async def alone(rsa_keys, tmp_path):
    a = await start(tmp_path / "a", rsa_keys["alice"])
    yield a
    await a.stop()


def _queued_rows(node) -> int:
    return node.stats()["queued"]


# --- sending, receiving, quitting -------------------------------------------------------


@pytest.mark.asyncio
async def test_send_shows_queued_then_delivered_and_incoming_messages(pair, tmp_path):
    a, b = pair
    rb = Recorder(b)
    async with repl(a, tmp_path) as r:
        await r.run("/send bob hello  bob", "you -> bob: hello  bob")
        screen = await r.screen.shows("to bob: delivered")
        # The echo of what was sent comes first, then its states, by its reference.
        echo = screen.index("you -> bob: hello  bob")
        ref = screen[echo:].split("(", 1)[1].split(")", 1)[0]
        assert re.fullmatch("#[0-9a-z]{4}", ref)
        assert echo < screen.index(f"{ref} to bob: sent") < screen.index(f"{ref} to bob: delivered")
        await rb.until(lambda rec: [m.body for m in rec.received()] == ["hello  bob"])
        await b.send("alice", "hi alice")
        await r.screen.shows("bob: hi alice")
        out = await r.run("/peers", "UNREAD")
        bob_row = next(line for line in out.splitlines() if line.startswith("bob"))
        # Bob's conversation is open (the last /send): what it shows is read.
        assert "online" in bob_row and bob_row.rstrip().endswith(" 0")
        await r.run("/unread", "No unread messages")
        r.pipe.send_text("/quit\r")
        await asyncio.wait_for(r.task, 10)


@pytest.mark.asyncio
async def test_send_by_fingerprint_prefix(pair, tmp_path):
    a, b = pair
    async with repl(a, tmp_path) as r:
        await r.run(f"/send {b.fingerprint[:8].upper()} by prefix", "you -> bob: by prefix")
        await r.screen.shows("to bob: delivered")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("/send nobody hi", "error: no peer matches 'nobody' (use a name or at least 8 hex"),
        ("/send abc hi", "error: no peer matches 'abc'"),
        ("/send", "error: usage: /send PEER MESSAGE"),
        ("/send bob", "error: the message is empty"),
        ("/send bob    ", "error: the message is empty"),
        (
            "/send bob " + "x" * 10_001,
            "error: the message has 10,001 characters; the limit is 10,000",
        ),
        ("/broadcast", "error: the message is empty"),
        ("/broadcast " + "y" * 10_001, "the limit is 10,000"),
    ],
)
async def test_send_errors_are_one_line_and_queue_nothing(pair, tmp_path, line, error):
    a, _ = pair
    async with repl(a, tmp_path) as r:
        out = await r.run(line, "error:")
        assert error in out and len(out.splitlines()) == 1
    assert _queued_rows(a) == 0 and a.history("bob") == []


@pytest.mark.asyncio
async def test_ambiguous_prefix_lists_candidates_and_sends_nothing(alone, rsa_keys, tmp_path):
    a = alone
    pems = [public_pem(rsa_keys["carol"]), public_pem(rsa_keys["mallory"])]
    fakes = ["abcdef01" + "0" * 56, "abcdef01" + "1" * 56]
    for fp, pem, name in zip(fakes, pems, ("carol", "dave"), strict=True):
        a.store.upsert_peer(fp, pem, "127.0.0.1:9", name, 0.0)
    async with repl(a, tmp_path) as r:
        out = await r.run("/send abcdef01 which one?", "error:")
        assert "'abcdef01' matches 2 peers" in out
        assert "carol abcd ef01 0000 0000" in out and "dave abcd ef01 1111 1111" in out
        assert "type more of the fingerprint" in out
        await r.run("/history abcdef01", "matches 2 peers")
        await r.run("/verify abcdef01", "matches 2 peers")
        await r.run("/send abcdef011 just dave", "you -> dave: just dave")
    assert a.history("carol") == []


# --- broadcast --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_broadcast_to_two_peers_reports_two_of_two(rsa_keys, tmp_path):
    ka, kb, kc = rsa_keys["alice"], rsa_keys["bob"], rsa_keys["carol"]
    a, b, c = [await start(tmp_path / n, k) for n, k in (("a", ka), ("b", kb), ("c", kc))]
    try:
        introduce(a, b, ka, kb)
        introduce(a, c, ka, kc, names=("alice", "carol"))
        rb, rc = Recorder(b), Recorder(c)
        async with repl(a, tmp_path) as r:
            out = await r.run("/broadcast Team meeting in 5 minutes!", "Broadcast complete")
            begun = out.index("you -> 2 peer(s): Team meeting in 5 minutes!  (broadcast)")
            assert out.index("Broadcast complete: 2/2 sent successfully") > begun
            # One line for every copy: no echo or state line per recipient.
            await r.screen.shows("broadcast delivered to 2 of 2")
            assert "you -> bob" not in r.screen.text and "to bob: sent" not in r.screen.text
        for rec in (rb, rc):
            await rec.until(
                lambda x: [m.body for m in x.received()] == ["Team meeting in 5 minutes!"]
            )
    finally:
        for node in (a, b, c):
            await node.stop()


@pytest.mark.asyncio
async def test_broadcast_with_no_peers(alone, tmp_path):
    async with repl(alone, tmp_path) as r:
        await r.run("/broadcast anyone?", "No peers to broadcast to; add one with /add")


# --- peers and adding them --------------------------------------------------------------


@pytest.mark.asyncio
async def test_peers_table_and_empty_list(alone, rsa_keys, tmp_path):
    a = alone
    async with repl(a, tmp_path) as r:
        await r.run("/peers", "No peers yet. Add one with /add")
        a.add_peer(public_pem(rsa_keys["bob"]), "127.0.0.1:9", "bob")
        a.set_protocol("bob", "v1")
        out = await r.run("/peers", "UNREAD")
        header, row = out.splitlines()
        assert header.split() == [
            "NAME",
            "FINGERPRINT",
            "ADDRESS",
            "STATUS",
            "VERIFIED",
            "PROTOCOL",
            "UNREAD",
        ]
        bob_fp = keys.fingerprint(rsa_keys["bob"].public_key())
        assert row.split() == [
            "bob",
            *keys.group(bob_fp, 4).split(),
            "127.0.0.1:9",
            "offline",
            "no",
            "v1",
            "(legacy)",
            "0",
        ]


@pytest.fixture
def key_files(tmp_path, rsa_keys):
    folder = tmp_path / "keys"
    folder.mkdir()
    files = {
        "bob": public_pem(rsa_keys["bob"]).encode(),
        "alice": public_pem(rsa_keys["alice"]).encode(),
        "private": private_pem(small_rsa(2048)),
        "garbage": b"not a key\n",
        "weak": public_pem(small_rsa(2048)).encode(),
    }
    for name, data in files.items():
        (folder / f"{name}.pem").write_bytes(data)
    return {name: str(folder / f"{name}.pem") for name in [*files, "missing"]}


@pytest.mark.asyncio
async def test_add_interactively_with_questions(alone, key_files, tmp_path):
    a = alone
    async with repl(a, tmp_path) as r:
        mark = r.screen.mark()
        r.pipe.send_text("/add\r")
        r.pipe.send_text(key_files["bob"] + "\r")
        r.pipe.send_text("127.0.0.1:9\r")
        r.pipe.send_text("bob\r")
        await r.screen.shows("Added peer bob at 127.0.0.1:9")
        assert "Fingerprint: " in r.screen.since(mark)
        assert [p.peer.name for p in a.peers()] == ["bob"]
        out = await r.run(f"/add {key_files['bob']} 127.0.0.1:10", "Updated peer bob")
        assert "127.0.0.1:10" in out
        out = await r.run(f"/add {key_files['weak']} 127.0.0.1:11 weakling", "Added peer")
        assert "is a 2048-bit key; 3072 or more is recommended" in out


@pytest.mark.asyncio
async def test_add_cancelled_with_ctrl_c(alone, tmp_path):
    async with repl(alone, tmp_path) as r:
        r.pipe.send_text("/add\r")
        r.pipe.send_bytes(b"\x03")
        await r.screen.shows("/add cancelled")
        await r.run("/fingerprint", "Your fingerprint")  # still running
    assert alone.peers() == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("args", "error"),
    [
        ("{missing} 127.0.0.1:9", "missing.pem"),
        ("{private} 127.0.0.1:9", "private.pem is a private key; never share or copy it"),
        ("{garbage} 127.0.0.1:9", "is not a PEM public key"),
        ("{alice} 127.0.0.1:9", "is your own public key"),
        ("{bob} nowhere", "invalid peer address 'nowhere'"),
        ("{bob}", "usage: /add FILE ADDRESS [NAME]"),
        ("{bob} 127.0.0.1:9 'bidi\u202ename'", "invalid peer name"),
        ("{bob} 127.0.0.1:9 deadbeef00", "looks like a fingerprint prefix"),
        ("a b c d", "usage: /add"),
        ("'unclosed", "cannot read the arguments"),
    ],
)
async def test_add_errors(alone, key_files, tmp_path, args, error):
    async with repl(alone, tmp_path) as r:
        out = await r.run("/add " + args.format(**key_files), "error:")
        assert error in out and len(out.splitlines()) == 1
    assert alone.peers() == []


# --- history, fingerprint, verify --------------------------------------------------------


@pytest.mark.asyncio
async def test_history_and_its_errors(pair, tmp_path):
    a, b = pair
    ra, rb = Recorder(a), Recorder(b)
    async with repl(a, tmp_path) as r:
        await r.run("/history bob", "No messages with bob yet")
        for k in range(3):
            await r.run(f"/send bob m{k}", f"you -> bob: m{k}")
        await rb.until(lambda rec: len(rec.received()) == 3)
        # Bob shows them before storing them: their "delivered" lines come after, and
        # must be on the screen before /history, whose lines alone are counted below.
        await ra.until(lambda rec: len(rec.states("delivered")) == 3)
        await r.screen.shows("to bob: delivered", count=3)
        await b.send("alice", "reply")
        await r.screen.shows("bob: reply")
        out = await r.run("/history bob 2", "bob: reply")
        lines = out.splitlines()
        assert len(lines) == 2 and "you -> bob: m2" in lines[0] and "bob: reply" in lines[1]
        out = await r.run("/peers", "UNREAD")
        assert out.splitlines()[1].rstrip().endswith(" 0")  # /history read them
        await r.run("/history", "error: usage: /history PEER [N]")
        await r.run("/history bob zero", "error: N must be a whole number from 1 to 1000")
        await r.run("/history bob 1001", "error: N must be a whole number")
        await r.run("/history nobody", "error: no peer matches 'nobody'")


@pytest.mark.asyncio
async def test_fingerprint_is_grouped(alone, tmp_path):
    async with repl(alone, tmp_path) as r:
        out = await r.run("/fingerprint", "Your fingerprint")
        assert out == f"Your fingerprint: {keys.group(alone.fingerprint)}"


@pytest.mark.asyncio
async def test_verify_marks_verified_only_after_yes(pair, tmp_path):
    a, b = pair
    async with repl(a, tmp_path) as r:
        r.pipe.send_text("/verify bob\r")
        r.pipe.send_text("n\r")
        out = await r.screen.shows("bob is not marked verified")
        mine, theirs = keys.group(a.fingerprint), keys.group(b.fingerprint)
        lines = out.splitlines()
        [row_a] = [line for line in lines if mine in line]
        [row_b] = [line for line in lines if theirs in line]
        assert row_a.index(mine) == row_b.index(theirs)  # the columns line up
        number = safety.safety_number(b.fingerprint, a.fingerprint)  # as Bob computes it
        for line in safety.grouped(number):
            assert f"  {line}" in lines
        assert any("█" in line for line in lines)  # its QR code
        assert not a.resolve("bob").verified
        r.pipe.send_text("/verify bob\r")
        r.pipe.send_text("yes\r")
        await r.screen.shows("bob is now marked verified")
        assert a.resolve("bob").verified
        await r.run("/verify bob", "bob is already marked verified")
        await r.run("/verify", "error: usage: /verify PEER")
        await r.run("/verify nobody", "error: no peer matches")


# --- retry, stats, help, keys ------------------------------------------------------------


@pytest.mark.asyncio
async def test_retry_sends_failed_messages_again(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    try:
        introduce(a, b, ka, kb)
        # A message that failed earlier (as a legacy send gives up after 5 minutes).
        mid = os.urandom(16)
        rowid = a.store.enqueue_outgoing([(b.fingerprint, mid, "again", 1)])[0]
        a.store.mark_failed([rowid], "peer unreachable")
        ref = message_ref(mid)
        rb = Recorder(b)
        async with repl(a, tmp_path) as r:
            out = await r.run("/history bob", "failed")
            assert f"({ref} failed, peer unreachable)" in out
            await r.run("/retry", "Retrying 1 message(s)")
            await r.screen.shows(f"{ref} to bob: delivered")
            await rb.until(lambda rec: [m.body for m in rec.received()] == ["again"])
            await r.run("/retry", "No failed messages to retry")
            await r.run("/retry bob", "No failed messages to retry")
            await r.run("/retry nobody", "error: no peer matches")
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_stats_help_and_unknown_input(alone, tmp_path):
    async with repl(alone, tmp_path) as r:
        out = await r.run("/stats", "uptime")
        assert out.startswith("Node statistics:") and "queued: 0" in out
        assert "msg/s in" in out and "B/s out" in out and "sessions: 0" in out
        out = await r.run("/help", "/quit")
        for command in ("/send", "/broadcast", "/peers", "/add", "/history", "/verify", "/retry"):
            assert command in out
        await r.run("/frobnicate", "error: unknown command '/frobnicate'; type /help")
        await r.run("hello there", "To send, type /send PEER MESSAGE")


@pytest.mark.asyncio
async def test_ctrl_c_clears_the_line_and_ctrl_d_quits(alone, tmp_path):
    async with repl(alone, tmp_path) as r:
        r.pipe.send_text("/broadcast half typed")
        r.pipe.send_bytes(b"\x03")
        await r.run("/fingerprint", "Your fingerprint")
        assert "broadcast" not in r.screen.text and "No peers" not in r.screen.text
        r.pipe.send_bytes(b"\x04")
        await asyncio.wait_for(r.task, 10)


@pytest.mark.asyncio
async def test_no_input_crashes_the_repl(alone, tmp_path, monkeypatch):
    async with repl(alone, tmp_path) as r:
        for line in ("/", "//", "/send \x1b[31m red", "/\x00", "/peers extra words", "\u202e/send"):
            r.pipe.send_text(line + "\r")
        r.pipe.send_text("/" + "z" * (MAX_BODY_CHARS + 2_000) + "\r")  # longer than any message
        await r.run("/fingerprint", "Your fingerprint")
        monkeypatch.setattr(alone, "stats", lambda: 1 / 0)
        out = await r.run("/stats", "error:")
        assert out == (
            "error: /stats failed unexpectedly (ZeroDivisionError: division by zero); "
            "the chat keeps running"
        )
        await r.run("/fingerprint", "Your fingerprint")
        assert not r.task.done()
    assert "Traceback" not in r.screen.text


@pytest.mark.asyncio
async def test_peer_text_cannot_drive_the_terminal(pair, tmp_path):
    a, b = pair
    async with repl(a, tmp_path) as r:
        await b.send("alice", "evil\x1b]0;title\x07\x1b[2J\u202etxt\nsecond line")
        out = await r.screen.shows("second line")
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
        shown = "bob: evil⟨U+001B⟩]0;title⟨U+0007⟩⟨U+001B⟩[2J⟨U+202E⟩txt\n    second line"
        assert shown in out


# A contact that turned hostile sends wire-valid extremes (issue 14, item 2): creation
# times the codec accepts but no clock gave, and text full of bidi overrides, isolates,
# zero-width characters and separators.
HOSTILE_TIMES = {
    "from the end of time": 2**64 - 1,
    "just past what SQLite holds": 2**63,
    "from 1970": 0,
    "an hour ahead": None,  # now + 1 h: set when sent
}
BIDI = "abc\u202egnp.exe \u2066x\u2069 zero\u200bwidth \ufeff\u061c\u2028end \u200e\u202a"
BIDI_SHOWN = (
    "abc⟨U+202E⟩gnp.exe ⟨U+2066⟩x⟨U+2069⟩ zero⟨U+200B⟩width ⟨U+FEFF⟩⟨U+061C⟩⟨U+2028⟩end"
    " ⟨U+200E⟩⟨U+202A⟩"
)


def hostile_chats(raw, node) -> list:
    now = int(time.time() * 1000)
    times = {body: now + 3_600_000 if t is None else t for body, t in HOSTILE_TIMES.items()}
    bodies = [("plain hello", now), *times.items(), (BIDI, now), ("last word", now)]
    me, to = raw.fingerprint, node.identity.fingerprint
    return [Chat(os.urandom(16), me, to, t, body) for body, t in bodies]


async def send_and_wait_acked(raw, chats) -> None:
    raw.send_chats(chats)
    upto = len(chats) - 1  # a new session: its chats are 0..upto
    await raw.until(lambda p: any(type(e) is Acked and e.upto >= upto for e in p.events), 20)


@pytest.mark.asyncio
async def test_a_hostile_contacts_times_and_text_never_hide_a_message(pair, rsa_keys, tmp_path):
    """Mallory, a contact, sends creation times of 2**64 - 1, 2**63, 0 and an hour ahead,
    and a body of bidi and zero-width characters. Every message shows, live and in
    /history: the odd times as "unknown time" with the receive time, the characters as
    ⟨U+XXXX⟩, none of them raw. A resend of the batch on a new session shows nothing
    twice, and Bob, an honest peer, still gets through."""
    a, b = pair
    a.add_peer(public_pem(rsa_keys["mallory"]), "127.0.0.1:9", "mallory")
    chats = None
    async with repl(a, tmp_path) as r:
        mallory = RawPeer(rsa_keys["mallory"], a, source="127.0.0.2")
        try:
            await mallory.handshake()
            chats = hostile_chats(mallory, a)
            await send_and_wait_acked(mallory, chats)
            live = await r.screen.shows("mallory: last word")
        finally:
            await mallory.close()
        assert re.search(r"^\[\d\d:\d\d\] mallory: plain hello$", live, re.M)
        for body in HOSTILE_TIMES:
            unknown = rf"^\[unknown time, received \d\d:\d\d\] mallory: {body}$"
            assert re.search(unknown, live, re.M), body
        assert f"mallory: {BIDI_SHOWN}" in live
        assert not any(ch in live for ch in "\u202e\u2066\u200b\ufeff\u2028\u200e\u202a")

        history = await r.run("/history mallory", "mallory: last word")
        lines = [line for line in history.splitlines() if "mallory:" in line]  # not presence
        assert len(lines) == len(chats), history
        day = r"\d{4}-\d\d-\d\d \d\d:\d\d"
        ref = r"  \(#[0-9a-z]{4}\)"  # what /delete takes
        assert re.fullmatch(rf"\[{day}\] mallory: plain hello{ref}", lines[0])
        for line, body in zip(lines[1:], HOSTILE_TIMES, strict=False):
            assert re.fullmatch(rf"\[unknown time, received {day}\] mallory: {body}{ref}", line)
        assert re.search(rf"mallory: {re.escape(BIDI_SHOWN)}{ref}$", lines[-2])

        mark = r.screen.mark()
        again = RawPeer(rsa_keys["mallory"], a, source="127.0.0.2")
        try:
            await again.handshake()
            await send_and_wait_acked(again, chats)  # the same IDs and times: a resend
        finally:
            await again.close()
        await b.send("alice", "bob still gets through")
        await r.screen.shows("bob: bob still gets through")
        assert "mallory:" not in r.screen.since(mark)
        history = await r.run("/history mallory", "mallory: last word")
        assert history.count("mallory:") == len(chats)
    assert "Traceback" not in r.screen.text and "could not" not in r.screen.text


def test_one_history_row_that_cannot_be_shown_leaves_the_others():
    """Per-row containment: a row no store writes today (its body is bytes, as a future
    or damaged store might give) is one line saying so; its neighbours still print."""
    from enclave.faces.repl_commands import _history_lines

    now = int(time.time() * 1000)
    good = Message(1, "ab" * 32, "in", b"i" * 16, "first", now, now, "received", None, None, False)
    rows = [good, replace(good, rowid=2, body=b"\xff"), replace(good, rowid=3, body="third")]
    lines = list(_history_lines(rows, "mallory"))
    assert "mallory: first  (#" in lines[0] and "mallory: third  (#" in lines[2]
    assert lines[1] == "[?] message #2 could not be shown (TypeError)"


# --- completion and history --------------------------------------------------------------


def _complete(node, text: str) -> list[str]:
    return [c.text for c in PeerCompleter(node).get_completions(Document(text), None)]


@pytest.mark.asyncio
async def test_tab_completion_of_commands_and_peers(pair):
    a, b = pair
    assert _complete(a, "/b") == ["/broadcast ", "/block "]
    assert _complete(a, "/br") == ["/broadcast "]
    assert "/history " in _complete(a, "/h") and "/help " in _complete(a, "/h")
    assert _complete(a, "/send bo") == ["bob "]  # "bo" is no hex prefix: only the name
    assert _complete(a, f"/verify {b.fingerprint[:3]}") == [b.fingerprint[:16] + " "]
    assert _complete(a, "/send bob hel") == []
    assert _complete(a, "/peers x") == []


@pytest.mark.asyncio
async def test_input_history_is_private_and_keeps_no_message_text(pair, tmp_path):
    a, _ = pair
    async with repl(a, tmp_path) as r:
        await r.run("/send bob the secret plan", "you -> bob: the secret plan")
        await r.run("/broadcast another secret", "Broadcast complete")
        await r.run("/peers", "UNREAD")
    path = tmp_path / "repl_history"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = path.read_text()
    assert "secret" not in saved
    assert "+/send bob \n" in saved and "+/broadcast \n" in saved and "+/peers\n" in saved


def test_redact():
    assert redact("/send bob hi there") == "/send bob "
    assert redact("/send bob") == "/send bob"
    assert redact("/broadcast x") == "/broadcast "
    assert redact("/history bob 5") == "/history bob 5"


# --- the control socket (what ``enclave send`` talks to) -----------------------------------


async def _ask_control(path, payload: bytes) -> list[dict]:
    import json

    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(payload)
    await writer.drain()
    answers = [json.loads(line) async for line in reader]
    writer.close()
    return answers


@pytest.mark.asyncio
async def test_control_socket_sends_and_reports_delivery(pair, tmp_path):
    from enclave.faces.runner import start_control

    a, b = pair
    path = tmp_path / "c.sock"
    server = await start_control(a, path)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        answers = await _ask_control(path, b'{"op": "send", "peer": "bob", "text": "hi"}\n')
        [stored] = a.history("bob")
        assert answers == [
            {
                "state": "queued",
                "peer": b.fingerprint,
                "name": "bob",
                "ref": message_ref(stored.id),
            },
            {"state": "delivered", "reason": None},
        ]
        answers = await _ask_control(path, b'{"op": "send", "peer": "nobody", "text": "hi"}\n')
        assert answers[0]["error"].startswith("no peer matches 'nobody'")
        for bad in (b"not json\n", b'{"op": "delete"}\n', b'{"op": "send", "peer": 1}\n', b"\n"):
            answers = await _ask_control(path, bad)
            assert answers[0]["error"].startswith("bad control request")
    finally:
        server.close()
    assert [m.body for m in a.history("bob")] == ["hi"]


@pytest.mark.asyncio
async def test_broadcast_counts_only_copies_that_went_out(rsa_keys, tmp_path, monkeypatch):
    """An offline peer's copy waits in the outbox; the count says so."""
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    try:
        introduce(a, b, ka, kb)
        await b.stop()
        from enclave.faces import repl_commands

        monkeypatch.setattr(repl_commands, "BROADCAST_WAIT", 0.5)  # it cannot go out: don't wait
        async with repl(a, tmp_path) as r:
            out = await r.run("/broadcast anyone there?", "Broadcast complete")
            assert "Broadcast complete: 0/1 sent successfully (1 queued for offline peers)" in out
    finally:
        await a.stop()


@pytest.mark.asyncio
async def test_a_peer_that_throttles_us_is_shown_with_why_and_when(rsa_keys, tmp_path):
    """Bob's node keeps 1 MiB of Alice's messages; she queues more. Her REPL says that
    bob's node throttles her, why, and when her node tries again."""
    from enclave.node.settings import Settings

    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a = await start(tmp_path / "a", ka)
    b = await start(tmp_path / "b", kb, Settings(stored_bytes_per_peer=1 << 20))
    try:
        introduce(a, b, ka, kb)
        async with repl(a, tmp_path) as r:
            bodies = [f"{k} " + "q" * 9_990 for k in range(120)]
            await a.submit_many(bytes.fromhex(b.fingerprint), bodies)
            await r.screen.shows(
                "bob's node is throttling you: storage (its quota for your messages is full);"
                " retrying in 300 s"
            )
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_peers_shows_last_seen_and_when_queued_messages_are_tried(alone, rsa_keys, tmp_path):
    a = alone
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    a.add_peer(public_pem(rsa_keys["bob"]), dead, "bob")
    a.store.touch_peer(a.resolve("bob").fingerprint, time.time() - 300)
    async with repl(a, tmp_path) as r:
        out = await r.run("/peers", "UNREAD")
        assert "last seen 5 min ago" in out
        await r.run("/send bob are you there?", "you -> bob")
        fp = bytes.fromhex(a.resolve("bob").fingerprint)
        await eventually(lambda: a.sessions.dialer.retry_in(fp) is not None, what="a pause")
        out = await r.run("/peers", "UNREAD")
        assert re.search(r"last seen 5 min ago; 1 queued, retrying in \d+ s", out)
        out = await r.run("/retry bob", "Trying bob now (1 message(s) waiting)")
        assert out.splitlines()[0] == "No failed messages to retry"
