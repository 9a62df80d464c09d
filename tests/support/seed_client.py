"""The original client's version-1 envelope, re-created independently for tests.

Written only from the published layout (DESIGN.md "Seed interop, version 1" and
PROTOCOL.md d). It imports nothing from ``enclave.protocol``: it talks to
``cryptography`` and ``msgpack`` directly, so that when it agrees with Enclave's v1
code the agreement is evidence, not a tautology. It plays two parts:

- the seed sender: ``seal`` builds what the original client sends (uuid4 string,
  float seconds, keys in the seed's order, binary type on, OAEP-SHA256 without a
  label, PSS-SHA256 with the maximum salt). ``unpack``, ``sign_fields`` and
  ``assemble`` let a test forge variations, validly signed or not;
- the strict reference reader: ``read`` accepts exactly what the original client
  emits and returns the text, or raises ``SeedReject``.

``pss_salt_length`` recovers the salt length of a PSS signature with a raw RSA
public operation, so a test can see which salt a signer really used. ``frame``,
``send`` and ``receive`` move one envelope over a blocking socket the way the seed
does (4-byte big-endian length, one envelope per connection, closed at once without
reading); ``send_in_loop`` sends one to a node in the test's own event loop and waits
for it to close; ``PooledSender`` is the seed's default pooling (envelopes back to back
on up to 3 sockets per peer, never reading a reply) for node-level tests.
"""

import asyncio
import hashlib
import math
import os
import socket
import struct
import time
import uuid

import msgpack
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ORDER = (
    "version",
    "message_id",
    "timestamp",
    "sender_fingerprint",
    "encrypted_key",
    "ciphertext",
    "nonce",
    "tag",
    "signature",
)
MAX_TEXT = 10_000
WINDOW = 300.0
MAX_PAYLOAD = 48 * 1024


class SeedReject(Exception):
    """The strict reference reader refused an envelope."""


def fingerprint(public_key: rsa.RSAPublicKey) -> str:
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


def max_salt(public_key: rsa.RSAPublicKey) -> int:
    em_len = math.ceil((public_key.key_size - 1) / 8)
    return em_len - hashlib.sha256().digest_size - 2


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _pss(salt_length: int) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt_length)


def pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(payload: bytes) -> dict:
    """The map of a payload, in wire order (for forging variations)."""
    return msgpack.unpackb(payload, raw=False)


# ------------------------------------------------------------- the seed sender


def seed_fields(
    sender_private: rsa.RSAPrivateKey,
    recipient_public: rsa.RSAPublicKey,
    text: str | bytes,
    *,
    timestamp: float | None = None,
    message_id: str | None = None,
    aes_key: bytes | None = None,
) -> dict:
    """The eight signed fields as the seed fills them. ``bytes`` text is used as is."""
    plaintext = text.encode("utf-8") if isinstance(text, str) else text
    key = AESGCM.generate_key(bit_length=256) if aes_key is None else aes_key
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext, None)
    return {
        "version": 1,
        "message_id": str(uuid.uuid4()) if message_id is None else message_id,
        "timestamp": time.time() if timestamp is None else timestamp,
        "sender_fingerprint": fingerprint(sender_private.public_key()),
        "encrypted_key": recipient_public.encrypt(key, _oaep()),
        "ciphertext": sealed[:-16],
        "nonce": nonce,
        "tag": sealed[-16:],
    }


def sign_fields(
    sender_private: rsa.RSAPrivateKey,
    fields: dict,
    *,
    salt_length: int = padding.PSS.MAX_LENGTH,
) -> bytes:
    """Sign ``packb(fields)`` (in the dict's order) and return the full payload."""
    signature = sender_private.sign(pack(fields), _pss(salt_length), hashes.SHA256())
    return assemble(fields, signature)


def assemble(fields: dict, signature: object) -> bytes:
    return pack({**fields, "signature": signature})


def seal(
    sender_private: rsa.RSAPrivateKey,
    recipient_public: rsa.RSAPublicKey,
    text: str | bytes,
    **options: object,
) -> bytes:
    """What the original client sends: the payload of one framed envelope."""
    fields = seed_fields(sender_private, recipient_public, text, **options)
    return sign_fields(sender_private, fields)


# ------------------------------------------------------- strict reference reader


def read(
    recipient_private: rsa.RSAPrivateKey,
    sender_public: rsa.RSAPublicKey,
    payload: bytes,
    now: float,
) -> str:
    """Accept exactly what the seed emits; return the text or raise SeedReject."""
    env = _read_map(payload)
    _require(type(env["version"]) is int and env["version"] == 1, "version")
    mid = env["message_id"]
    _require(type(mid) is str and _canonical_uuid(mid), "message_id")
    ts = env["timestamp"]
    _require(type(ts) in (int, float) and math.isfinite(ts), "timestamp")
    _require(abs(ts - now) <= WINDOW, "stale")
    _require(env["sender_fingerprint"] == fingerprint(sender_public), "sender")
    for name in ORDER[4:]:
        _require(type(env[name]) is bytes, name)
    modulus = (recipient_private.key_size + 7) // 8
    _require(len(env["encrypted_key"]) == modulus, "encrypted_key")
    _require(len(env["nonce"]) == 12 and len(env["tag"]) == 16, "nonce/tag")
    _require(len(env["signature"]) == (sender_public.key_size + 7) // 8, "signature")
    signed = pack({name: env[name] for name in ORDER[:8]})
    try:
        sender_public.verify(
            env["signature"], signed, _pss(max_salt(sender_public)), hashes.SHA256()
        )
    except InvalidSignature:
        raise SeedReject("signature") from None
    return _decrypt(recipient_private, env)


def _read_map(payload: bytes) -> dict:
    _require(len(payload) <= MAX_PAYLOAD, "size")
    try:
        env = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception:
        raise SeedReject("msgpack") from None
    _require(type(env) is dict and list(env) == list(ORDER), "keys")
    _require(pack(env) == payload, "canonical")
    return env


def _decrypt(recipient_private: rsa.RSAPrivateKey, env: dict) -> str:
    try:
        key = recipient_private.decrypt(env["encrypted_key"], _oaep())
    except ValueError:
        raise SeedReject("unwrap") from None
    _require(len(key) == 32, "key length")
    try:
        plaintext = AESGCM(key).decrypt(env["nonce"], env["ciphertext"] + env["tag"], None)
    except InvalidTag:
        raise SeedReject("gcm") from None
    try:
        text = plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise SeedReject("utf-8") from None
    _require(len(text) <= MAX_TEXT, "text length")
    return text


def _canonical_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise SeedReject(reason)


# ------------------------------------------------------------ PSS salt recovery


def pss_salt_length(public_key: rsa.RSAPublicKey, signature: bytes, message: bytes) -> int | None:
    """The salt length of a valid PSS-SHA256/MGF1-SHA256 signature (RFC 8017 9.1.2), else None."""
    numbers = public_key.public_numbers()
    em_bits = public_key.key_size - 1
    em_len = math.ceil(em_bits / 8)
    m = pow(int.from_bytes(signature, "big"), numbers.e, numbers.n)
    if m >= 1 << (8 * em_len):
        return None
    em = m.to_bytes(em_len, "big")
    if em[-1] != 0xBC:
        return None
    h = em[-33:-1]
    db = bytearray(a ^ b for a, b in zip(em[:-33], _mgf1(h, em_len - 33), strict=True))
    db[0] &= 0xFF >> (8 * em_len - em_bits)
    body = bytes(db).lstrip(b"\x00")
    if not body or body[0] != 0x01:
        return None
    salt = body[1:]
    m_hash = hashlib.sha256(message).digest()
    if hashlib.sha256(b"\x00" * 8 + m_hash + salt).digest() != h:
        return None
    return len(salt)


def _mgf1(seed: bytes, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


# ------------------------------------------------------- the seed's transport


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def send(host: str, port: int, payload: bytes, timeout: float = 5.0, reset: bool = False) -> None:
    """The seed's plain send: one envelope per TCP connection, closed at once without
    reading anything. ``reset`` ends it with a RST (SO_LINGER 0) instead of a FIN."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(frame(payload))
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def send_in_loop(port: int, payload: bytes) -> None:
    """``send`` from this test's event loop: connect, write one framed envelope and close
    at once without reading, as the original client does. The node's verdict comes
    later: wait for its effect (a message shown, a close counted)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(frame(payload))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


class PooledSender:
    """The seed's default pooled send: up to ``sockets`` connections to one peer, each
    reused for 30 s, envelopes written back to back, no reply ever read. A write that
    fails (the peer closed on us) raises, as it does in the original ("Broken pipe")."""

    IDLE = 30.0

    def __init__(self, host: str, port: int, sockets: int = 3, timeout: float = 10.0) -> None:
        self.address, self.size, self.timeout = (host, port), sockets, timeout
        self.socks: dict[int, tuple[socket.socket, float]] = {}  # slot -> (socket, last use)
        self.turn = 0

    def send(self, payload: bytes) -> None:
        slot = self.turn % self.size
        self.turn += 1
        now = time.monotonic()
        held = self.socks.pop(slot, None)
        if held is not None and now - held[1] > self.IDLE:
            held[0].close()
            held = None
        sock = held[0] if held else socket.create_connection(self.address, timeout=self.timeout)
        try:
            sock.sendall(frame(payload))
        except OSError:
            sock.close()  # the original drops the broken socket; the next send opens one
            raise
        self.socks[slot] = (sock, now)

    def close(self) -> None:
        for sock, _ in self.socks.values():
            sock.close()
        self.socks.clear()


def receive(conn: socket.socket, limit: int = MAX_PAYLOAD) -> bytes:
    """Read one framed envelope from an accepted connection (a seed-only listener)."""
    (length,) = struct.unpack(">I", _read_exactly(conn, 4))
    if length > limit:
        raise SeedReject("size")
    return _read_exactly(conn, length)


def _read_exactly(conn: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = conn.recv(n)
        if not chunk:
            raise SeedReject("connection closed early")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)
