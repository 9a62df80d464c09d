"""One order for everyone (issue 18): three senders write 300 posts each into a group of
ten, every link behind a proxy that delays each chunk at random, and one member is
stopped and started again mid-conversation. All ten histories end identical, in content
and in order, with every post exactly once.

Only the creator knows everyone; the other nine know only the creator, so the senders
reach the other members through the group log's address hints (the proxies).
"""

import asyncio
import random

import pytest
from support.delay_proxy import DelayProxy
from support.nodes import public_pem, small_key, start
from support.waiting import eventually

from enclave.node.settings import Settings

MEMBERS, SENDERS, POSTS = 10, 3, 300
SETTINGS = Settings(reconnect_min=0.1, reconnect_max=1.0)
RESTARTED = 7  # a member that does not send


def history(node, gid: bytes) -> list[tuple[str, str]]:
    lines = node.store.group_history(gid, node.fingerprint, 10 * POSTS * SENDERS)
    return [(line.sender, line.body) for line in lines]


@pytest.mark.asyncio
async def test_three_senders_ten_members_random_delays_and_a_restart_one_order(tmp_path):
    keys = [small_key() for _ in range(MEMBERS)]
    nodes = [await start(tmp_path / f"n{i}", keys[i], SETTINGS) for i in range(MEMBERS)]
    proxies = [DelayProxy(("127.0.0.1", n.address[1]), 0.01, seed=i) for i, n in enumerate(nodes)]
    ports = [await p.start() for p in proxies]
    try:
        creator = nodes[0]
        for i in range(1, MEMBERS):
            creator.add_peer(public_pem(keys[i]), f"127.0.0.1:{ports[i]}", f"m{i}")
            nodes[i].add_peer(public_pem(keys[0]), f"127.0.0.1:{ports[0]}", "creator")
        info = await creator.create_group("ten", [f"m{i}" for i in range(1, MEMBERS)])
        gid = bytes.fromhex(info.id)
        await eventually(
            lambda: all(n.groups_list() for n in nodes), 30, "every member holds the group"
        )
        written = {"count": 0}
        halfway, most = asyncio.Event(), asyncio.Event()

        async def write(i: int) -> None:
            jitter = random.Random(100 + i)
            for k in range(POSTS):
                await nodes[i].group_send("ten", f"post {k} from sender {i}")
                written["count"] += 1
                if written["count"] >= POSTS * SENDERS // 3:
                    halfway.set()
                if written["count"] >= 2 * POSTS * SENDERS // 3:
                    most.set()
                if jitter.random() < 0.1:  # pacing: senders drift apart, not a wait
                    await asyncio.sleep(jitter.uniform(0, 0.02))

        async def restart() -> None:
            await halfway.wait()
            await nodes[RESTARTED].stop()
            await most.wait()
            nodes[RESTARTED] = await start(tmp_path / f"n{RESTARTED}", keys[RESTARTED], SETTINGS)
            proxies[RESTARTED].target = ("127.0.0.1", nodes[RESTARTED].address[1])

        await asyncio.gather(restart(), *(write(i) for i in range(1, SENDERS + 1)))
        total = POSTS * SENDERS
        await eventually(
            lambda: all(len(history(n, gid)) == total for n in nodes),
            120,
            lambda: f"every history at {total}: {[len(history(n, gid)) for n in nodes]}",
            every=0.2,
        )
        first = history(nodes[0], gid)
        assert len(set(first)) == total  # each post once
        for node in nodes[1:]:
            assert history(node, gid) == first  # the same content in the same order
    finally:
        for node in nodes:
            await node.stop()
        for proxy in proxies:
            await proxy.close()
