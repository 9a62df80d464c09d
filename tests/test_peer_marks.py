"""A peer's bookkeeping (NodePolicy.mark): its handshake high-water mark and last-seen
time are written on the store's writer thread; the marks made while an earlier write of
them waits or runs go into one transaction, the highest mark and the latest time."""

import threading
from concurrent.futures import ThreadPoolExecutor

from enclave.node.policy import NodePolicy
from enclave.node.settings import Settings
from enclave.store import Store

A = bytes.fromhex("a1" * 32)
B = bytes.fromhex("b2" * 32)
PEM = "-----BEGIN PUBLIC KEY-----\nnot parsed here\n-----END PUBLIC KEY-----\n"


def test_marks_made_while_the_writer_is_busy_share_one_transaction(tmp_path):
    with Store.open(tmp_path / "enclave.db") as store:
        for fp in (A, B):
            store.upsert_peer(fp.hex(), PEM, None, None, 1.0)
        policy = NodePolicy(store, b"\0" * 32, Settings(), 0.0)
        written = []
        mark_peers = store.mark_peers
        store.mark_peers = lambda marks: (written.append(dict(marks)), mark_peers(marks))
        writer = ThreadPoolExecutor(1)
        policy.writer = writer
        try:
            busy = threading.Event()
            writer.submit(busy.wait, 10)  # a commit that takes a while
            policy.record_handshake(A, b"1" * 16, 5000)
            policy.mark(A, seen=20.0)
            policy.record_handshake(A, b"2" * 16, 4000)  # lower: the mark stays at 5000
            policy.mark(B, seen=21.0)
            policy.mark(A, seen=22.0)
            busy.set()
            writer.submit(lambda: None).result(10)
            assert written == [{A.hex(): (5000, 22.0), B.hex(): (None, 21.0)}]
            policy.mark(B, hwm_ms=7)  # the writer is idle: written on its own
            writer.submit(lambda: None).result(10)
            assert written[1:] == [{B.hex(): (7, None)}]
        finally:
            writer.shutdown(wait=True)
        a, b = store.get_peer(A.hex()), store.get_peer(B.hex())
        assert (a.hwm_ms, a.last_seen, b.hwm_ms, b.last_seen) == (5000, 22.0, 7, 21.0)


def test_without_a_writer_a_mark_is_written_at_once(tmp_path):
    with Store.open(tmp_path / "enclave.db") as store:
        store.upsert_peer(A.hex(), PEM, None, None, 1.0)
        policy = NodePolicy(store, b"\0" * 32, Settings(), 0.0)
        policy.mark(A, hwm_ms=9, seen=3.0)
        peer = store.get_peer(A.hex())
        assert (peer.hwm_ms, peer.last_seen) == (9, 3.0)
