"""Microbenchmarks of the store's commit cycles: what each side's writer thread pays per
message when the node streams to one peer.

Run: ``pytest bench/bench_store.py --benchmark-only`` (``python bench/e2e.py`` includes
it). One timed call is one ``Store.write_cycle`` of ``CYCLE`` messages, as the node's
committer makes them under load (``commit_batch`` 4,096): the sender's cycle writes the
new outgoing rows and marks the previous cycle's rows delivered (the ack of the batch
before); the receiver's cycle stores incoming rows. ``extra_info`` follows
bench/conftest.py's convention (``ops``, ``unit``, ``each``), so the medians divide into a
per-message figure.

The stores use ``sync="normal"``: the figure is the writer's work (SQL, its Python part
and the WAL writes), not this machine's fsync, which ``bench/e2e.py`` reports on its own.
Each cycle runs on a store in clear and on one sealed under a store key (as a user's
node keeps it): the difference is what sealing costs each writer per message.
"""

import itertools
import os

import pytest

from enclave.store import Store

CYCLE = 4096
ROUNDS = 25
BODY = "x" * 100
ME, PEER = "a" * 64, "b" * 64
PEM = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----"


def per_message(benchmark, unit: str) -> None:
    benchmark.extra_info["ops"] = CYCLE
    benchmark.extra_info["unit"] = unit
    benchmark.extra_info["each"] = "message"


@pytest.fixture(params=["clear", "sealed"])
def store(request, tmp_path):
    key = os.urandom(32) if request.param == "sealed" else None
    with Store.open(tmp_path / "enclave.db", sync="normal", key=key) as s:
        s.upsert_peer(PEER, PEM, None, None, 1.0)
        s.mode = request.param
        yield s


def test_sender_cycle(benchmark, store):
    acked: list[list[int]] = []

    def setup():
        rows = [(store.reserve_rowid(), PEER, os.urandom(16), BODY, 1_000) for _ in range(CYCLE)]
        delivered = [(PEER, acked.pop())] if acked else []
        return (rows, delivered), {}

    def cycle(rows, delivered):
        store.write_cycle(rows, (), delivered, 5_000)
        acked.append([r[0] for r in rows])

    per_message(
        benchmark, f"store: sender cycle of {CYCLE}, {store.mode} (enqueue + ack of the last)"
    )
    benchmark.pedantic(cycle, setup=setup, rounds=ROUNDS, warmup_rounds=2)
    assert len(store.outbox_for(PEER)) == CYCLE  # only the last cycle is still owed


def test_receiver_cycle(benchmark, store):
    created = itertools.count(1_000)

    def setup():
        t = next(created)
        return ([(PEER, os.urandom(16), BODY, t, t, False) for _ in range(CYCLE)],), {}

    def cycle(rows):
        assert all(store.write_cycle(incoming=rows))  # every row was new

    per_message(benchmark, f"store: receiver cycle of {CYCLE} incoming, {store.mode}")
    benchmark.pedantic(cycle, setup=setup, rounds=ROUNDS, warmup_rounds=2)
