"""Legacy version-1 envelope (PROTOCOL.md d; the F3, F9 and F10 rows of e).

The other side of every exchange is ``seed_client``: an independent re-creation of
the original client, used as the seed sender and as the strict reference reader.
Every refusal asserts the reason code and that the receiver spent no private
operation unless the refusal comes from the decrypt step itself.
"""

import math
import struct
import uuid

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st
from support import seed_client as seed
from support.fuzzing import fuzz

from enclave.errors import PeerError, UsageError
from enclave.protocol import legacy
from enclave.protocol.crypto import Identity, PeerKey, sha256

NOW = 1_750_000_000.25
LABEL_I = b"Enclave v2 wrap, initiator to responder"
LABEL_R = b"Enclave v2 wrap, responder to initiator"


class Party:
    """One user: raw keys for the seed client, Identity/PeerKey for Enclave."""

    def __init__(self, private: rsa.RSAPrivateKey) -> None:
        self.private = private
        self.public = private.public_key()
        self.identity = Identity(private)  # fresh counter per test
        self.key = PeerKey(self.public)
        self.fp = seed.fingerprint(self.public)
        self.nbytes = self.identity.modulus_bytes


@pytest.fixture(scope="module")
def private_keys():
    return [rsa.generate_private_key(public_exponent=65537, key_size=4096) for _ in range(3)]


@pytest.fixture
def alice(private_keys):
    return Party(private_keys[0])


@pytest.fixture
def bob(private_keys):
    return Party(private_keys[1])


@pytest.fixture
def mallory(private_keys):
    return Party(private_keys[2])


# ---------------------------------------------------------------- helpers


def receive(me: Party, sender: Party, frame: bytes, now: float = NOW) -> str:
    """The node's order of the v1 steps that belong to this module."""
    env = legacy.parse(frame, me.nbytes)
    legacy.check_time(env, now)
    legacy.verify(env, sender.key)
    return legacy.open_text(me.identity, env)


def authenticate(me: Party, sender: Party, frame: bytes, now: float = NOW) -> legacy.Envelope:
    """Everything before the private operation."""
    env = legacy.parse(frame, me.nbytes)
    legacy.check_time(env, now)
    legacy.verify(env, sender.key)
    return env


def refused(reason: str, me: Party, fn, *args, private_ops: int = 0) -> PeerError:
    before = me.identity.private_ops
    with pytest.raises(PeerError) as info:
        fn(*args)
    assert info.value.reason == reason, info.value
    assert me.identity.private_ops - before == private_ops
    return info.value


def fields_of(frame: bytes) -> tuple[dict, bytes]:
    fields = seed.unpack(frame)
    return fields, fields.pop("signature")


def forge(sender: Party, recipient: Party, text="hi", **changes) -> bytes:
    """A seed envelope with ``changes`` applied to the signed fields, validly signed."""
    fields = seed.seed_fields(sender.private, recipient.public, text, timestamp=NOW)
    fields.update(changes)
    return seed.sign_fields(sender.private, fields)


def reencode(frame: bytes, key: str | None = None, *, raw_key=None, raw_value=None, header=None):
    """Re-emit ``frame`` item by item, with chosen raw bytes for one key or value."""
    pairs = msgpack.unpackb(frame, raw=False, object_pairs_hook=list)
    out = bytearray(header if header is not None else bytes([0x80 | len(pairs)]))
    for name, value in pairs:
        mine = name == key
        out += raw_key if mine and raw_key is not None else seed.pack(name)
        out += raw_value if mine and raw_value is not None else seed.pack(value)
    return bytes(out)


def flip(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


# ------------------------------------------------------------ interop


def test_seed_envelope_is_accepted(alice, bob):
    text = "héllo, Bob 🌍"
    frame = seed.seal(alice.private, bob.public, text, timestamp=NOW)
    env = authenticate(bob, alice, frame)
    assert bob.identity.private_ops == 0
    assert legacy.open_text(bob.identity, env) == text
    assert bob.identity.private_ops == 1
    assert env.sender == alice.fp
    assert uuid.UUID(env.message_id).version == 4
    assert env.timestamp == NOW
    assert env.key_hash == sha256(env.encrypted_key)
    assert env.signed == seed.pack(fields_of(frame)[0])


def test_seed_envelope_with_integer_timestamp_is_accepted(alice, bob):
    frame = forge(alice, bob, "int", timestamp=int(NOW))
    assert receive(bob, alice, frame) == "int"


def test_enclave_seal_is_read_by_the_reference_reader(alice, bob):
    text = "from Enclave, in the seed's words ✓"
    frame = legacy.seal(alice.identity, bob.key, text, NOW)
    assert alice.identity.private_ops == 1  # the signature, nothing else
    assert seed.read(bob.private, alice.public, frame, NOW) == text
    assert receive(bob, alice, frame) == text


def test_seal_byte_layout(alice, bob):
    frame = legacy.seal(alice.identity, bob.key, "layout", NOW)
    pairs = msgpack.unpackb(frame, raw=False, object_pairs_hook=list)
    assert tuple(name for name, _ in pairs) == legacy.FIELDS
    values = dict(pairs)
    assert frame[0] == 0x89 and seed.pack(values) == frame
    assert type(values["version"]) is int and values["version"] == 1
    mid = values["message_id"]
    assert type(mid) is str and uuid.UUID(mid).version == 4 and str(uuid.UUID(mid)) == mid
    assert type(values["timestamp"]) is float and values["timestamp"] == NOW
    assert values["sender_fingerprint"] == alice.fp
    for name, size in [("encrypted_key", 512), ("nonce", 12), ("tag", 16), ("signature", 512)]:
        assert type(values[name]) is bytes and len(values[name]) == size  # bin, not str
    assert type(values["ciphertext"]) is bytes and len(values["ciphertext"]) == len("layout")
    # The wire types themselves: bin8/bin16 for bytes, str for text, float64 for time.
    assert seed.pack("nonce") + b"\xc4\x0c" + values["nonce"] in frame
    assert seed.pack("encrypted_key") + b"\xc5\x02\x00" + values["encrypted_key"] in frame
    assert seed.pack("message_id") + b"\xd9\x24" + mid.encode() in frame
    assert seed.pack("timestamp") + b"\xcb" + struct.pack(">d", NOW) in frame


def test_seal_emits_float_seconds_for_an_integer_now(alice, bob):
    env = legacy.parse(legacy.seal(alice.identity, bob.key, "t", int(NOW)), bob.nbytes)
    assert type(env.timestamp) is float and env.timestamp == int(NOW)


def test_seal_signs_with_the_maximum_salt_and_no_oaep_label(alice, bob):
    frame = legacy.seal(alice.identity, bob.key, "salt", NOW)
    fields, signature = fields_of(frame)
    assert seed.pss_salt_length(alice.public, signature, seed.pack(fields)) == 478
    assert len(bob.private.decrypt(fields["encrypted_key"], seed._oaep())) == 32


def test_seed_client_signs_with_the_maximum_salt(alice, bob):
    fields, signature = fields_of(seed.seal(alice.private, bob.public, "x", timestamp=NOW))
    assert seed.max_salt(alice.public) == 478
    assert seed.pss_salt_length(alice.public, signature, seed.pack(fields)) == 478


def test_seal_largest_text_round_trips(alice, bob):
    text = "🌍" * legacy.MAX_TEXT_CHARS  # 40,000 UTF-8 bytes
    frame = legacy.seal(alice.identity, bob.key, text, NOW)
    assert len(frame) <= legacy.MAX_ENVELOPE
    assert receive(bob, alice, frame) == text
    assert seed.read(bob.private, alice.public, frame, NOW) == text


def test_seal_empty_text_round_trips(alice, bob):
    assert receive(bob, alice, legacy.seal(alice.identity, bob.key, "", NOW)) == ""


def test_seal_is_fresh_each_time_and_keeps_a_given_id(alice, bob):
    mid = str(uuid.uuid4())
    one = legacy.parse(legacy.seal(alice.identity, bob.key, "same", NOW, mid), bob.nbytes)
    two = legacy.parse(legacy.seal(alice.identity, bob.key, "same", NOW), bob.nbytes)
    assert one.message_id == mid and two.message_id != mid
    assert one.encrypted_key != two.encrypted_key and one.nonce != two.nonce


@pytest.mark.parametrize(
    "text, now, mid, error",
    [
        ("a" * 10_001, NOW, None, ValueError),
        ("\ud800", NOW, None, ValueError),
        (b"bytes", NOW, None, TypeError),
        ("ok", math.nan, None, ValueError),
        ("ok", math.inf, None, ValueError),
        ("ok", NOW, "not-a-uuid", ValueError),
        ("ok", NOW, str(uuid.uuid4()).upper(), ValueError),
    ],
)
def test_seal_refuses_local_misuse_before_signing(alice, bob, text, now, mid, error):
    with pytest.raises(error):
        legacy.seal(alice.identity, bob.key, text, now, mid)
    assert alice.identity.private_ops == 0


# ------------------------------------------------- refusals: fields and structure

FIELD_MUTATIONS = [
    ("version", lambda v: 2),
    ("version", lambda v: "1"),
    ("version", lambda v: True),
    ("version", lambda v: 1.0),
    ("message_id", lambda v: "{" + v + "}"),
    ("message_id", lambda v: v.upper()),
    ("message_id", lambda v: v[:35]),
    ("message_id", lambda v: v.replace("-", "")),
    ("message_id", lambda v: v + "\n"),
    ("message_id", lambda v: v.encode()),
    ("message_id", lambda v: 7),
    ("timestamp", lambda v: math.nan),
    ("timestamp", lambda v: math.inf),
    ("timestamp", lambda v: -math.inf),
    ("timestamp", lambda v: str(v)),
    ("timestamp", lambda v: True),
    ("timestamp", lambda v: None),
    ("timestamp", lambda v: msgpack.ExtType(5, b"")),
    ("sender_fingerprint", lambda v: v.upper()),
    ("sender_fingerprint", lambda v: v[:63]),
    ("sender_fingerprint", lambda v: v + "0"),
    ("sender_fingerprint", lambda v: "g" + v[1:]),
    ("sender_fingerprint", lambda v: bytes.fromhex(v)),
    ("encrypted_key", lambda v: v[:-1]),
    ("encrypted_key", lambda v: v + b"\x00"),
    ("encrypted_key", lambda v: v.hex()),
    ("ciphertext", lambda v: "text"),
    ("ciphertext", lambda v: {"nested": 1}),
    ("nonce", lambda v: v[:11]),
    ("nonce", lambda v: v + b"\x00"),
    ("nonce", lambda v: v.hex()[:12]),
    ("tag", lambda v: v[:15]),
    ("tag", lambda v: v + b"\x00"),
]


@pytest.mark.parametrize(
    "name, mutate", FIELD_MUTATIONS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FIELD_MUTATIONS)]
)
def test_every_bad_field_is_refused_even_when_validly_signed(alice, bob, name, mutate):
    fields = seed.seed_fields(alice.private, bob.public, "hi", timestamp=NOW)
    fields[name] = mutate(fields[name])
    frame = seed.sign_fields(alice.private, fields)
    err = refused("v1_bad_field", bob, legacy.parse, frame, bob.nbytes)
    assert err.detail.startswith(name)


@pytest.mark.parametrize("signature", ["x" * 512, b"", None, 512])
def test_bad_signature_field_is_refused(alice, bob, signature):
    fields, _ = fields_of(seed.seal(alice.private, bob.public, "hi", timestamp=NOW))
    err = refused("v1_bad_field", bob, legacy.parse, seed.assemble(fields, signature), bob.nbytes)
    assert err.detail.startswith("signature")


def _without_tag(fields):
    return {k: v for k, v in fields.items() if k != "tag"}


def _renamed_tag(fields):
    return {("Tag" if k == "tag" else k): v for k, v in fields.items()}


def _swapped_nonce_and_tag(fields):
    head = {k: fields[k] for k in legacy.FIELDS[:6]}
    return head | {"tag": fields["tag"], "nonce": fields["nonce"]}


@pytest.mark.parametrize("reshape", [_without_tag, _renamed_tag, _swapped_nonce_and_tag])
def test_wrong_key_set_or_order_is_refused_even_when_validly_signed(alice, bob, reshape):
    fields = reshape(seed.seed_fields(alice.private, bob.public, "hi", timestamp=NOW))
    frame = seed.sign_fields(alice.private, fields)
    refused("v1_bad_structure", bob, legacy.parse, frame, bob.nbytes)


def test_binary_keys_are_refused(alice, bob):
    fields = seed.seed_fields(alice.private, bob.public, "hi", timestamp=NOW)
    fields = {k.encode(): v for k, v in fields.items()}
    frame = seed.pack({**fields, b"signature": b"\x00" * 512})
    refused("v1_bad_structure", bob, legacy.parse, frame, bob.nbytes)


def test_extra_tenth_key_is_refused(alice, bob):
    fields = seed.seed_fields(alice.private, bob.public, "hi", timestamp=NOW)
    frame = seed.pack({**fields, "signature": b"\x00" * 512, "extra": 1})
    refused("v1_bad_msgpack", bob, legacy.parse, frame, bob.nbytes)


@pytest.mark.parametrize("obj", [[], 1, "x", b"x", None, {}])
def test_non_map_payloads_are_refused(bob, obj):
    refused("v1_bad_structure", bob, legacy.parse, seed.pack(obj), bob.nbytes)


@pytest.mark.parametrize(
    "name, value",
    [
        ("ciphertext", b"\x00" * 40_001),
        ("ciphertext", [1]),
        ("timestamp", msgpack.Timestamp(int(NOW))),
        ("message_id", "x" * 40_001),
    ],
)
def test_msgpack_limits_are_enforced(alice, bob, name, value):
    fields = seed.seed_fields(alice.private, bob.public, "hi", timestamp=NOW)
    fields[name] = value
    frame = seed.pack({**fields, "signature": b"\x00" * 512})
    assert len(frame) <= legacy.MAX_ENVELOPE
    refused("v1_bad_msgpack", bob, legacy.parse, frame, bob.nbytes)


def test_duplicate_key_is_refused(alice, bob):
    frame = seed.seal(alice.private, bob.public, "hi", timestamp=NOW)
    fields, _ = fields_of(frame)
    # Nine entries, "nonce" twice (the second one where "tag" belongs).
    duplicated = reencode(
        frame, "tag", raw_key=seed.pack("nonce"), raw_value=seed.pack(fields["nonce"])
    )
    assert duplicated.count(seed.pack("nonce")) == 2 and seed.pack("tag") not in duplicated
    refused("v1_noncanonical", bob, legacy.parse, duplicated, bob.nbytes)
    with pytest.raises(seed.SeedReject):
        seed.read(bob.private, alice.public, duplicated, NOW)


def _noncanonical_variants(frame: bytes, fields: dict) -> dict[str, bytes]:
    mid = fields["message_id"].encode()
    return {
        "map16 header": reencode(frame, header=b"\xde\x00\x09"),
        "map32 header": reencode(frame, header=b"\xdf\x00\x00\x00\x09"),
        "version as uint8": reencode(frame, "version", raw_value=b"\xcc\x01"),
        "version as int64": reencode(frame, "version", raw_value=b"\xd3" + struct.pack(">q", 1)),
        "timestamp as float32": reencode(
            frame, "timestamp", raw_value=b"\xca" + struct.pack(">f", fields["timestamp"])
        ),
        "key as str8": reencode(frame, "tag", raw_key=b"\xd9\x03tag"),
        "key as str16": reencode(frame, "version", raw_key=b"\xda\x00\x07version"),
        "message_id as str16": reencode(frame, "message_id", raw_value=b"\xda\x00\x24" + mid),
        "nonce as bin16": reencode(frame, "nonce", raw_value=b"\xc5\x00\x0c" + fields["nonce"]),
        "encrypted_key as bin32": reencode(
            frame, "encrypted_key", raw_value=b"\xc6\x00\x00\x02\x00" + fields["encrypted_key"]
        ),
    }


def test_non_canonical_encodings_are_refused(alice, bob):
    frame = seed.seal(alice.private, bob.public, "hi", timestamp=NOW)
    fields, _ = fields_of(frame)
    assert reencode(frame) == frame  # the helper itself is faithful
    for label, variant in _noncanonical_variants(frame, fields).items():
        assert variant != frame, label
        refused("v1_noncanonical", bob, legacy.parse, variant, bob.nbytes)


def test_integer_timestamp_in_a_wider_encoding_is_refused(alice, bob):
    frame = forge(alice, bob, timestamp=int(NOW))
    legacy.parse(frame, bob.nbytes)  # canonical: uint32
    for raw in (b"\xcf" + struct.pack(">Q", int(NOW)), b"\xd3" + struct.pack(">q", int(NOW))):
        variant = reencode(frame, "timestamp", raw_value=raw)
        refused("v1_noncanonical", bob, legacy.parse, variant, bob.nbytes)


def test_frame_over_48_kib_is_refused_before_decoding(alice, bob):
    refused("v1_too_large", bob, legacy.parse, b"\x89" + bytes(legacy.MAX_ENVELOPE), bob.nbytes)
    fields = seed.seed_fields(alice.private, bob.public, "hi", timestamp=NOW)
    fields["ciphertext"] = b"\x00" * 40_000
    frame = seed.assemble(fields, b"\x00" * 9_000)  # each field within its limit
    assert len(frame) > legacy.MAX_ENVELOPE
    refused("v1_too_large", bob, legacy.parse, frame, bob.nbytes)
    refused("v1_bad_msgpack", bob, legacy.parse, bytes(legacy.MAX_ENVELOPE), bob.nbytes)


def test_every_truncation_is_refused(alice, bob):
    frame = seed.seal(alice.private, bob.public, "truncate me", timestamp=NOW)
    for length in range(len(frame)):
        refused("v1_bad_msgpack", bob, legacy.parse, frame[:length], bob.nbytes)


@pytest.mark.parametrize("tail", [b"\x00", b"\xc0", b"\x89"])
def test_trailing_bytes_are_refused(alice, bob, tail):
    frame = seed.seal(alice.private, bob.public, "hi", timestamp=NOW)
    refused("v1_bad_msgpack", bob, legacy.parse, frame + tail, bob.nbytes)


def test_parse_accepts_bytearray_and_memoryview_but_not_str(alice, bob):
    frame = seed.seal(alice.private, bob.public, "hi", timestamp=NOW)
    assert legacy.parse(bytearray(frame), bob.nbytes) == legacy.parse(memoryview(frame), bob.nbytes)
    with pytest.raises(UsageError):
        legacy.parse(frame.decode("latin-1"), bob.nbytes)


# ------------------------------------------------------------ time window


@pytest.mark.parametrize("offset", [-301, 301, -1e9, 1e9])
def test_stale_timestamps_are_refused(alice, bob, offset):
    env = legacy.parse(forge(alice, bob), bob.nbytes)
    refused("v1_stale", bob, legacy.check_time, env, NOW + offset)


@pytest.mark.parametrize("offset", [-300, -299, 0, 299, 300])
def test_timestamps_within_the_window_are_accepted(alice, bob, offset):
    assert receive(bob, alice, forge(alice, bob, "in time"), NOW + offset) == "in time"


def test_huge_integer_timestamp_is_stale_not_a_crash(alice, bob):
    env = legacy.parse(forge(alice, bob, timestamp=2**64 - 1), bob.nbytes)
    refused("v1_stale", bob, legacy.check_time, env, NOW)


# ------------------------------------------------------------ signatures


@pytest.mark.parametrize("salt", [0, 32, 477])
def test_signature_with_another_salt_is_refused(alice, bob, salt):
    fields = seed.seed_fields(alice.private, bob.public, "salt", timestamp=NOW)
    frame = seed.sign_fields(alice.private, fields, salt_length=salt)
    env = legacy.parse(frame, bob.nbytes)
    assert seed.pss_salt_length(alice.public, env.signature, env.signed) == salt
    refused("v1_bad_signature", bob, legacy.verify, env, alice.key)
    with pytest.raises(seed.SeedReject):
        seed.read(bob.private, alice.public, frame, NOW)


def test_signature_by_another_key_is_refused(alice, bob, mallory):
    fields = seed.seed_fields(alice.private, bob.public, "forged", timestamp=NOW)
    frame = seed.sign_fields(mallory.private, fields)  # claims Alice, signed by Mallory
    env = legacy.parse(frame, bob.nbytes)
    refused("v1_bad_signature", bob, legacy.verify, env, alice.key)


@pytest.mark.parametrize("change", [lambda s: s[:-1], lambda s: s + b"\x00", lambda s: s[:256]])
def test_signature_of_the_wrong_length_is_refused(alice, bob, change):
    fields, signature = fields_of(seed.seal(alice.private, bob.public, "hi", timestamp=NOW))
    env = legacy.parse(seed.assemble(fields, change(signature)), bob.nbytes)
    err = refused("v1_bad_signature", bob, legacy.verify, env, alice.key)
    assert err.detail.startswith("length")


def test_verify_with_a_key_other_than_the_claimed_sender_is_a_usage_error(alice, bob, mallory):
    env = legacy.parse(seed.seal(alice.private, bob.public, "hi", timestamp=NOW), bob.nbytes)
    with pytest.raises(UsageError):
        legacy.verify(env, mallory.key)


TAMPERS = {
    "message_id": lambda v: str(uuid.uuid4()),
    "timestamp": lambda v: v + 1.0,
    "encrypted_key": flip,
    "ciphertext": flip,
    "nonce": flip,
    "tag": lambda v: flip(v, 15),
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_tampering_with_a_signed_field_fails_the_verify(alice, bob, name):
    fields, signature = fields_of(seed.seal(alice.private, bob.public, "intact", timestamp=NOW))
    fields[name] = TAMPERS[name](fields[name])
    env = legacy.parse(seed.assemble(fields, signature), bob.nbytes)
    refused("v1_bad_signature", bob, legacy.verify, env, alice.key)


def test_changing_the_claimed_sender_fails_the_verify(alice, bob, mallory):
    fields, signature = fields_of(seed.seal(alice.private, bob.public, "intact", timestamp=NOW))
    fields["sender_fingerprint"] = mallory.fp
    env = legacy.parse(seed.assemble(fields, signature), bob.nbytes)
    refused("v1_bad_signature", bob, legacy.verify, env, mallory.key)


# ------------------------------------------------------------ decryption


@pytest.mark.parametrize("name", ["tag", "nonce", "ciphertext"])
def test_resigned_envelope_with_broken_gcm_is_refused_at_decrypt(bob, mallory, name):
    fields, _ = fields_of(seed.seal(mallory.private, bob.public, "gcm", timestamp=NOW))
    fields[name] = flip(fields[name])
    env = authenticate(bob, mallory, seed.sign_fields(mallory.private, fields))
    err = refused("v1_decrypt_failed", bob, legacy.open_text, bob.identity, env, private_ops=1)
    assert "GCM" in err.detail


def test_envelope_for_someone_else_does_not_unwrap(alice, bob, mallory):
    frame = seed.seal(alice.private, bob.public, "for Bob", timestamp=NOW)
    env = authenticate(mallory, alice, frame)
    err = refused(
        "v1_decrypt_failed", mallory, legacy.open_text, mallory.identity, env, private_ops=1
    )
    assert "unwrap" in err.detail


def test_wrapped_key_of_the_wrong_length_is_refused(alice, bob):
    frame = forge(alice, bob)
    fields = seed.seed_fields(
        alice.private, bob.public, "short key", timestamp=NOW, aes_key=bytes(16)
    )
    env = authenticate(bob, alice, seed.sign_fields(alice.private, fields))
    assert legacy.parse(frame, bob.nbytes)  # the control envelope is fine
    refused("v1_decrypt_failed", bob, legacy.open_text, bob.identity, env, private_ops=1)


@pytest.mark.parametrize("plaintext", [b"\xff\xfe", b"\xed\xa0\x80", b"\xc0\xaf", b"ok\x80"])
def test_invalid_utf8_is_refused(alice, bob, plaintext):
    env = authenticate(bob, alice, seed.seal(alice.private, bob.public, plaintext, timestamp=NOW))
    refused("v1_bad_text", bob, legacy.open_text, bob.identity, env, private_ops=1)


def test_text_over_10000_characters_is_refused(alice, bob):
    frame = seed.seal(alice.private, bob.public, "a" * 10_001, timestamp=NOW)
    env = authenticate(bob, alice, frame)
    refused("v1_bad_text", bob, legacy.open_text, bob.identity, env, private_ops=1)
    with pytest.raises(seed.SeedReject):
        seed.read(bob.private, alice.public, frame, NOW)


def test_open_text_with_an_identity_of_another_size_is_a_usage_error(alice, bob):
    env = legacy.parse(seed.seal(alice.private, bob.public, "hi", timestamp=NOW), bob.nbytes)
    small = Identity(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(UsageError):
        legacy.open_text(small, env)
    assert small.private_ops == 0


# ------------------------------------------------------------ cross-protocol (F3)


def test_v2_signature_does_not_pass_the_v1_verify(alice, bob):
    fields = seed.seed_fields(alice.private, bob.public, "v2 sig", timestamp=NOW)
    signature = alice.identity.sign_v2(seed.pack(fields))
    env = legacy.parse(seed.assemble(fields, signature), bob.nbytes)
    assert alice.key.verify_v2(env.signature, env.signed)  # a genuine v2 signature...
    refused("v1_bad_signature", bob, legacy.verify, env, alice.key)  # ...is not a v1 one


def test_v1_signature_does_not_pass_the_v2_verify(alice, bob):
    env = legacy.parse(legacy.seal(alice.identity, bob.key, "v1 sig", NOW), bob.nbytes)
    legacy.verify(env, alice.key)
    assert not alice.key.verify_v2(env.signature, env.signed)
    assert env.signed[0] == 0x88  # v2 signature inputs start with 0x20 * 64


def test_v1_and_v2_wraps_do_not_cross(alice, bob):
    env = legacy.parse(legacy.seal(alice.identity, bob.key, "wrap", NOW), bob.nbytes)
    assert bob.identity.unwrap_v2(env.encrypted_key, LABEL_I) is None
    assert bob.identity.unwrap_v2(env.encrypted_key, LABEL_R) is None
    assert len(bob.identity.unwrap_v1(env.encrypted_key)) == 32
    secret = bytes(range(32))
    v2_wrap = bob.key.wrap_v2(secret, LABEL_I)
    assert bob.identity.unwrap_v1(v2_wrap) is None
    assert bob.identity.unwrap_v2(v2_wrap, LABEL_I) == secret


def test_v2_handshake_bytes_are_refused_by_the_v1_parser(alice, bob):
    hs1 = b"ENC2\x01\x00\x02\x02" + bytes(120) + bytes(2 * bob.nbytes)
    refused("v1_bad_msgpack", bob, legacy.parse, hs1, bob.nbytes)


# ------------------------------------------------------------ re-signing (F10a)


def test_resigned_envelope_carries_the_original_key_hash(alice, bob, mallory):
    original = legacy.seal(alice.identity, bob.key, "from Alice", NOW)
    fields, _ = fields_of(original)
    fields["sender_fingerprint"] = mallory.fp
    resigned = seed.sign_fields(mallory.private, fields)

    genuine = authenticate(bob, alice, original)
    stolen = authenticate(bob, mallory, resigned)  # Mallory's signature is valid
    assert stolen.sender == mallory.fp != genuine.sender
    assert stolen.message_id == genuine.message_id
    # What the node's detector relies on: same wrapped key, different sender.
    assert stolen.key_hash == genuine.key_hash == sha256(fields["encrypted_key"])
    assert bob.identity.private_ops == 0
    # Why the detector is needed: the text would open under Mallory's name.
    assert legacy.open_text(bob.identity, stolen) == "from Alice"


def test_key_hash_is_the_only_encoding_of_a_wrapped_key(alice, bob, mallory):
    """An alias c + n of a wrapped key (the same value mod n) is refused by the unwrap."""
    # The recipient with the smallest modulus leaves the most room above n.
    recipient, sender = sorted(
        [(bob, alice), (alice, mallory), (mallory, bob)],
        key=lambda pair: pair[0].public.public_numbers().n,
    )[0]
    n = recipient.public.public_numbers().n
    for _ in range(2000):
        fields = seed.seed_fields(sender.private, recipient.public, "alias", timestamp=NOW)
        alias = int.from_bytes(fields["encrypted_key"], "big") + n
        if alias < 1 << (8 * recipient.nbytes):
            break
    else:
        pytest.fail("no wrapped key with room for an alias")
    fields["encrypted_key"] = alias.to_bytes(recipient.nbytes, "big")
    env = authenticate(recipient, sender, seed.sign_fields(sender.private, fields))
    refused(
        "v1_decrypt_failed", recipient, legacy.open_text, recipient.identity, env, private_ops=1
    )


# ------------------------------------------------------------ fuzz


@pytest.fixture(scope="module")
def sample(private_keys):
    alice, bob = private_keys[0], private_keys[1]
    return seed.seal(alice, bob.public_key(), "fuzz me", timestamp=NOW), PeerKey(alice.public_key())


@fuzz(1000)
@given(data=st.one_of(st.binary(max_size=2048), st.binary(max_size=600).map(lambda b: b"\x89" + b)))
def test_fuzz_random_bytes_raise_only_peer_errors(data):
    try:
        legacy.parse(data, 512)
    except PeerError:
        pass


@fuzz(1000)
@given(data=st.data())
def test_fuzz_mutated_envelopes_raise_only_peer_errors(sample, data):
    frame, alice_key = sample
    mutated = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        pos = data.draw(
            st.one_of(st.integers(0, 120), st.integers(0, max(len(mutated) - 1, 0))), label="pos"
        )
        pos = min(pos, len(mutated))
        op = data.draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]), label="op")
        if op == "flip" and pos < len(mutated):
            mutated[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set" and pos < len(mutated):
            mutated[pos] = data.draw(st.integers(0, 255))
        elif op == "truncate":
            del mutated[pos:]
        elif op == "insert":
            mutated[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del mutated[pos : pos + data.draw(st.integers(1, 8))]
    try:
        env = legacy.parse(bytes(mutated), 512)
    except PeerError:
        return
    if bytes(mutated) == frame or env.sender != alice_key.fingerprint.hex():
        return
    with pytest.raises(PeerError):  # whatever still parses no longer verifies
        legacy.verify(env, alice_key)
