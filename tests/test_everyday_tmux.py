"""Everyday use in two real terminals: add, presence, rename, block, unblock, remove.

Alice and Bob each run ``enclave --listen`` in tmux. Bob already knows Alice; Alice adds
Bob from his key file with ``/add`` and sees him online without sending anything.
"""

from __future__ import annotations

import pytest
from test_repl_tmux import Tmux, _env, people, tmux  # noqa: F401 - fixtures used by name


def _pem(person, folder) -> str:
    path = folder / f"{person.name}.pem"
    path.write_bytes(person.identity.public_pem)
    return str(path)


@pytest.fixture
def pair(people, tmp_path):  # noqa: F811 - the fixture imported above
    alice, bob = people["alice"], people["bob"]
    from enclave.store import Store

    with Store.open(alice.home / "enclave.db") as store:  # Alice starts knowing nobody
        for p in store.list_peers():
            store.remove_peer(p.fingerprint)
    return alice, bob


def _enter(tmux: Tmux, name: str, line: str) -> None:  # noqa: F811
    tmux.type(name, line)
    tmux.keys(name, "Enter")


def test_contacts_presence_and_output_order_in_two_terminals(pair, tmux, tmp_path):  # noqa: F811
    alice, bob = pair
    for p in (alice, bob):
        tmux.start(p.name, p.argv("--set", "reconnect_max=1.0"), _env())
        tmux.until(p.name, "Type /help for commands.")

    # Add: Alice adds Bob; both see each other online without a message sent.
    _enter(tmux, "alice", f"/add {_pem(bob, tmp_path)} 127.0.0.1:{bob.port} bob")
    tmux.until("alice", "Added peer bob")
    tmux.until("alice", "bob is online")
    tmux.until("bob", "alice is online")
    assert "you ->" not in tmux.screen("alice")

    # The echo of what is sent comes first, then its state changes, by reference.
    _enter(tmux, "alice", "/send bob first words")
    screen = tmux.until("alice", "to bob: delivered")
    echo = screen.index("you -> bob: first words")
    ref = screen[echo:].split("(", 1)[1].split(")", 1)[0]
    assert echo < screen.index(f"{ref} to bob: sent") < screen.index(f"{ref} to bob: delivered")
    tmux.until("bob", "alice: first words")

    # Rename.
    _enter(tmux, "alice", "/rename bob robert")
    tmux.until("alice", "is now called robert")

    # Block: what Bob sends while blocked never shows; it arrives after the unblock.
    _enter(tmux, "alice", "/block robert")
    tmux.until("alice", "robert is blocked")
    tmux.until("bob", "alice went offline")
    _enter(tmux, "bob", "/send alice sent while you blocked me")
    tmux.until("bob", "you -> alice: sent while you blocked me")
    _enter(tmux, "alice", "/send robert hello?")
    tmux.until("alice", "error: robert is blocked")
    _enter(tmux, "alice", "/unblock robert")
    screen = tmux.until("alice", "robert: sent while you blocked me")
    assert screen.index("robert is unblocked") < screen.index("robert: sent while you blocked me")
    assert screen.count("sent while you blocked me") == 1
    tmux.until("bob", "to alice: delivered")

    # Remove, after the question.
    _enter(tmux, "alice", "/remove robert")
    tmux.until("alice", "This deletes its history")
    _enter(tmux, "alice", "y")
    tmux.until("alice", "robert was removed with its history")
    _enter(tmux, "alice", "/peers")
    tmux.until("alice", "No peers yet")
    for p in (alice, bob):
        _enter(tmux, p.name, "/quit")
        assert tmux.exit_status(p.name) == 0
        assert "Traceback" not in tmux.screen(p.name)
