"""``enclave history PEER`` (issue 20, item 2) as a real process: one line per message,
both directions, oldest first, the last 50 by default; ``--limit``, ``--json``; the
password first, a mistake in one line."""

import json
import re

from test_cli_pairing import Home
from test_cli_processes import enclave
from test_cli_rotation import chat_both_ways, introduce, node

from enclave.node.display import message_ref


def test_history_prints_the_conversation_both_ways_oldest_first(tmp_path):
    alice, bob = Home(tmp_path, "alice"), Home(tmp_path, "bob")
    introduce(tmp_path, alice, bob)
    a, b = node(alice), node(bob)
    try:
        chat_both_ways(alice, a, bob, b, "one")
        chat_both_ways(alice, a, bob, b, "two <b>&\x1b[31m")
        b.event("the last delivered", type="delivery", state="delivered")
    finally:
        a.stop()
        b.stop()
    done = enclave(*alice.cmd("history", "bob"))
    assert done.returncode == 0, done.stderr
    said = [line.split("  ", 1)[1] for line in done.stdout.splitlines()]
    rows = [
        json.loads(line)
        for line in enclave(*alice.cmd("history", "bob", "--json")).stdout.splitlines()
    ]
    refs = [row["ref"] for row in rows]  # each line ends with the #ref /history shows
    assert refs == [message_ref(bytes.fromhex(row["id"])) for row in rows]
    assert all(re.fullmatch(r"#[0-9a-z]{4}", ref) for ref in refs)
    shown = "from bob two <b>&\u27e8U+001B\u27e9[31m"  # an escape is shown, never sent
    assert said == [
        f"bob -> you: from bob one  ({refs[0]})",
        f"you -> bob: from alice one  ({refs[1]})",
        f"bob -> you: {shown}  ({refs[2]})",
        f"you -> bob: {shown.replace('bob', 'alice', 1)}  ({refs[3]})",
    ]
    assert "\x1b" not in done.stdout
    last = enclave(*alice.cmd("history", "bob", "--limit", "1", "--json"))
    [row] = [json.loads(line) for line in last.stdout.splitlines()]
    assert row["type"] == "message" and row["direction"] == "out"
    assert row["text"].startswith("from alice two") and row["reply_to"] is None
    nobody = enclave(*alice.cmd("history", "nobody"))
    assert nobody.returncode == 2 and "no peer matches 'nobody'" in nobody.stderr
    assert len(nobody.stderr.strip().splitlines()) == 1
    bad = enclave(*alice.cmd("history", "bob", "--limit", "0"))
    assert bad.returncode == 2 and "--limit" in bad.stderr


def test_clear_erases_the_history_shown_and_asks_first(tmp_path):
    alice, bob = Home(tmp_path, "alice"), Home(tmp_path, "bob")
    introduce(tmp_path, alice, bob)
    queued = enclave(*alice.cmd("send", "bob", "queued, then erased"))
    assert queued.returncode == 0, queued.stderr
    asked = enclave(*alice.cmd("clear", "bob"))  # no terminal: --yes is needed
    assert asked.returncode == 2 and "--yes" in asked.stderr
    ref = re.search(r"\((#[0-9a-z]{4})\)", queued.stdout).group(1)  # what send printed
    shown = enclave(*alice.cmd("history", "bob")).stdout
    assert shown.endswith(f"you -> bob: queued, then erased  ({ref} queued)\n")
    done = enclave(*alice.cmd("clear", "bob", "--yes"))
    assert done.returncode == 0, done.stderr
    assert "Erased your history with bob on this device" in done.stdout
    assert enclave(*alice.cmd("history", "bob")).stdout == ""
    assert "bob" in enclave(*alice.cmd("peers")).stdout


def test_history_off_shows_the_chat_live_and_keeps_none_of_it(tmp_path):
    alice, bob = Home(tmp_path, "alice"), Home(tmp_path, "bob")
    introduce(tmp_path, alice, bob)
    off = enclave(*alice.cmd("keep-history", "bob", "off"))  # no node runs: the store
    assert off.returncode == 0 and "History with bob is off" in off.stdout, off.stderr
    a, b = node(alice), node(bob)
    try:
        chat_both_ways(alice, a, bob, b, "QUAGGAMARK")  # alice's node shows bob's, live
        a.event("alice's delivered", type="delivery", state="delivered")
    finally:
        a.stop()
        b.stop()
    done = enclave(*alice.cmd("history", "bob"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "-- history is off with bob: messages are shown, then kept nowhere here"
    ]
    rows = enclave(*alice.cmd("history", "bob", "--json")).stdout.splitlines()
    assert [json.loads(line)["type"] for line in rows] == ["history_off"]
    assert "QUAGGAMARK" in enclave(*bob.cmd("history", "alice")).stdout  # bob keeps his
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("alice/**/enclave.db*"))
    assert stored and b"QUAGGAMARK" not in stored
