"""A known peer that comes back from a new host is dialled there first, and at the address
the user gave when that fails (sessions._learn_address, dialing.Dialer._dial_once).
The nodes here run without presence: no session opens until Bob sends.

Carol is known to Bob at 127.0.0.1:PORT. Her authenticated session from 127.0.0.4 teaches
Bob 127.0.0.4:PORT (the host she came from, the port Bob was given) and keeps the given
address beside it. A handshake that never authenticates moves nothing: neither a forged
HS1 nor a genuine one whose Finished (HS3) is held back; nor does Bob's own dial, nor
Mallory, an authenticated contact, for anyone but herself.
"""

import asyncio
import socket

import pytest
from support.attackers import RawPeer, forged_hs1, frame, read_to_close
from support.nodes import NO_PRESENCE, Recorder, introduce, public_pem, start
from support.waiting import eventually

from enclave.errors import UserError
from enclave.faces import cli
from enclave.faces.web import views
from enclave.node import Node
from enclave.node.events import PeerOffline


def peer_of(node, key):
    return node.store.get_peer(RawPeer(key, node, source="127.0.0.1").fingerprint.hex())


def reserved(host: str, port: int) -> socket.socket:
    """A bound, non-listening socket: a dial to host:port is refused while it lives."""
    sock = socket.socket()
    sock.bind((host, port))
    return sock


async def listening_beside_a_refusal(home, key, host: str, refusing: str):
    """A node listening on host:PORT while refusing:PORT refuses connections (a socket
    bound there, not listening); a PORT free on both hosts is found by trying."""
    for _ in range(5):
        sock = reserved(refusing, 0)
        node = Node(home, key, NO_PRESENCE)
        try:
            await node.start(host, sock.getsockname()[1])
        except UserError:  # taken on ``host``: another port
            sock.close()
            continue
        return node, sock
    raise AssertionError(f"no port free on both {host} and {refusing}")


async def writer_done(node) -> None:
    """Every store write the node queued on its writer thread so far has run."""
    await asyncio.get_running_loop().run_in_executor(node.sessions.policy.writer, lambda: None)


async def offline(recorder: Recorder, fingerprint: bytes) -> None:
    await recorder.until(lambda r: any(e == PeerOffline(fingerprint.hex()) for e in r.events), 10)


@pytest.mark.asyncio
async def test_an_authenticated_session_from_a_new_host_is_learned_beside_the_given_address(
    rsa_keys, tmp_path, capsys
):
    bob = await start(tmp_path / "b", rsa_keys["bob"], NO_PRESENCE)
    try:
        bob.add_peer(public_pem(rsa_keys["carol"]), "127.0.0.1:9", "carol")
        bob.add_peer(public_pem(rsa_keys["mallory"]), "127.0.0.1:9", "mallory")

        # Unauthenticated: an HS1 claiming Carol's fingerprint with a junk signature.
        carol_fp = RawPeer(rsa_keys["carol"], bob, source="127.0.0.1").fingerprint
        bob_fp = bytes.fromhex(bob.fingerprint)
        reader, writer = await asyncio.open_connection(*bob.address, local_addr=("127.0.0.5", 0))
        writer.write(frame(forged_hs1(carol_fp, bob_fp)))
        await read_to_close(reader, 5.0)
        writer.close()
        await writer_done(bob)
        assert peer_of(bob, rsa_keys["carol"]).dial_addresses == ["127.0.0.1:9"]

        # Mallory, a contact, authenticates from another new host: only her own moves.
        mallory = RawPeer(rsa_keys["mallory"], bob, source="127.0.0.7")
        await mallory.handshake()
        await eventually(
            lambda: peer_of(bob, rsa_keys["mallory"]).learned_address == "127.0.0.7:9", 10
        )
        await mallory.close()

        carol = RawPeer(rsa_keys["carol"], bob, source="127.0.0.4")
        await carol.handshake()
        await eventually(
            lambda: peer_of(bob, rsa_keys["carol"]).learned_address == "127.0.0.4:9",
            10,
            "the learned address",
        )
        seen = peer_of(bob, rsa_keys["carol"])
        assert seen.address == "127.0.0.1:9"  # the given address stays, as the fallback
        assert seen.dial_addresses == ["127.0.0.4:9", "127.0.0.1:9"]
        [status] = [s for s in bob.peers() if s.peer.name == "carol"]
        on_page = views.peer(status, 0, None)
        assert on_page["address"] == "127.0.0.4:9 (learned), 127.0.0.1:9 (given)"
        assert [on_page["learned_address"], on_page["given_address"]] == seen.dial_addresses
        capsys.readouterr()
        assert cli.main(["--peers", "--home", str(tmp_path / "b")]) == 0
        [row] = [line for line in capsys.readouterr().out.splitlines() if "carol" in line]
        assert "127.0.0.4:9 (learned), 127.0.0.1:9 (given)" in row
        await carol.close()

        # Back at the given host: the learned address is forgotten.
        carol = RawPeer(rsa_keys["carol"], bob, source="127.0.0.1")
        await carol.handshake()
        await eventually(lambda: peer_of(bob, rsa_keys["carol"]).learned_address is None, 10)
        assert peer_of(bob, rsa_keys["mallory"]).dial_addresses == ["127.0.0.7:9", "127.0.0.1:9"]
        await carol.close()
    finally:
        await bob.stop()


@pytest.mark.asyncio
async def test_nothing_is_learned_before_the_peers_finished_verifies(rsa_keys, tmp_path):
    """Carol's HS1 and HS2 go through from a new host, but her HS3 (the Finished MAC that
    authenticates her) is held back: Bob has learned nothing. Once it arrives, he has."""
    bob = await start(tmp_path / "b", rsa_keys["bob"], NO_PRESENCE)
    carol = RawPeer(rsa_keys["carol"], bob, source="127.0.0.6")
    try:
        bob.add_peer(public_pem(rsa_keys["carol"]), "127.0.0.1:9", "carol")
        await carol.open()
        await carol.begin()  # HS1 goes out
        carol.hold = True  # what follows (HS3) is kept back
        await carol.until(lambda p: p.held or p.eof.is_set(), 20)
        assert carol.held and not carol.eof.is_set()
        await writer_done(bob)
        assert peer_of(bob, rsa_keys["carol"]).learned_address is None
        assert not bob.peers()[0].online

        carol.write(carol.held)  # HS3
        await eventually(
            lambda: peer_of(bob, rsa_keys["carol"]).learned_address == "127.0.0.6:9", 10
        )
    finally:
        await carol.close()
        await bob.stop()


@pytest.mark.asyncio
async def test_the_given_address_is_dialled_when_the_learned_one_fails(rsa_keys, tmp_path):
    """Carol listens at her given address, 127.0.0.1:PORT, and once reached Bob from
    127.0.0.4 (a host where nothing listens on PORT, like a NAT's public side). Bob's
    message to her still arrives: the learned address is refused, the given one is
    dialled next; having reached her there, Bob forgets the learned one."""
    bob = await start(tmp_path / "b", rsa_keys["bob"], NO_PRESENCE)
    carol, nowhere = await listening_beside_a_refusal(
        tmp_path / "c", rsa_keys["carol"], "127.0.0.1", "127.0.0.4"
    )
    try:
        introduce(carol, bob, rsa_keys["carol"], rsa_keys["bob"], names=("carol", "bob"))
        at_bob, at_carol = Recorder(bob), Recorder(carol)
        seen_from = RawPeer(rsa_keys["carol"], bob, source="127.0.0.4")
        await seen_from.handshake()
        await seen_from.close()
        await offline(at_bob, seen_from.fingerprint)
        await writer_done(bob)  # what the session taught is written
        given, learned = (f"127.0.0.{n}:{carol.address[1]}" for n in (1, 4))
        assert peer_of(bob, rsa_keys["carol"]).address == given
        assert peer_of(bob, rsa_keys["carol"]).dial_addresses == [learned, given]

        await bob.send("carol", "still there?")
        await at_carol.until(lambda r: r.received(), 20)
        assert [m.body for m in at_carol.received()] == ["still there?"]
        await at_bob.until(lambda r: r.states("delivered"), 20)
        await eventually(lambda: peer_of(bob, rsa_keys["carol"]).learned_address is None, 10)
        assert peer_of(bob, rsa_keys["carol"]).dial_addresses == [given]
    finally:
        nowhere.close()
        await bob.stop()
        await carol.stop()


@pytest.mark.asyncio
async def test_the_learned_address_is_dialled_first(rsa_keys, tmp_path):
    """Carol moved: she now listens on 127.0.0.4 only, and her given address refuses.
    Her authenticated session from there is what lets Bob reach her."""
    bob = await start(tmp_path / "b", rsa_keys["bob"], NO_PRESENCE)
    carol, nowhere = await listening_beside_a_refusal(
        tmp_path / "c", rsa_keys["carol"], "127.0.0.4", "127.0.0.1"
    )
    try:
        introduce(carol, bob, rsa_keys["carol"], rsa_keys["bob"], names=("carol", "bob"))
        at_bob, at_carol = Recorder(bob), Recorder(carol)
        seen_from = RawPeer(rsa_keys["carol"], bob, source="127.0.0.4")
        await seen_from.handshake()
        learned = f"127.0.0.4:{carol.address[1]}"
        await eventually(lambda: peer_of(bob, rsa_keys["carol"]).learned_address == learned, 10)
        await seen_from.close()
        await offline(at_bob, seen_from.fingerprint)

        await bob.send("carol", "found you")
        await at_carol.until(lambda r: r.received(), 20)
        await at_bob.until(lambda r: r.states("delivered"), 20)
        assert peer_of(bob, rsa_keys["carol"]).dial_addresses == [
            learned,
            f"127.0.0.1:{carol.address[1]}",
        ]
    finally:
        nowhere.close()
        await bob.stop()
        await carol.stop()
