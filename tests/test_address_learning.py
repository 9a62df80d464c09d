"""A known peer that comes back from a new host is dialled there (peers._learn_address).

Carol is known to Bob at 127.0.0.1:9. Her authenticated session from 127.0.0.4 moves her
address to 127.0.0.4:9 (the host she came from, the port Bob knew). A handshake that never
authenticates, from yet another host, moves nothing; neither does Bob's own dial.
"""

import asyncio

import pytest
from attackers import RawPeer, eventually, forged_hs1, frame, read_to_close
from nodes import public_pem, start


def address_of(node, key) -> str:
    fp = RawPeer(key, node, source="127.0.0.1").fingerprint.hex()
    return node.store.get_peer(fp).address


@pytest.mark.asyncio
async def test_an_authenticated_session_from_a_new_host_moves_the_dial_address(rsa_keys, tmp_path):
    bob = await start(tmp_path / "b", rsa_keys["bob"])
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
        assert address_of(bob, rsa_keys["carol"]) == "127.0.0.1:9"

        carol = RawPeer(rsa_keys["carol"], bob, source="127.0.0.4")
        await carol.handshake()
        await eventually(
            lambda: address_of(bob, rsa_keys["carol"]) == "127.0.0.4:9", 10, "the new address"
        )
        assert address_of(bob, rsa_keys["mallory"]) == "127.0.0.1:9"
        await carol.close()
    finally:
        await bob.stop()
