"""File transfer in the sans-IO core (docs/PROTOCOL.md, "File transfer"): the FILE
record's messages on an in-memory pair, the pure helpers, and a hostile contact.

Where each check lives: the codec (file_messages.py) refuses what is malformed on its
own and closes the session (``bad_file_message``); what needs a transfer's state -- an
unknown id, a range past the offer's chunks, a piece of the wrong length, a digest --
is the host's, and ``support.file_host.Host`` plays the node's transfer engine.
"""

import os

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.file_host import REASON, Host
from support.fuzzing import examples, fuzz
from support.protocol_pair import Pair, chats, closed_reason, received, run

from enclave.errors import PeerError, UsageError
from enclave.protocol import files
from enclave.protocol.connection import Limits
from enclave.protocol.events import (
    FileCancelled,
    FileChunkReceived,
    FileDelivered,
    FileOffered,
    FileRequested,
    MessagesReceived,
)
from enclave.protocol.file_messages import (
    MIN_CHUNK_SIZE,
    PIECE_SIZE,
    SHA256,
    FileChunk,
    FileOffer,
    _decode_strict,
    decode_file_message,
    encode_chunk_led,
    encode_file_message,
)
from enclave.protocol.records import APP, FILE

TID = bytes(range(16))


def exchange(p: Pair, alice: Host, bob: Host, rounds: int = 400) -> None:
    """Pump the pair and let both hosts react, until nothing more happens."""
    for _ in range(rounds):
        ni, nr = len(p.ev_i), len(p.ev_r)
        p.pump(rounds=100)
        if len(p.ev_i) == ni and len(p.ev_r) == nr:
            return
        alice.handle(p.ev_i[ni:])
        bob.handle(p.ev_r[nr:])
    raise AssertionError("the transfer never went quiet")


def hosts(p: Pair, **kw) -> tuple[Host, Host]:
    return Host(p.i, **kw), Host(p.r, **kw)


# --- the round trip ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "chunk_size", "window"),
    [(2 * 1024 * 1024 + 777, None, 3), (5 * MIN_CHUNK_SIZE + 1, MIN_CHUNK_SIZE, 2), (0, None, 8)],
)
def test_offer_request_chunks_done_round_trip(rsa_keys, size, chunk_size, window):
    p = Pair(rsa_keys).handshake()
    alice, bob = hosts(p, window=window)
    data = os.urandom(size)
    offer = files.make_offer(TID, "holiday photos.tar", data, chunk_size=chunk_size)
    alice.offer(offer, data)
    exchange(p, alice, bob)
    assert [e.offer for e in p.events("r", FileOffered)] == [offer]
    bob.accept(TID)
    exchange(p, alice, bob)
    if size:
        assert bob.data(TID) == data
        requested = [r for e in p.events("i", FileRequested) for r in e.ranges]
        assert sum(b - a for a, b in requested) == len(offer.digests)  # each chunk once
        assert len(p.events("r", FileChunkReceived)) == sum(
            files.piece_count(offer, i) for i in range(len(offer.digests))
        )
    assert alice.delivered == [TID] and not bob.refusals
    assert p.i.established and p.r.established


def test_sha256_offers_are_accepted_too(rsa_keys):
    p = Pair(rsa_keys).handshake()
    alice, bob = hosts(p)
    data = os.urandom(3 * MIN_CHUNK_SIZE)
    offer = files.make_offer(TID, "a", data, chunk_size=MIN_CHUNK_SIZE, algorithm=SHA256)
    assert offer.file_digest == __import__("hashlib").sha256(data).digest()
    alice.offer(offer, data)
    exchange(p, alice, bob)
    bob.accept(TID)
    exchange(p, alice, bob)
    assert bob.data(TID) == data and alice.delivered == [TID]


def test_resumption_requests_only_the_missing_chunks(rsa_keys):
    """Bob held chunks 0 and 2 from an earlier session: on a new one he asks for the
    rest, and only the rest travels."""
    data = os.urandom(5 * MIN_CHUNK_SIZE - 3)
    offer = files.make_offer(TID, "a.bin", data, chunk_size=MIN_CHUNK_SIZE)
    held = {i: data[i * MIN_CHUNK_SIZE : (i + 1) * MIN_CHUNK_SIZE] for i in (0, 2)}
    p = Pair(rsa_keys).handshake()  # the new session
    alice, bob = hosts(p)
    alice.offer(offer, data)  # the engine re-offers (or restores) its transfer
    exchange(p, alice, bob)
    bob.accept(TID, have=held)
    exchange(p, alice, bob)
    assert [e.ranges for e in p.events("i", FileRequested)] == [((1, 2), (3, 5))]
    assert {e.index for e in p.events("r", FileChunkReceived)} == {1, 3, 4}
    assert bob.data(TID) == data and alice.delivered == [TID]


def test_missing_ranges_fills_a_window_and_caps_ranges():
    assert files.missing_ranges(10, {0, 1, 5}, 100) == ((2, 5), (6, 10))
    assert files.missing_ranges(10, {0, 1, 5}, 4) == ((2, 5), (6, 7))
    assert files.missing_ranges(3, {0, 1, 2}) == ()
    every_other = files.missing_ranges(1000, range(0, 1000, 2), 1000)
    assert len(every_other) == 64 and every_other[0] == (1, 2)  # MAX_RANGES


def test_choose_chunk_size_keeps_offers_inside_one_record():
    assert files.choose_chunk_size(0) == 1 << 20
    assert files.choose_chunk_size(16 << 30) == 1 << 20  # 16,384 chunks of 1 MiB
    assert files.choose_chunk_size((16 << 30) + 1) == 2 << 20
    assert files.choose_chunk_size(64 << 30) == 4 << 20
    with pytest.raises(UsageError):
        files.choose_chunk_size((64 << 30) + 1)
    digests = tuple(bytes(32) for _ in range(16_384))
    biggest = FileOffer(TID, "é" * 127, 64 << 30, 4 << 20, 2, bytes(32), digests)
    assert len(encode_file_message(biggest)) < 600 * 1024


# --- the helpers' checks -----------------------------------------------------------------


def test_a_tampered_chunk_is_detected():
    data = os.urandom(3 * MIN_CHUNK_SIZE + 10)
    offer = files.make_offer(TID, "a", data, chunk_size=MIN_CHUNK_SIZE)
    chunk = data[MIN_CHUNK_SIZE : 2 * MIN_CHUNK_SIZE]
    assert files.verify_chunk(offer, 1, chunk)
    flipped = bytes([chunk[0] ^ 1]) + chunk[1:]
    assert not files.verify_chunk(offer, 1, flipped)
    assert not files.verify_chunk(offer, 0, chunk) or chunk == data[:MIN_CHUNK_SIZE]
    assert not files.verify_chunk(offer, 1, chunk[:-1])  # wrong length
    assert not files.verify_chunk(offer, 4, b"x")  # no such chunk
    assert files.verify_chunk(offer, 3, data[3 * MIN_CHUNK_SIZE :])  # the short last one
    parts = [data[i : i + MIN_CHUNK_SIZE] for i in range(0, len(data), MIN_CHUNK_SIZE)]
    assert files.verify_file(offer, parts)
    assert not files.verify_file(offer, [parts[1], parts[0], *parts[2:]])
    assert not files.verify_file(offer, parts[:-1])


def test_pieces_and_assembly():
    data = os.urandom(2 * PIECE_SIZE + 5)
    offer = files.make_offer(TID, "a", data, chunk_size=1 << 20)
    messages = files.chunk_messages(TID, 0, data)
    assert [len(m.data) for m in messages] == [PIECE_SIZE, PIECE_SIZE, 5]
    assert [files.piece_length(offer, 0, k) for k in range(4)] == [PIECE_SIZE, PIECE_SIZE, 5, None]
    pieces = {m.piece: m.data for m in messages}
    assert files.assemble(offer, 0, pieces) == data
    assert files.assemble(offer, 0, {0: pieces[0], 1: pieces[1]}) is None
    assert files.assemble(offer, 0, {**pieces, 2: bytes(pieces[2]) + b"x"}) is None
    assert files.worth_compressing(1000, 900) and not files.worth_compressing(1000, 901)


# --- the bulk path: pieces built in place and read as views ---------------------------


@pytest.mark.parametrize("size", [1, 255, 256, 65_535, 65_536, PIECE_SIZE])
@pytest.mark.parametrize("index", [0, 127, 128, 65_536, 16_383])
def test_a_piece_built_in_place_is_the_codec_bytes_and_reads_back_as_a_view(size, index):
    data = os.urandom(size)
    chunk = FileChunk(TID, min(index, 16_383), 3, 1, memoryview(data))
    body = encode_chunk_led(chunk)
    assert bytes(body[1:]) == encode_file_message(FileChunk(TID, chunk.index, 3, 1, data))
    back = decode_file_message(memoryview(bytes(body))[1:])
    assert type(back.data) is memoryview and bytes(back.data) == data
    assert (back.transfer_id, back.index, back.piece, back.flags) == (TID, chunk.index, 3, 1)


def outcome(decode, body):
    try:
        m = decode(body)
    except PeerError as err:
        return ("refused", err.reason)
    return (type(m).__name__, m.transfer_id, m.index, m.piece, m.flags, bytes(m.data))


def chunk_bodies():
    """Canonical pieces, then the same fields in every other msgpack form (wider ints
    and bins), then damaged ones: cut, grown, bit-flipped at every header byte."""
    canonical = encode_file_message(FileChunk(TID, 300, 2, 1, b"payload"))
    yield canonical
    yield msgpack.packb([9, TID, 300, 2, 1, b"payload"], use_bin_type=True)
    wide = b"\x96\x09\xc4\x10" + TID + b"\xcf" + (300).to_bytes(8, "big")
    yield wide + b"\xcd\x00\x02\xcc\x01\xc6\x00\x00\x00\x07payload"
    yield wide + b"\x02\x01\xc5\x00\x07payload"
    for cut in range(len(canonical)):
        yield canonical[:cut]
    yield canonical + b"\x00"
    yield canonical[:-8] + b"\xc4\x08payload"  # claims one byte more than there is
    for at in range(len(canonical) - 7):
        for bit in range(8):
            flipped = bytearray(canonical)
            flipped[at] ^= 1 << bit
            yield bytes(flipped)
    yield msgpack.packb([9, TID, 1, 0, 0, b""], use_bin_type=True)  # empty data
    yield msgpack.packb([9, TID, 1, 0, 0, b"x" * (PIECE_SIZE + 1)], use_bin_type=True)
    yield msgpack.packb([9, TID, 16_384, 0, 0, b"x"], use_bin_type=True)  # index too big
    yield msgpack.packb([9, TID, 1, 0, 2, b"x"], use_bin_type=True)  # unknown flag


def test_the_view_reader_and_the_strict_decoder_agree_on_every_body():
    bodies = list(chunk_bodies())
    assert len(bodies) > 200
    kinds = set()
    for body in bodies:
        strict = outcome(_decode_strict, body)
        assert outcome(decode_file_message, memoryview(body)) == strict, body
        assert outcome(decode_file_message, body) == strict, body
        kinds.add(strict[0])
    assert kinds == {"FileChunk", "refused"}


# --- a hostile, authenticated contact ----------------------------------------------------


def inject(p: Pair, body: bytes, rtype: int = FILE) -> list:
    """Alice's session seals ``body`` as she likes; Bob's connection reads it."""
    frame = p.i._tx.seal(rtype, body, p.now)
    return run(p.r, p.r.receive_data(frame, p.now), p.now)


def pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


D = bytes(32)
GOOD_OFFER = [7, TID, "a.bin", 3 * MIN_CHUNK_SIZE, MIN_CHUNK_SIZE, 2, D, [D, D, D]]


def offer_with(**changes) -> bytes:
    fields = list(GOOD_OFFER)
    names = ["code", "tid", "name", "size", "chunk_size", "algorithm", "file_digest", "digests"]
    for key, value in changes.items():
        fields[names.index(key)] = value
    return pack(fields)


FILE_EVENTS = (FileOffered, FileRequested, FileChunkReceived, FileCancelled, FileDelivered)

MALFORMED = {
    "truncated offer": pack(GOOD_OFFER)[:-7],
    "trailing byte": pack(GOOD_OFFER) + b"\xc0",
    "empty record": b"",
    "nested past the stack": b"\x91" * 1100 + b"\xc0",
    "a 1-element array of arrays": pack([[11, TID]]),
    "a map": pack({"code": 7}),
    "an ext": pack([11, msgpack.ExtType(1, b"x")]),
    "unknown code": pack([12, TID]),
    "a chat code": pack([5, True]),
    "short arity": pack(GOOD_OFFER[:-1]),
    "tid 15 bytes": offer_with(tid=TID[:15]),
    "tid as str": offer_with(tid="0123456789abcdef"),
    "empty name": offer_with(name=""),
    "name of 256 bytes": offer_with(name="x" * 256),
    "name as bytes": offer_with(name=b"a.bin"),
    "name not UTF-8": pack(GOOD_OFFER).replace(b"a.bin", b"a\xffbin"),
    "size as bool": offer_with(size=True),
    "negative size": offer_with(size=-1),
    "size as float": offer_with(size=3.0 * MIN_CHUNK_SIZE),
    "absurd size": offer_with(size=(1 << 40), chunk_size=4 << 20, digests=[D] * 16),
    "chunk size not a power of two": offer_with(chunk_size=MIN_CHUNK_SIZE + 1),
    "chunk size too small": offer_with(chunk_size=MIN_CHUNK_SIZE // 2, digests=[D] * 6),
    "chunk size too large": offer_with(chunk_size=8 << 20, size=8 << 20, digests=[D]),
    "unknown algorithm": offer_with(algorithm=3),
    "file digest short": offer_with(file_digest=D[:31]),
    "a digest long": offer_with(digests=[D, D, D + b"x"]),
    "too few digests": offer_with(digests=[D, D]),
    "too many digests": offer_with(digests=[D] * 4),
    "digests not a list": offer_with(digests=D * 3),
    "more digests than an array may hold": offer_with(digests=[D] * 16_385),
    "request no ranges": pack([8, TID, []]),
    "request range past MAX_CHUNKS": pack([8, TID, [[0, 16_385]]]),
    "request empty range": pack([8, TID, [[3, 3]]]),
    "request overlapping ranges": pack([8, TID, [[0, 4], [3, 5]]]),
    "request descending ranges": pack([8, TID, [[5, 6], [0, 1]]]),
    "request too many ranges": pack([8, TID, [[2 * k, 2 * k + 1] for k in range(65)]]),
    "request too many chunks": pack([8, TID, [[0, 1025]]]),
    "request range of three": pack([8, TID, [[0, 1, 2]]]),
    "request negative start": pack([8, TID, [[-1, 1]]]),
    "chunk piece 16": pack([9, TID, 0, 16, 0, b"x"]),
    "chunk index past MAX_CHUNKS": pack([9, TID, 16_384, 0, 0, b"x"]),
    "chunk unknown flag": pack([9, TID, 0, 0, 2, b"x"]),
    "chunk empty data": pack([9, TID, 0, 0, 0, b""]),
    "chunk data too long": pack([9, TID, 0, 0, 0, b"x" * (PIECE_SIZE + 1)]),
    "chunk data as str": pack([9, TID, 0, 0, 0, "x"]),
    "cancel reason 0": pack([10, TID, 0]),
    "cancel reason 99": pack([10, TID, 99]),
    "done tid 17 bytes": pack([11, TID + b"x"]),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_file_messages_close_the_session_cleanly(rsa_keys, body):
    p = Pair(rsa_keys).handshake()
    events = inject(p, body)
    assert closed_reason(events) == "bad_file_message"
    assert not [e for e in events if isinstance(e, FILE_EVENTS)]
    assert p.r.closed


def test_a_file_message_inside_a_chat_batch_is_an_unknown_message(rsa_keys):
    p = Pair(rsa_keys).handshake()
    assert closed_reason(inject(p, pack([[11, TID]]), APP)) == "bad_message"


def test_the_largest_well_formed_messages_pass(rsa_keys):
    p = Pair(rsa_keys).handshake()
    digests = [D] * 16_384
    offer = offer_with(name="é" * 127, size=64 << 30, chunk_size=4 << 20, digests=digests)
    ranges = [[2 * k, 2 * k + 16] for k in range(0, 64 * 16, 16)]
    for body in (
        offer,
        pack([8, TID, ranges]),
        pack([9, TID, 16_383, 15, 1, b"x" * PIECE_SIZE]),
        pack([10, TID, 11]),
    ):
        events = inject(p, body)
        assert len(events) == 1 and isinstance(events[0], FILE_EVENTS), events
    assert p.r.established


# --- refusals that need a transfer's state: the host's, and the session goes on ---------


def chat_still_flows(p: Pair) -> None:
    before = len(received(p))
    p.i.send_chats(chats(p, 1, start=before))
    p.pump()
    assert len(received(p)) == before + 1 and p.i.established and p.r.established


def test_a_chunk_for_an_unknown_transfer_reaches_the_host_which_refuses_it(rsa_keys):
    p = Pair(rsa_keys).handshake()
    alice, bob = hosts(p)
    p.i.send_file_chunk(FileChunk(TID, 0, 0, 0, b"unasked for"))
    exchange(p, alice, bob)
    assert p.events("r", FileChunkReceived) == [FileChunkReceived(TID, 0, 0, False, b"unasked for")]
    assert bob.refusals == [(TID, "unknown_transfer")]
    assert alice.cancelled == [(TID, REASON["unknown_transfer"])]
    chat_still_flows(p)


def test_offers_beyond_the_pending_quota_bad_names_and_reused_ids_are_refused(rsa_keys):
    p = Pair(rsa_keys).handshake()
    alice, bob = hosts(p, max_pending_offers=2)
    data = b"x" * 10
    tids = [bytes([k]) * 16 for k in range(5)]
    names = ["a", "..", "b", "c", "d"]
    for tid, name in zip(tids, names, strict=True):
        alice.offer(files.make_offer(tid, name, data), data)
    p.i.send_file_offer(files.make_offer(tids[0], "again", data))  # a reused id
    exchange(p, alice, bob)
    assert bob.refusals == [
        (tids[1], "bad_name"),
        (tids[3], "too_many_offers"),
        (tids[4], "too_many_offers"),
        (tids[0], "duplicate"),
    ]
    assert sorted(bob.incoming) == [tids[0], tids[2]]
    chat_still_flows(p)


def test_a_request_past_the_offer_is_refused_by_the_sender(rsa_keys):
    p = Pair(rsa_keys).handshake()
    alice, bob = hosts(p)
    data = os.urandom(2 * MIN_CHUNK_SIZE)
    alice.offer(files.make_offer(TID, "a", data, chunk_size=MIN_CHUNK_SIZE), data)
    exchange(p, alice, bob)
    p.r.send_file_request(TID, [(1, 3)])  # well formed, but the offer has 2 chunks
    p.r.send_file_request(bytes(16), [(0, 1)])  # no such offer
    exchange(p, alice, bob)
    assert alice.refusals == [(TID, "flow"), (bytes(16), "unknown_transfer")]
    assert not p.events("r", FileChunkReceived)
    chat_still_flows(p)


@pytest.mark.parametrize("bad_sends", [1, 2, 3])
def test_a_chunk_failing_its_digest_is_refetched_then_the_transfer_fails(rsa_keys, bad_sends):
    p = Pair(rsa_keys).handshake()
    alice, bob = hosts(p)
    data = os.urandom(3 * MIN_CHUNK_SIZE)
    sent = {"bad": 0}

    def corrupt(index, chunk):
        if index == 1 and sent["bad"] < bad_sends:
            sent["bad"] += 1
            return chunk[:-1] + bytes([chunk[-1] ^ 0xFF])
        return chunk

    alice.corrupt = corrupt
    alice.offer(files.make_offer(TID, "a", data, chunk_size=MIN_CHUNK_SIZE), data)
    exchange(p, alice, bob)
    bob.accept(TID)
    exchange(p, alice, bob)
    if bad_sends < files.MAX_CHUNK_FAILURES:
        assert bob.data(TID) == data and alice.delivered == [TID]
    else:
        assert bob.refusals == [(TID, "corrupt")] and not alice.delivered
        assert alice.cancelled == [(TID, REASON["corrupt"])]
        assert 1 not in bob.incoming[TID].chunks  # nothing unverified was kept
    chat_still_flows(p)


@pytest.mark.parametrize("attack", ["replay", "reorder", "drop"])
def test_replayed_reordered_or_dropped_file_records_end_the_session(rsa_keys, attack):
    p = Pair(rsa_keys).handshake()
    frames = []
    for k in range(3):
        p.i.send_file_chunk(FileChunk(TID, k, 0, 0, b"piece %d" % k))
        frames.append(p.i.data_to_send(p.now))
    if attack == "replay":
        frames.insert(1, frames[0])
    elif attack == "reorder":
        frames[1], frames[2] = frames[2], frames[1]
    else:
        del frames[1]
    events = run(p.r, p.r.receive_data(b"".join(frames), p.now), p.now)
    assert closed_reason(events) == "bad_record_mac"
    assert [e.index for e in events if isinstance(e, FileChunkReceived)] == [0]


# --- priority and the bulk queue ---------------------------------------------------------


def pieces(n: int, tid: bytes = TID) -> list[FileChunk]:
    return [FileChunk(tid, k // 4, k % 4, 0, bytes([k % 251]) * PIECE_SIZE) for k in range(n)]


def order(events: list) -> list[str]:
    kinds = {MessagesReceived: "chat", FileChunkReceived: "piece", FileOffered: "offer"}
    return [kinds[type(e)] for e in events if type(e) in kinds]


def test_chats_queued_after_file_pieces_are_written_first(rsa_keys):
    p = Pair(rsa_keys).handshake()
    for piece in pieces(8):
        p.i.send_file_chunk(piece)
    p.i.send_file_offer(files.make_offer(bytes(16), "b", b"x"))
    p.i.send_chats(chats(p, 2))
    p.pump()
    assert order(p.ev_r) == ["chat", "offer"] + ["piece"] * 8


def test_a_bulk_budget_releases_pieces_a_few_at_a_time(rsa_keys):
    p = Pair(rsa_keys).handshake()
    for piece in pieces(12):
        p.i.send_file_chunk(piece)
    queued = p.i.bulk_queued
    assert queued > 12 * PIECE_SIZE and p.i.bulk_room == Limits().bulk_queue - queued
    wire = p.i.data_to_send(p.now, bulk_budget=2 * PIECE_SIZE)
    assert 2 * PIECE_SIZE < len(wire) < 3 * PIECE_SIZE  # two pieces, then the budget is spent
    p.ev_r += run(p.r, p.r.receive_data(wire, p.now), p.now)
    p.i.send_chats(chats(p, 1))  # a chat written while ten pieces still wait
    wire = p.i.data_to_send(p.now, bulk_budget=1)
    p.ev_r += run(p.r, p.r.receive_data(wire, p.now), p.now)
    assert order(p.ev_r) == ["piece", "piece", "chat", "piece"]
    assert p.i.data_to_send(p.now, bulk_budget=0) == b""
    p.pump()  # no budget: the rest
    assert order(p.ev_r).count("piece") == 12 and p.i.bulk_queued == 0


def test_the_bulk_queue_is_bounded_and_a_cancel_drops_its_pieces(rsa_keys):
    p = Pair(rsa_keys, limits=Limits(bulk_queue=5 * PIECE_SIZE)).handshake()
    other = bytes(16)
    for a, b in zip(pieces(2), pieces(2, other), strict=True):
        p.i.send_file_chunk(a)
        p.i.send_file_chunk(b)
    with pytest.raises(UsageError):
        for piece in pieces(2, other):
            p.i.send_file_chunk(piece)
    p.i.send_file_cancel(TID, REASON["cancelled"])
    assert p.i.bulk_room > 2 * PIECE_SIZE
    p.pump()
    assert p.events("r", FileCancelled) == [FileCancelled(TID, REASON["cancelled"])]
    assert {e.transfer_id for e in p.events("r", FileChunkReceived)} == {other}


def test_close_sends_a_queued_cancel_and_drops_queued_pieces(rsa_keys):
    p = Pair(rsa_keys).handshake()
    p.i.send_file_chunk(pieces(1)[0])
    p.i.send_file_cancel(bytes(16), REASON["local_error"])
    p.ev_i += p.i.close(p.now)
    p.pump()
    assert p.events("r", FileCancelled) == [FileCancelled(bytes(16), REASON["local_error"])]
    assert not p.events("r", FileChunkReceived) and p.r.close_reason == "peer_closed"
    assert p.i.bulk_queued == 0


def test_sending_malformed_file_messages_is_local_misuse(rsa_keys):
    p = Pair(rsa_keys)
    with pytest.raises(UsageError):
        p.i.send_file_done(TID)  # not established
    p.handshake()
    misuse = [
        lambda: p.i.send_file_offer(FileOffer(TID, "", 0, 1 << 20, 2, D, ())),
        lambda: p.i.send_file_offer(FileOffer(TID, "\ud800", 0, 1 << 20, 2, D, ())),
        lambda: p.i.send_file_request(TID, []),
        lambda: p.i.send_file_request(TID, [(2, 1)]),
        lambda: p.i.send_file_chunk(FileChunk(TID, 0, 0, 4, b"x")),
        lambda: p.i.send_file_chunk(FileChunk(TID, 0, 0, 0, b"x" * (PIECE_SIZE + 1))),
        lambda: p.i.send_file_chunk(pack([9, TID, 0, 0, 0, b"x"])),
        lambda: p.i.send_file_cancel(TID, 0),
        lambda: p.i.send_file_done(TID[:8]),
    ]
    for call in misuse:
        with pytest.raises(UsageError):
            call()
    assert p.i.data_to_send(p.now) == b"" and p.i.bulk_queued == 0


# --- fuzz: nothing but the clean refusal escapes the decoder -----------------------------

_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), (1 << 64) - 1)
    | st.floats()
    | st.binary(max_size=40)
    | st.sampled_from([TID, D])
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=16,
)
_shaped = st.builds(
    lambda code, rest: pack([code, *rest]), st.integers(0, 13), st.lists(_values, max_size=8)
)
_valid = st.sampled_from(
    [
        pack(GOOD_OFFER),
        pack([8, TID, [[0, 3], [5, 9]]]),
        pack([9, TID, 1, 2, 1, b"abc"]),
        pack([10, TID, 6]),
        pack([11, TID]),
    ]
)
_mutated = st.builds(
    lambda body, at, byte: body[: at % (len(body) + 1)] + bytes([byte]) + body[at % (len(body) + 1) + 1 :],
    _valid, st.integers(0, 1 << 16), st.integers(0, 255),
)  # fmt: skip


def _decode_or_refuse(body: bytes):
    try:
        message = decode_file_message(body)
    except PeerError as err:
        assert err.reason == "bad_file_message"
        return None
    assert decode_file_message(encode_file_message(message)) == message
    return message


@settings(max_examples=examples(400), deadline=None)
@given(body=st.binary(max_size=200) | _shaped | _mutated)
def test_random_bytes_into_the_decoder_only_ever_refuse_cleanly(body):
    _decode_or_refuse(body)


@fuzz(60)
@given(bodies=st.lists(st.binary(max_size=80) | _shaped | _mutated | _valid, max_size=4))
def test_random_file_records_on_a_session_never_escape(rsa_keys, bodies):
    p = Pair(rsa_keys).handshake()
    expected = [_decode_or_refuse(body) for body in bodies]
    frames = b"".join(p.i._tx.seal(FILE, body, p.now) for body in bodies)
    events = run(p.r, p.r.receive_data(frames, p.now), p.now)
    good = expected[: expected.index(None)] if None in expected else expected
    assert len([e for e in events if isinstance(e, FILE_EVENTS)]) == len(good)
    assert p.r.established == (None not in expected)
    if not p.r.established:
        assert closed_reason(events) == "bad_file_message"


def test_an_offer_built_chunk_by_chunk_is_the_offer_of_the_whole():
    data = os.urandom(2 * MIN_CHUNK_SIZE + 9)
    builder = files.OfferBuilder(MIN_CHUNK_SIZE)
    for start in range(0, len(data), MIN_CHUNK_SIZE):
        builder.add(data[start : start + MIN_CHUNK_SIZE])
    assert builder.offer(TID, "a") == files.make_offer(TID, "a", data, chunk_size=MIN_CHUNK_SIZE)
    with pytest.raises(UsageError):
        builder.add(b"x")  # nothing after the short last chunk
    with pytest.raises(UsageError):
        files.OfferBuilder(MIN_CHUNK_SIZE).add(b"x" * (MIN_CHUNK_SIZE + 1))
