"""File transfer between real ``enclave listen --json`` processes: ``enclave
send-file`` queued and through the running node, the settings the checks rely on,
and resumption through ``kill -9`` of the receiver and then of the sender.

Waits read the nodes' JSON lines with deadlines (``Lines``); counters come from the
running nodes' control sockets (``{"op": "stats"}``); nothing sleeps to synchronise.
"""

import hashlib
import json
import os
import signal
import sqlite3

import pytest
from test_cli_processes import Person, enclave

from enclave.faces import control, runner

MiB = 1 << 20
CHUNK = MiB  # the chunk size Enclave picks for files up to 16 GiB
BIG = 1 << 30
TAKE = ("--set", f"file_auto_accept_bytes={4 << 30}", "--set", "file_disk_margin_bytes=0")


@pytest.fixture
def pair(tmp_path, rsa_keys):
    alice = Person(tmp_path, "alice", rsa_keys["alice"])
    bob = Person(tmp_path, "bob", rsa_keys["bob"])
    alice.knows(bob)
    bob.knows(alice)
    return alice, bob


def random_file(path, size: int) -> str:
    with open(path, "wb") as f:
        for _ in range(size // (4 * MiB)):
            f.write(os.urandom(4 * MiB))
        f.write(os.urandom(size % (4 * MiB)))
    return str(path)


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            h.update(block)
    return h.hexdigest()


def stats(person) -> dict:
    answers = control.ask(runner.control_path(person.home), {"op": "stats"})
    assert answers, "the node did not answer"
    return answers[0]


def held_chunks(person) -> int:
    """Chunks the receiver's store records (read while the node is dead or running)."""
    db = sqlite3.connect(f"file:{person.home / 'enclave.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT max(done) FROM transfer_chunks").fetchone()[0]
    finally:
        db.close()


def delivered(node, direction: str) -> dict:
    return node.event(
        f"{direction} file delivered", type="file", direction=direction, state="delivered"
    )


def test_send_file_queued_then_through_the_node_with_settings(pair, tmp_path):
    alice, bob = pair
    report = random_file(tmp_path / "report.pdf", 3 * MiB + 5)
    queued = enclave("send-file", "bob", report, "--home", str(alice.home))
    assert queued.returncode == 0, queued.stderr
    assert "No node is running" in queued.stdout and "report.pdf" in queued.stdout
    for argv, message in [
        (("send-file", "bob", str(tmp_path / "missing.txt")), "no such file"),
        (("send-file", "bob", str(tmp_path)), "is a folder"),
        (("send-file", "nobody", report), "nobody"),
    ]:
        wrong = enclave(*argv, "--home", str(alice.home))
        assert wrong.returncode == 2 and message in wrong.stderr, wrong.stderr
        assert "Traceback" not in wrong.stderr and len(wrong.stderr.splitlines()) == 1

    downloads = tmp_path / "inbox"
    bob_node = bob.listen(
        "--json", "--downloads", str(downloads), "--set", f"file_auto_accept_bytes={4 * MiB}"
    )
    alice_node = alice.listen("--json")
    try:
        first = delivered(bob_node, "in")
        assert first["path"] == str(downloads / "report.pdf") and sha256(first["path"]) == sha256(
            report
        )
        again = enclave("send-file", "bob", report, "--wait", "--home", str(alice.home))
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("#") and "report.pdf delivered to bob" in again.stdout
        assert (downloads / "report (1).pdf").exists()
        assert sha256(downloads / "report (1).pdf") == sha256(report)

        big = random_file(tmp_path / "big.iso", 5 * MiB)  # over the 4 MiB set for this run
        offered = enclave("send-file", "bob", big, "--home", str(alice.home))
        assert offered.returncode == 0 and "offered to bob" in offered.stdout, offered.stderr
        waiting = bob_node.event("a waiting offer", type="file", file="big.iso", waiting=True)
        assert waiting["state"] == "offered" and waiting["size"] == 5 * MiB
        assert not (downloads / "big.iso.part").exists()
    finally:
        for node in (alice_node, bob_node):
            code, err = node.stop()
            assert code == 0, err


def test_a_gigabyte_survives_kill_9_of_the_receiver_then_of_the_sender(pair, tmp_path):
    alice, bob = pair
    src = random_file(tmp_path / "disk.img", BIG)
    alice_node, bob_node = alice.listen("--json", *TAKE), bob.listen("--json", *TAKE)
    try:
        bob_node.event("bob's start", type="started")
        alice_node.event("alice's start", type="started")
        sent = enclave("send-file", "bob", src, "--home", str(alice.home))
        assert sent.returncode == 0, sent.stderr

        # The receiver dies at about 60%, mid-transfer.
        bob_node.wait(lambda line: _done(line) >= 0.6 * BIG, "60% at bob")
        bob_node.proc.send_signal(signal.SIGKILL)
        bob_node.stop()
        missing_1 = BIG - held_chunks(bob) * CHUNK
        assert 0 < missing_1 < BIG
        bob_node = bob.listen("--json", *TAKE)

        # Then the sender dies, after the transfer went on.
        bob_node.wait(lambda line: _done(line) >= BIG - missing_1 + (missing_1 // 2), "more at bob")
        alice_node.proc.send_signal(signal.SIGKILL)
        alice_node.stop()
        missing_2 = BIG - held_chunks(bob) * CHUNK  # may be read early: larger, never smaller
        alice_node = alice.listen("--json", *TAKE)

        landed = delivered(bob_node, "in")
        delivered(alice_node, "out")
        assert sha256(landed["path"]) == sha256(src)
        moved_after_bob_restart = stats(bob)["file_piece_bytes_received"]
        sent_after_alice_restart = stats(alice)["file_bytes_sent"]
        assert moved_after_bob_restart <= missing_1 + 2 * CHUNK, (
            moved_after_bob_restart,
            missing_1,
        )
        assert sent_after_alice_restart <= missing_2 + 2 * CHUNK, (
            sent_after_alice_restart,
            missing_2,
        )
        assert not os.path.exists(landed["path"] + ".part")
        print(  # the figures behind the bounds, for the record (pytest -s)
            f"missing after bob's kill {missing_1:,} B, moved after his restart"
            f" {moved_after_bob_restart:,} B; missing after alice's kill {missing_2:,} B,"
            f" sent after her restart {sent_after_alice_restart:,} B; sha256 matches"
        )
    finally:
        for node in (alice_node, bob_node):
            node.stop()


def _done(line: str) -> int:
    event = json.loads(line)
    if event.get("type") != "file" or event.get("direction") != "in":
        return -1
    return event.get("done") or 0
