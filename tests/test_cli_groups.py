"""``enclave group`` with no node running: one-line mistakes, ``list`` from the store and
``send`` into the outbox (the node running case is tests/test_groups_processes.py)."""

import time

import pytest
from support.stores import unlocked_store
from test_cli_processes import PASSWORD, Person, enclave

from enclave.protocol import group_log as gl
from enclave.protocol.crypto import Identity, spki_pem
from enclave.store import Store


@pytest.fixture
def alice(tmp_path, rsa_keys):
    alice, bob = (
        Person(tmp_path, "alice", rsa_keys["alice"]),
        Person(tmp_path, "bob", rsa_keys["bob"]),
    )
    alice.knows(bob)
    return alice


def stored_group(person: Person, rsa_keys) -> bytes:
    """A group "crew" of Alice (admin) and Bob, in Alice's store as her node keeps it."""
    ida, idb = Identity(rsa_keys["alice"]), Identity(rsa_keys["bob"])
    members = [gl.entry(spki_pem(i.peer_key.key), n) for i, n in ((ida, "alice"), (idb, "bob"))]
    glog = gl.GroupLog.create(ida, b"\x01" * 16, "crew", members, int(time.time() * 1000))
    with Store.open(person.home / "enclave.db") as store:
        store.create_group(glog.group_id, "crew", glog.encoded, int(time.time() * 1000))
    return glog.group_id


def run(person: Person, *argv: str):
    return enclave("--home", str(person.home), "group", *argv)


def test_mistakes_are_one_line_and_change_nothing(alice):
    for argv, said in (
        ((), "the following arguments are required: ACTION"),
        (("create", "crew", "bob"), "group create needs the running node"),
        (("remove", "crew", "bob"), "group remove needs the running node"),
        (("send", "crew", "hello"), "no group matches 'crew'"),
        (("send", "crew", " "), "the message is empty"),
        (("frobnicate",), "invalid choice"),
    ):
        done = run(alice, *argv)
        assert done.returncode == 2, (argv, done.stderr)
        assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert run(alice, "list").stdout.strip() == "No groups yet"


def test_list_and_send_without_a_node(alice, rsa_keys):
    gid = stored_group(alice, rsa_keys)
    listing = run(alice, "list")
    assert listing.returncode == 0
    assert "crew" in listing.stdout and "you" in listing.stdout and "bob" in listing.stdout
    done = run(alice, "send", "crew", "see", "you", "at", "5")
    assert done.returncode == 0 and "queued in the outbox" in done.stdout, done.stderr
    with unlocked_store(alice.home, PASSWORD) as store:  # the post is sealed
        owed = store.outbox_for(alice_peer(store, "bob"))
    assert [(o.body, o.group[0], o.group[1]) for o in owed] == [("see you at 5", gid, 0)]
    direct = enclave("--home", str(alice.home), "send", "bob", "a direct one")
    assert direct.returncode == 0
    # The store is sealed now, bob's name too: the list unlocks to show it.
    listing = run(alice, "list")
    assert listing.returncode == 0 and "bob" in listing.stdout, listing.stderr
    assert "encrypted" not in listing.stdout


def alice_peer(store, name: str) -> str:
    return next(p.fingerprint for p in store.list_peers() if p.name == name)
