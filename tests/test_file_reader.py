"""The sender's chunk cache for one file sent to many (file_io.ChunkReader with
file_send.Recipients), driven without a network: recipients that pull in their own
order and pace, by a seeded script, so that every run checks the same interleavings."""

import os
import random

from enclave.node.file_io import ChunkReader
from enclave.node.file_send import Outgoing, Recipients
from enclave.protocol import files

CHUNK = 64 * 1024
CHUNKS = 200


def source(tmp_path):
    data = os.urandom(CHUNK * CHUNKS)
    path = tmp_path / "film.bin"
    path.write_bytes(data)
    offer = files.make_offer(os.urandom(16), "film.bin", data, chunk_size=CHUNK)
    return str(path), offer, os.stat(path).st_mtime_ns


class Puller:
    """One recipient: keeps WINDOW_CHUNKS chunks asked for, takes them lowest first."""

    def __init__(self, o: Outgoing) -> None:
        self.o = o
        self.next = 0

    def ask(self) -> None:
        while len(self.o.queued) < files.WINDOW_CHUNKS and self.next < CHUNKS:
            self.o.queued.add(self.next)
            self.next += 1

    def take(self, reader: ChunkReader, group: Recipients) -> None:
        index = min(self.o.queued)
        o = self.o
        reader.read(o.path, o.size, o.mtime_ns, o.wire, index, group.for_read())
        o.queued.discard(index)
        o.taken = max(o.taken, index + 1)
        self.ask()


def recipients(tmp_path, count: int) -> tuple[Recipients, list[Puller]]:
    path, offer, mtime = source(tmp_path)
    group = Recipients()
    pullers = []
    for key in range(count):
        o = Outgoing(key, bytes([key]), offer, path, offer.size, mtime, False, "transferring")
        group.members.add(o)
        pullers.append(Puller(o))
        pullers[-1].ask()
    return group, pullers


def run(reader, group, pullers, spread: int, seed: int, stalled=()) -> None:
    """Random turns among the recipients not ``stalled`` that are not more than
    ``spread`` chunks ahead of the slowest of them, until they have taken every chunk."""
    rng = random.Random(seed)
    live = [p for p in pullers if p not in stalled]
    while any(p.o.queued for p in live):
        slowest = min(p.o.floor() for p in live)
        able = [p for p in live if p.o.queued and p.o.floor() <= slowest + spread]
        rng.choice(able).take(reader, group)
        assert reader.cached_chunks <= group.worked_out().chunks
        assert reader.held <= 10 * files.WINDOW_CHUNKS * CHUNK


def test_ten_recipients_drifting_apart_read_each_chunk_once(tmp_path):
    """The spread, and the window kept behind the slowest, stay inside the cache (10
    recipients x WINDOW_CHUNKS), whatever the order of their turns: every chunk is read
    from disk exactly once."""
    for seed in range(5):
        reader = ChunkReader()
        group, pullers = recipients(tmp_path, 10)
        spread = 10 * files.WINDOW_CHUNKS - 2 * files.WINDOW_CHUNKS - 1
        run(reader, group, pullers, spread, seed)
        assert reader.reads == CHUNKS, (seed, reader.reads)
        assert reader.hits == 9 * CHUNKS
        assert reader.peak <= 10 * files.WINDOW_CHUNKS * CHUNK


def test_a_stalled_recipient_pins_no_more_than_the_bound_and_holds_nobody(tmp_path):
    """One recipient stops with its window asked for: the others run to the end, the
    cache never holds more than the bound, and they still read each chunk once (the
    chunks evicted were the ones only the stalled one was still to take)."""
    reader = ChunkReader()
    group, pullers = recipients(tmp_path, 3)
    stalled = pullers[0]
    run(reader, group, pullers, spread=files.WINDOW_CHUNKS, seed=1, stalled=(stalled,))
    assert all(p.next == CHUNKS and not p.o.queued for p in pullers[1:])
    bound = 3 * files.WINDOW_CHUNKS
    assert group.worked_out().chunks == max(16, bound)
    assert reader.peak <= max(16, bound) * CHUNK
    assert reader.reads == CHUNKS
    stalled.o.away = True  # its session went: the last one left pins nothing
    for p in pullers[1:]:
        group.members.discard(p.o)
    reader.retain(stalled.o.source, group.worked_out())
    assert reader.held == 0 and reader.cached_chunks == 0


def test_a_single_recipient_keeps_only_a_window_behind_what_it_takes(tmp_path):
    reader = ChunkReader()
    group, pullers = recipients(tmp_path, 1)
    run(reader, group, pullers, spread=CHUNKS, seed=0)
    assert reader.reads == CHUNKS
    assert reader.peak <= (files.WINDOW_CHUNKS + 1) * CHUNK  # chunks below its floor go


def test_the_cache_is_bounded_in_bytes_over_all_files(tmp_path):
    reader = ChunkReader(cache_bytes=5 * CHUNK)
    group, pullers = recipients(tmp_path, 10)
    run(reader, group, pullers, spread=CHUNKS, seed=2)
    assert reader.peak <= 5 * CHUNK
