"""Microbenchmarks of the v2 traffic layer: AEAD records and the message codec.

Run: ``pytest bench/bench_protocol.py --benchmark-only``. Each benchmark states in
``extra_info["unit"]`` what one timed call covers, and in ``extra_info["ops"]`` how many
frames or chats that is (the convention of bench/conftest.py), so that a median divides
into a per-frame or per-chat figure (``--benchmark-json`` keeps both).

Budget (DESIGN.md "Budgets"): >= 100,000 durable msgs/s end to end on 2 cores, so the
codec and the record layer together must cost well under 2 us per 100-byte chat.
"""

import os

import pytest

from enclave.protocol.messages import Chat, decode_batch, encode_batch, encode_chat_batch
from enclave.protocol.records import APP, RecordReceiver, RecordSender

SECRET = bytes(range(32))
FRAMES = 1000  # frames per round for the record benchmarks (seq must stay in order)
SIZES = [1, 64, 1024]


def make_chats(count: int) -> list[Chat]:
    sender, recipient = os.urandom(32), os.urandom(32)
    return [
        Chat(os.urandom(16), sender, recipient, 1_700_000_000_000 + n, "x" * 100)
        for n in range(count)
    ]


def per(benchmark, count: int, unit: str) -> None:
    benchmark.extra_info["ops"] = count
    benchmark.extra_info["unit"] = unit
    benchmark.extra_info["each"] = "chat" if "chats" in unit else "frame"  # what one op is


# --- records: one seal or open per frame ---


@pytest.mark.parametrize("size", [128, 8192, 65536])
def test_seal(benchmark, size):
    body = os.urandom(size)

    def seal_frames(sender):
        for _ in range(FRAMES):
            sender.seal(APP, body, 0.0)

    per(benchmark, FRAMES, f"seal {FRAMES} frames of {size} B")
    benchmark.pedantic(seal_frames, setup=lambda: ((RecordSender(SECRET, 0.0),), {}), rounds=50)


@pytest.mark.parametrize("size", [128, 8192, 65536])
def test_open(benchmark, size):
    sender = RecordSender(SECRET, 0.0)
    payloads = [sender.seal(APP, os.urandom(size), 0.0)[4:] for _ in range(FRAMES)]

    def open_frames(receiver):
        for payload in payloads:
            receiver.open(payload)

    per(benchmark, FRAMES, f"open {FRAMES} frames of {size} B")
    benchmark.pedantic(open_frames, setup=lambda: ((RecordReceiver(SECRET, 0.0),), {}), rounds=50)


def test_seal_many_64(benchmark):
    bodies = [os.urandom(128)] * 64
    sender = RecordSender(SECRET, 0.0)
    per(benchmark, 64, "seal_many of 64 frames of 128 B")
    benchmark(sender.seal_many, APP, bodies, 0.0)


def test_seal_with_cipher_dropped_each_time(benchmark):
    # What an AESGCM per call would cost: the case for caching it while busy.
    body = os.urandom(128)
    sender = RecordSender(SECRET, 0.0)

    def seal_cold():
        sender.drop_cipher()
        sender.seal(APP, body, 0.0)

    per(benchmark, 1, "drop_cipher + seal of 128 B")
    benchmark(seal_cold)


# --- codec: one batch of 100-character chats ---


@pytest.mark.parametrize("size", SIZES)
def test_encode_batch(benchmark, size):
    chats = make_chats(size)
    per(benchmark, size, f"encode_batch of {size} chats")
    benchmark(encode_batch, chats)


@pytest.mark.parametrize("size", SIZES)
def test_encode_chat_batch(benchmark, size):
    chats = make_chats(size)
    per(benchmark, size, f"encode_chat_batch of {size} chats")
    benchmark(encode_chat_batch, chats)


@pytest.mark.parametrize("size", SIZES)
def test_decode_batch(benchmark, size):
    body = encode_batch(make_chats(size))
    per(benchmark, size, f"decode_batch of {size} chats")
    benchmark(decode_batch, body)


# --- both together: what one side pays per chat ---


@pytest.mark.parametrize("size", SIZES)
def test_encode_and_seal(benchmark, size):
    chats = make_chats(size)
    sender = RecordSender(SECRET, 0.0)
    per(benchmark, size, f"encode_chat_batch + seal of {size} chats")
    benchmark(lambda: sender.seal(APP, encode_chat_batch(chats), 0.0))


@pytest.mark.parametrize("size", SIZES)
def test_open_and_decode(benchmark, size):
    body = encode_chat_batch(make_chats(size))
    sender = RecordSender(SECRET, 0.0)
    payloads = [sender.seal(APP, body, 0.0)[4:] for _ in range(20)]

    def open_all(receiver):
        for payload in payloads:
            decode_batch(receiver.open(payload)[1])

    per(benchmark, size * len(payloads), f"open + decode_batch of 20 x {size} chats")
    benchmark.pedantic(open_all, setup=lambda: ((RecordReceiver(SECRET, 0.0),), {}), rounds=30)
