"""Issue 20's at-rest check as a person would run it: after a chat between two real
nodes, no file in either home holds a word of it, nor the name a contact goes by
(``grep -a -c MARKER`` over every file prints 0); and a home written by the previous
version (key file version 1, history and names in clear) is sealed at its first
unlock, after which the same holds."""

import json
import time
from pathlib import Path

from test_cli_processes import PASSWORD, Person, enclave, pair  # noqa: F401 - a fixture

from enclave.identity import home, keys
from enclave.store import Store

MARKER = "Quokka-marker-5c1"
BOB = f"Bob {MARKER}"  # the name alice gives bob


def holding(place: Path, word: str) -> dict[str, int]:
    """Every file under a home that holds ``word``, with how many times (grep -a -c)."""
    found = {}
    for path in sorted(place.rglob("*")):
        if path.is_file() and not path.is_socket():
            count = path.read_bytes().count(word.encode())
            if count:
                found[str(path.relative_to(place))] = count
    return found


def stopped_and_clean(nodes: dict, people) -> None:
    """Stop the nodes (each exits 0), then no file of any home holds the marker."""
    for node in nodes.values():
        code, err = node.stop()
        assert code == 0, err
    for p in people:
        assert holding(p.home, MARKER) == {}, p.name


def history(person: Person, peer: str) -> list[str]:
    done = enclave("--home", str(person.home), "history", peer)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_after_a_chat_no_file_of_either_home_holds_its_words(pair):  # noqa: F811
    alice, bob = pair
    renamed = enclave("--home", str(alice.home), "rename", "bob", BOB)  # no node: sealed
    assert renamed.returncode == 0, renamed.stderr
    nodes = {p.name: p.listen("--json") for p in (bob, alice)}
    try:
        for p in (bob, alice):
            nodes[p.name].event(f"{p.name}'s start", type="started")
        sent = enclave("send", BOB, f"Lunch at {MARKER}?", "--home", str(alice.home))
        assert sent.returncode == 0, sent.stderr
        nodes["bob"].event("the message", type="message", text=f"Lunch at {MARKER}?")
        sent = enclave("send", "alice", f"Yes, {MARKER} at noon", "--home", str(bob.home))
        assert sent.returncode == 0, sent.stderr
        nodes["alice"].event("the answer", type="message", text=f"Yes, {MARKER} at noon")
        nodes["bob"].event("delivered", type="delivery", state="delivered")
    finally:
        stopped_and_clean(nodes, (alice, bob))
    peers = enclave("--home", str(alice.home), "peers")
    assert peers.returncode == 0 and BOB in peers.stdout, peers.stderr
    lines = history(alice, BOB)
    assert any(f"Lunch at {MARKER}?" in line for line in lines), lines
    assert any(f"Yes, {MARKER} at noon" in line for line in lines), lines
    for p in (alice, bob):
        assert holding(p.home, MARKER) == {}, p.name  # reading wrote nothing in clear


def test_a_home_of_the_previous_version_is_sealed_at_its_first_unlock(pair):  # noqa: F811
    alice, bob = pair
    place = home.Home(alice.home)
    old = keys.encrypt_identity(keys.load_identity(place, PASSWORD).private_key, PASSWORD)
    home.write_atomic(place.key_path, old, home.KEY_MODE)  # key file version 1
    with Store.open(place.db_path) as store:  # the history as the previous version kept it
        now = int(time.time() * 1000)
        store.store_incoming(
            [(bob.fingerprint, i.to_bytes(16, "big"), f"{MARKER} {i}", now + i, now + i, False)
             for i in range(1, 201)]
        )  # fmt: skip
        store.enqueue_outgoing([(bob.fingerprint, b"o" * 16, f"queued {MARKER}", now + 500)])
        store.set_name(bob.fingerprint, BOB)
    assert holding(alice.home, MARKER)  # in clear until then
    lines = history(alice, BOB)
    assert json.loads(place.key_path.read_text())["version"] == 2
    assert sum(MARKER in line for line in lines) == 50  # the last 50 of 201
    assert holding(alice.home, MARKER) == {}
    # The node sends what the old version queued, from the sealed outbox.
    nodes = {p.name: p.listen("--json") for p in (bob, alice)}
    try:
        nodes["bob"].event("the queued message", type="message", text=f"queued {MARKER}")
    finally:
        stopped_and_clean(nodes, (alice, bob))
