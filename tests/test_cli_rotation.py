"""``enclave rotate-key`` as real processes (issue 19, item 4): after it, messages flow
both ways with no warning and the contact's ``enclave peers`` lists only the new
fingerprint, whether the home's node was down (the next start hands the key over) or
running (it takes the key over at once); a key swapped without a statement is refused.
Every wait reads stdout through ``Lines``; nothing sleeps."""

from support.waiting import eventually_blocking
from test_cli_pairing import Home
from test_cli_processes import Lines, enclave, enclave_process

from enclave.faces import control, runner


def introduce(tmp_path, a: Home, b: Home) -> None:
    """Each adds the other from its public key (the PEM way)."""
    for who, to in ((a, b), (b, a)):
        pem = tmp_path / f"{who.name}.pem"
        pem.write_text(enclave(*who.cmd("public-key")).stdout)
        added = enclave(*to.cmd("add", str(pem), "--address", f"127.0.0.1:{who.port}",
                                "--name", who.name))  # fmt: skip
        assert added.returncode == 0, added.stderr


def fingerprint(person: Home) -> str:
    return enclave(*person.cmd("fingerprint")).stdout.strip()


def node(person: Home) -> Lines:
    lines = Lines(enclave_process(*person.cmd("listen", "--json", *person.network())))
    lines.event(f"{person.name}'s node up", type="started")
    return lines


def chat_both_ways(alice: Home, a: Lines, bob: Home, b: Lines, tag: str) -> None:
    sent = enclave(*bob.cmd("send", "alice", f"from bob {tag}"))
    assert sent.returncode == 0, sent.stderr
    a.event("bob's message", type="message", text=f"from bob {tag}")
    sent = enclave(*alice.cmd("send", "bob", f"from alice {tag}"))
    assert sent.returncode == 0, sent.stderr
    b.event("alice's message", type="message", text=f"from alice {tag}")


def test_rotated_while_down_then_both_write_and_bob_lists_the_new_key(tmp_path):
    alice, bob = Home(tmp_path, "alice"), Home(tmp_path, "bob")
    introduce(tmp_path, alice, bob)
    old = fingerprint(alice)
    done = enclave(*alice.cmd("rotate-key"))  # no terminal: no question asked
    assert done.returncode == 0, done.stderr
    new = fingerprint(alice)
    assert new != old and f"New fingerprint: {new}" in done.stdout
    assert "1 contact switch" in done.stdout
    a, b = node(alice), node(bob)
    try:
        chat_both_ways(alice, a, bob, b, "after the rotation")
        change = b.event("bob's node applying the succession", type="key_changed")
        assert change["text"] == "alice rotated their key, signed by their previous key"
        assert change["old"].startswith(old.replace(" ", "")[:16])
        peers = enclave(*bob.cmd("peers")).stdout
        assert new[:19] in peers and old[:19] not in peers
        assert not [line for line in b.seen if '"warning"' in line]
        chat_both_ways(alice, a, bob, b, "again")
    finally:
        a.stop()
        b.stop()


def test_a_running_node_takes_the_new_key_over_at_once(tmp_path):
    alice, bob = Home(tmp_path, "alice"), Home(tmp_path, "bob")
    introduce(tmp_path, alice, bob)
    old = fingerprint(alice)
    a, b = node(alice), node(bob)
    try:
        chat_both_ways(alice, a, bob, b, "before")
        done = enclave(*alice.cmd("rotate-key"))
        assert done.returncode == 0, done.stderr
        new = fingerprint(alice)
        assert new != old and "as soon as they talk to this node" in done.stdout
        b.event("bob's node applying the succession", type="key_changed")
        chat_both_ways(alice, a, bob, b, "after")
        peers = enclave(*bob.cmd("peers")).stdout
        assert new[:19] in peers and old[:19] not in peers
        # Alice's home restarts with the new key (the old one retired, for late contacts).
        a.stop()
        a = node(alice)
        sent = enclave(*bob.cmd("send", "alice", "after alice's restart"))
        assert sent.returncode == 0, sent.stderr
        a.event("bob's message after the restart", type="message", text="after alice's restart")
    finally:
        a.stop()
        b.stop()


def test_a_key_swapped_without_a_statement_is_refused(tmp_path):
    """Alice's home gets a new key with no statement (``generate --force``): Bob's node
    refuses its handshakes like a stranger's, shows nothing it sends, and keeps the key
    it knows."""
    alice, bob = Home(tmp_path, "alice"), Home(tmp_path, "bob")
    introduce(tmp_path, alice, bob)
    old = fingerprint(alice)
    swapped = enclave(*alice.cmd("generate", "--force"))  # a new key, nothing signed
    assert swapped.returncode == 0, swapped.stderr
    # The store is sealed under the old identity's key: the new one starts its own, and
    # adds bob again (bob's name was sealed in the old one).
    for path in alice.home.glob("enclave.db*"):
        path.rename(path.with_name("old-" + path.name))
    pem = tmp_path / "bob.pem"
    added = enclave(
        *alice.cmd("add", str(pem), "--address", f"127.0.0.1:{bob.port}", "--name", "bob")
    )
    assert added.returncode == 0, added.stderr
    queued = enclave(*alice.cmd("send", "bob", "from a key bob never saw"))
    assert queued.returncode == 0, queued.stderr  # no node of alice's runs: queued
    b = node(bob)
    a = node(alice)  # dials bob with the swapped key at once (the message waits)
    try:
        eventually_blocking(lambda: refused(bob) >= 1, 30, "bob's node refusing the swapped key")
        peers = enclave(*bob.cmd("peers")).stdout
        assert old[:19] in peers and fingerprint(alice)[:19] not in peers
        assert not [line for line in b.seen if "from a key bob never saw" in line]
    finally:
        a.stop()
        b.stop()


def refused(person: Home) -> int:
    """Handshakes the person's running node refused as from an unknown key."""
    answers = control.ask(runner.control_path(person.home), {"op": "stats"})
    return answers[0]["closed"].get("unknown_peer", 0) if answers else 0
