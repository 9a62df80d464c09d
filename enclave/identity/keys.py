"""Enclave identities: RSA-4096 keys, the password-protected key file, fingerprints.

Rules:
- An identity is an RSA-4096 key with e = 65537. Its fingerprint is the SHA-256 hex of
  the SubjectPublicKeyInfo PEM that ``cryptography`` writes for the key (what the
  original client computes). The key is always re-serialized first, so two PEM files
  that differ only in line breaks or blank lines give the same fingerprint.
- The private key lives in ``identity.key``, the format of docs/KEYFILE.md: the PKCS8
  DER key sealed with AES-256-GCM under a key derived from the password with scrypt.
  The header (format, version, KDF name, cost and salt, cipher, fingerprint) is the
  associated data, so no field can be changed without the password check failing.
- One password guess must cost at least what 600,000 rounds of PBKDF2-HMAC-SHA256 cost.
  scrypt at N=2**17, r=8, p=1 (128 MiB) costs several times that; a file asking for
  less than ``MIN_KDF`` is refused before any guess, and so is one asking for so much
  memory or work that merely opening it would hang the machine.
- A wrong password and an altered file are the same event (the GCM tag fails): one line,
  "wrong password for PATH".
- Peer keys are RSA, e = 65537, at least 2048 bits (under 3072 earns a warning).
  A private key given where a public key belongs is refused without being parsed.
- Version 2 of the file also holds the store key (the key that seals the history,
  ``enclave.store.sealing``), sealed under the same file key. A version 1 file is
  upgraded the first time it is unlocked (``load_identity``), under a lock, so two
  programs unlocking at once agree on one store key. A retired key's file is the key
  file as it was (the store key in it stays under the same password); a new password
  rewrites it as version 1, which seals no store.
- The ``kdf``/``min_kdf`` keywords exist so tests can use a cheap cost; Enclave itself
  always uses the defaults.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import unicodedata
from dataclasses import dataclass, field, replace

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from enclave.errors import UserError
from enclave.identity import home as homes
from enclave.identity import retired as retired_keys

FORMAT = "enclave-identity"
VERSION = 2  # the newest this Enclave reads and writes; 1 has no store key
CIPHER = "AES-256-GCM"
KDF_NAME = "scrypt"
KEY_BITS = 4096
PUBLIC_EXPONENT = 65537
MIN_PEER_BITS = 2048
WARN_PEER_BITS = 3072
MAX_PEER_BITS = 8192  # larger keys would not fit a handshake in the 4 KiB pre-auth limit
MAX_FILE_BYTES = 64 * 1024
SALT_BYTES = 16
NONCE_BYTES = 12
STORE_KEY_BYTES = 32
_STORE_KEY_AAD = b"enclave-store-key\n"
_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----")


@dataclass(frozen=True)
class KdfCost:
    """scrypt's cost: ``n`` (CPU and memory, a power of two), ``r`` (block size), ``p``."""

    n: int
    r: int
    p: int

    @property
    def memory(self) -> int:
        return 128 * self.n * self.r

    @property
    def work(self) -> int:
        return self.n * self.r * self.p


DEFAULT_KDF = KdfCost(n=2**17, r=8, p=1)
MIN_KDF = KdfCost(n=2**17, r=8, p=1)
MAX_KDF_MEMORY = 1024 * 1024 * 1024
MAX_KDF_WORK = 8 * DEFAULT_KDF.work


@dataclass(frozen=True)
class KeyFileHeader:
    """The authenticated, unencrypted part of ``identity.key``."""

    kdf: KdfCost
    salt: bytes
    fingerprint: str
    version: int = VERSION

    def aad(self) -> bytes:
        return f"enclave-identity/{self.version}\n".encode() + _canonical(self.as_dict())

    def as_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": self.version,
            "kdf": {
                "name": KDF_NAME,
                "n": self.kdf.n,
                "r": self.kdf.r,
                "p": self.kdf.p,
                "salt": _b64(self.salt),
            },
            "cipher": CIPHER,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True, eq=False)
class Identity:
    """An unlocked identity: the private key and its public half."""

    private_key: rsa.RSAPrivateKey = field(repr=False)
    public_pem: bytes
    fingerprint: str
    # The keys this home rotated away from (``retired.Retired``), unlocked with it.
    retired: tuple = field(default=(), repr=False)
    # The key that seals the home's history (key file version 2; None in version 1).
    store_key: bytes | None = field(default=None, repr=False)

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    @property
    def fingerprint_bytes(self) -> bytes:
        return bytes.fromhex(self.fingerprint)


@dataclass(frozen=True)
class PublicIdentity:
    """What can be known of one's own identity without the password."""

    public_pem: bytes
    fingerprint: str


@dataclass(frozen=True)
class PeerKey:
    """A peer's public key, validated: canonical SPKI PEM text, fingerprint, size."""

    pem: str
    fingerprint: str
    bits: int

    @property
    def weak(self) -> bool:
        return self.bits < WARN_PEER_BITS


# --- fingerprints -------------------------------------------------------------------


def spki_pem(public_key: rsa.RSAPublicKey) -> bytes:
    """The canonical SubjectPublicKeyInfo PEM of a key."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(public_key: rsa.RSAPublicKey) -> str:
    """SHA-256 hex (64 characters) of the canonical SPKI PEM."""
    return hashlib.sha256(spki_pem(public_key)).hexdigest()


def fingerprint_bytes(public_key: rsa.RSAPublicKey) -> bytes:
    """The same fingerprint as 32 raw bytes (the wire carries this form)."""
    return hashlib.sha256(spki_pem(public_key)).digest()


def group(fp: str, groups: int = 16) -> str:
    """``"3f2a 9c01 ..."``: the first ``groups`` groups of four hex digits."""
    return " ".join(fp[i : i + 4] for i in range(0, min(len(fp), 4 * groups), 4))


# --- generating, sealing and opening identities -------------------------------------


def generate() -> rsa.RSAPrivateKey:
    """A new RSA-4096 identity key."""
    return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS)


def identity_from_key(private_key: rsa.RSAPrivateKey) -> Identity:
    public = private_key.public_key()
    return Identity(private_key, spki_pem(public), fingerprint(public))


def encrypt_identity(
    private_key: rsa.RSAPrivateKey,
    password: str,
    *,
    kdf: KdfCost = DEFAULT_KDF,
    store_key: bytes | None = None,
) -> bytes:
    """The text of an ``identity.key`` file holding ``private_key`` (version 2 with
    ``store_key``, else version 1)."""
    _check_identity_key(private_key, "the key")
    check_kdf(kdf, "the requested cost", floor=None)
    if store_key is not None and (type(store_key) is not bytes or len(store_key) != 32):
        raise ValueError(f"a store key is {STORE_KEY_BYTES} bytes")
    header = KeyFileHeader(
        kdf,
        secrets.token_bytes(SALT_BYTES),
        fingerprint(private_key.public_key()),
        1 if store_key is None else 2,
    )
    nonce = secrets.token_bytes(NONCE_BYTES)
    plaintext = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    aead = AESGCM(derive_key(password, header.salt, kdf))
    sealed = aead.encrypt(nonce, plaintext, header.aad())
    document = header.as_dict() | {"nonce": _b64(nonce), "ciphertext": _b64(sealed)}
    if store_key is not None:
        key_nonce = secrets.token_bytes(NONCE_BYTES)
        wrapped = aead.encrypt(key_nonce, store_key, _STORE_KEY_AAD + header.aad())
        document["store_key"] = _b64(key_nonce + wrapped)
    ordered = {k: document[k] for k in _FIELDS[header.version]}
    return (json.dumps(ordered, indent=2) + "\n").encode("ascii")


def decrypt_identity(
    data: bytes, password: str, *, source: str = homes.KEY_NAME, min_kdf: KdfCost = MIN_KDF
) -> Identity:
    """Open an ``identity.key`` file; every failure is a one-line ``UserError``."""
    header, nonce, sealed, wrapped = _parse_key_file(data, source, min_kdf)
    aead = AESGCM(derive_key(password, header.salt, header.kdf))
    try:
        plaintext = aead.decrypt(nonce, sealed, header.aad())
        store_key = None
        if wrapped is not None:
            aad = _STORE_KEY_AAD + header.aad()
            store_key = aead.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)
    except InvalidTag:
        raise UserError(f"wrong password for {source}") from None
    if store_key is not None and len(store_key) != STORE_KEY_BYTES:
        raise UserError(f"{source} is damaged: bad store key")
    # The tag just proved Enclave wrote these bytes under this password, so the
    # ~260 ms consistency check of the RSA key adds nothing.
    private_key = serialization.load_der_private_key(
        plaintext, password=None, unsafe_skip_rsa_key_validation=True
    )
    _check_identity_key(private_key, source)
    identity = replace(identity_from_key(private_key), store_key=store_key)
    if identity.fingerprint != header.fingerprint:
        raise UserError(f"{source} is damaged: its key does not match its fingerprint")
    return identity


def derive_key(password: str, salt: bytes, kdf: KdfCost) -> bytes:
    """The 32-byte file key: scrypt over the NFC-normalized UTF-8 password."""
    secret = unicodedata.normalize("NFC", password).encode("utf-8")
    return Scrypt(salt=salt, length=32, n=kdf.n, r=kdf.r, p=kdf.p).derive(secret)


def read_header(
    data: bytes, *, source: str = homes.KEY_NAME, min_kdf: KdfCost | None = None
) -> KeyFileHeader:
    """Parse and bound-check a key file without the password.

    No floor by default: reading the header is not a password guess. The floor is
    applied where a password is tried (``decrypt_identity``).
    """
    return _parse_key_file(data, source, min_kdf)[0]


# --- the identity files in a home folder --------------------------------------------


def save_identity(
    home: homes.Home,
    private_key: rsa.RSAPrivateKey,
    password: str,
    *,
    force: bool = False,
    kdf: KdfCost = DEFAULT_KDF,
    store_key: bytes | None = None,
) -> Identity:
    """Write ``identity.key`` (0600) and ``identity.pub`` (0644) into a checked home.
    ``store_key``: the home's store key, kept when the same home gets a new password or
    a new key (a rotation); None makes a new one (a new identity)."""
    homes.prepare(home)
    if home.has_identity() and not force:
        raise UserError(f"an identity already exists in {home.path}; use --force to replace it")
    if store_key is None and home.key_path.exists():
        _keep_replaced(home)  # a new identity: the old file still opens the old store
    store_key = store_key or secrets.token_bytes(STORE_KEY_BYTES)
    sealed = encrypt_identity(private_key, password, kdf=kdf, store_key=store_key)
    identity = replace(identity_from_key(private_key), store_key=store_key)
    homes.write_atomic(home.key_path, sealed, homes.KEY_MODE)
    homes.write_atomic(home.pub_path, identity.public_pem, homes.PUB_MODE)
    return identity


def _keep_replaced(home: homes.Home) -> None:
    """Keep a key file a new identity replaces (``identity.key.replaced-TIME``): its
    store key is the only way into the history it sealed."""
    import time

    data = homes.read_file(home.key_path, "private key", MAX_FILE_BYTES)
    kept = home.key_path.with_name(f"{home.key_path.name}.replaced-{time.time_ns()}")
    homes.write_atomic(kept, data, homes.KEY_MODE)


def load_identity(home: homes.Home, password: str, *, min_kdf: KdfCost = MIN_KDF) -> Identity:
    """Unlock the identity of a home folder, checking modes and both files, with the keys
    it rotated away from (``retired``)."""
    homes.require_identity(home)
    data = homes.read_file(home.key_path, "private key", MAX_FILE_BYTES)
    identity = decrypt_identity(data, password, source=str(home.key_path), min_kdf=min_kdf)
    public = read_public_identity(home)
    if public.fingerprint != identity.fingerprint:
        raise UserError(_mismatch(home))
    if identity.store_key is None:
        identity = _upgrade(home, identity, password, read_header(data).kdf, min_kdf)
    if retired_keys.key_files(home):

        def open_key(data: bytes, secret: str, source: str) -> Identity:
            return decrypt_identity(data, secret, source=source, min_kdf=min_kdf)

        identity = replace(identity, retired=retired_keys.load(home, password, open_key))
    return identity


def _upgrade(
    home: homes.Home, identity: Identity, password: str, kdf: KdfCost, min_kdf: KdfCost
) -> Identity:
    """A version 1 file gets a store key (version 2) at the same cost. Under the home's
    lock the file is read again: another program may have upgraded it meanwhile, and its
    store key is the one."""
    with homes.locked(home):
        data = homes.read_file(home.key_path, "private key", MAX_FILE_BYTES)
        current = decrypt_identity(data, password, source=str(home.key_path), min_kdf=min_kdf)
        if current.store_key is not None:
            return replace(identity, store_key=current.store_key)
        store_key = secrets.token_bytes(STORE_KEY_BYTES)
        sealed = encrypt_identity(identity.private_key, password, kdf=kdf, store_key=store_key)
        homes.write_atomic(home.key_path, sealed, homes.KEY_MODE)
    return replace(identity, store_key=store_key)


def read_public_identity(home: homes.Home) -> PublicIdentity:
    """One's own public key and fingerprint, cross-checked with the key file's header."""
    homes.require_identity(home)
    pem = homes.read_file(home.pub_path, "public key", MAX_FILE_BYTES)
    try:
        public = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise UserError(
            f"public key {home.pub_path} is damaged; it is not a PEM public key"
        ) from None
    if not isinstance(public, rsa.RSAPublicKey):
        raise UserError(f"public key {home.pub_path} is not an RSA key")
    key_data = homes.read_file(home.key_path, "private key", MAX_FILE_BYTES)
    header = read_header(key_data, source=str(home.key_path))
    if fingerprint(public) != header.fingerprint:
        raise UserError(_mismatch(home))
    return PublicIdentity(spki_pem(public), header.fingerprint)


def _mismatch(home: homes.Home) -> str:
    return f"{home.pub_path} does not belong to {home.key_path}; restore the matching pair"


# --- keys from elsewhere ------------------------------------------------------------


def pem_labels(data: bytes) -> list[str]:
    """The ``-----BEGIN X-----`` labels in a file, in order."""
    return [m.decode("ascii") for m in _PEM_LABEL.findall(data)]


def is_encrypted_pem(data: bytes) -> bool:
    """Does this private key PEM need a password (PKCS8 or legacy OpenSSL encryption)?"""
    labels = pem_labels(data)
    return "ENCRYPTED PRIVATE KEY" in labels or b"Proc-Type: 4,ENCRYPTED" in data


def import_private_key(data: bytes, password: str | None, *, source: str) -> rsa.RSAPrivateKey:
    """Read the original client's private key PEM (PKCS8, usually encrypted).

    Only RSA-4096 keys with e = 65537 are accepted: every Enclave identity is one,
    and a peer's checks would refuse anything else.
    """
    labels = pem_labels(data)
    if not labels:
        raise UserError(
            f"{source} is not a PEM private key (no -----BEGIN ... PRIVATE KEY----- line)"
        )
    if not labels[0].endswith("PRIVATE KEY"):
        raise UserError(
            f"{source} holds a {labels[0].lower()}, not a private key; "
            "--import-key needs the private key file of the original client"
        )
    encrypted = is_encrypted_pem(data)
    if encrypted and not password:
        raise UserError(f"{source} is encrypted and no password was given")
    try:
        key = serialization.load_pem_private_key(
            data, password=password.encode("utf-8") if encrypted and password else None
        )
    except ValueError:
        if encrypted:
            # A wrong password usually fails the padding check; about one time in 256
            # the padding passes by chance and the garbage fails to parse instead.
            raise UserError(f"wrong password for {source}") from None
        raise UserError(
            f"{source} is not a readable private key (damaged or unsupported PEM)"
        ) from None
    except (TypeError, UnsupportedAlgorithm):
        raise UserError(
            f"{source} is not a readable private key (unsupported encryption)"
        ) from None
    _check_identity_key(key, source)
    return key


def load_peer_key(data: bytes, *, source: str) -> PeerKey:
    """Validate a peer's public key file; the error says what to ask the peer for."""
    labels = pem_labels(data)
    if any("PRIVATE KEY" in label for label in labels):
        raise UserError(
            f"{source} is a private key; never share or copy it: ask your peer for their "
            "public key (enclave --public-key prints it)"
        )
    if not labels:
        hint = " (an OpenSSH key; Enclave needs PEM)" if data.lstrip().startswith(b"ssh-") else ""
        raise UserError(
            f"{source} is not a PEM public key{hint}; expected -----BEGIN PUBLIC KEY-----"
        )
    if len(labels) > 1:
        raise UserError(f"{source} holds {len(labels)} PEM blocks; expected one public key")
    if labels[0] not in ("PUBLIC KEY", "RSA PUBLIC KEY"):
        raise UserError(
            f"{source} holds a {labels[0].lower()}; expected -----BEGIN PUBLIC KEY-----"
        )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise UserError(f"{source} is not a valid PEM public key (damaged or truncated)") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise UserError(
            f"{source} holds {_kind(key)} key; Enclave peers use RSA keys of at least "
            f"{MIN_PEER_BITS} bits"
        )
    if key.key_size < MIN_PEER_BITS:
        raise UserError(
            f"{source} holds a {key.key_size}-bit RSA key; "
            f"Enclave needs at least {MIN_PEER_BITS} bits"
        )
    if key.key_size > MAX_PEER_BITS:
        raise UserError(
            f"{source} holds a {key.key_size}-bit RSA key; Enclave accepts at most {MAX_PEER_BITS} bits"
        )
    if key.public_numbers().e != PUBLIC_EXPONENT:
        raise UserError(
            f"{source} holds an RSA key with exponent {key.public_numbers().e}; Enclave needs 65537"
        )
    return PeerKey(spki_pem(key).decode("ascii"), fingerprint(key), key.key_size)


# --- the key file format ------------------------------------------------------------


_FIELDS = {
    1: ("format", "version", "kdf", "cipher", "nonce", "ciphertext", "fingerprint"),
    2: ("format", "version", "kdf", "cipher", "nonce", "ciphertext", "store_key", "fingerprint"),
}


def _parse_key_file(
    data: bytes, source: str, min_kdf: KdfCost | None
) -> tuple[KeyFileHeader, bytes, bytes, bytes | None]:
    if len(data) > MAX_FILE_BYTES:
        raise UserError(f"{source} is too large to be an Enclave key file")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise UserError(f"{source} is not an Enclave key file (see docs/KEYFILE.md)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UserError(f"{source} is not an Enclave key file (see docs/KEYFILE.md)")
    version = doc.get("version")
    if _int(version) and version > VERSION:
        raise UserError(
            f"{source} was written by a newer Enclave (key file version {version}); "
            "upgrade Enclave to use it"
        )
    if not _int(version) or version not in _FIELDS:
        raise UserError(f"{source} has an unknown key file version {version!r}")
    if set(doc) != set(_FIELDS[version]):
        raise UserError(f"{source} is damaged: unexpected or missing fields")
    if doc["cipher"] != CIPHER:
        raise UserError(f"{source} uses an unknown cipher; expected {CIPHER}")
    kdf, salt = _parse_kdf(doc["kdf"], source)
    check_kdf(kdf, source, floor=min_kdf)
    fp = doc["fingerprint"]
    if not isinstance(fp, str) or not re.fullmatch(r"[0-9a-f]{64}", fp):
        raise UserError(f"{source} is damaged: bad fingerprint field")
    nonce = _unb64(doc["nonce"], source, "nonce")
    sealed = _unb64(doc["ciphertext"], source, "ciphertext")
    if len(nonce) != NONCE_BYTES or len(sealed) <= 16:
        raise UserError(f"{source} is damaged: bad nonce or ciphertext length")
    wrapped = None
    if version >= 2:
        wrapped = _unb64(doc["store_key"], source, "store_key")
        if len(wrapped) != NONCE_BYTES + STORE_KEY_BYTES + 16:
            raise UserError(f"{source} is damaged: bad store key length")
    return KeyFileHeader(kdf, salt, fp, version), nonce, sealed, wrapped


def _parse_kdf(section: object, source: str) -> tuple[KdfCost, bytes]:
    if not isinstance(section, dict) or set(section) != {"name", "n", "r", "p", "salt"}:
        raise UserError(f"{source} is damaged: bad kdf section")
    if section["name"] != KDF_NAME:
        raise UserError(f"{source} uses an unknown key derivation; expected {KDF_NAME}")
    if not all(_int(section[k]) for k in ("n", "r", "p")):
        raise UserError(f"{source} is damaged: scrypt parameters must be whole numbers")
    salt = _unb64(section["salt"], source, "salt")
    if not SALT_BYTES <= len(salt) <= 64:
        raise UserError(f"{source} is damaged: salt of {len(salt)} bytes")
    return KdfCost(section["n"], section["r"], section["p"]), salt


def check_kdf(kdf: KdfCost, source: str, *, floor: KdfCost | None) -> None:
    """Refuse a cost below ``floor`` (a cheap, edited file) or absurdly high (a hang)."""
    if kdf.n < 2 or kdf.n & (kdf.n - 1) or kdf.r < 1 or kdf.p < 1:
        raise UserError(f"{source}: invalid scrypt parameters n={kdf.n}, r={kdf.r}, p={kdf.p}")
    if floor is not None and (kdf.memory < floor.memory or kdf.work < floor.work):
        raise UserError(
            f"{source} asks for a password cost below Enclave's minimum "
            f"(scrypt n={kdf.n}, r={kdf.r}, p={kdf.p}); refusing to use it"
        )
    if kdf.memory > MAX_KDF_MEMORY or kdf.work > MAX_KDF_WORK:
        raise UserError(
            f"{source} asks for an unreasonable password cost "
            f"(scrypt n={kdf.n}, r={kdf.r}, p={kdf.p}); refusing to use it"
        )


def _check_identity_key(key: object, source: str) -> None:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UserError(f"{source} holds {_kind(key)} key; Enclave identities are RSA-4096")
    if key.key_size != KEY_BITS or key.public_key().public_numbers().e != PUBLIC_EXPONENT:
        raise UserError(
            f"{source} holds a {key.key_size}-bit RSA key; Enclave identities are "
            "RSA-4096 with exponent 65537"
        )


def _kind(key: object) -> str:
    kinds = [
        ((ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey), "an EC"),
        ((ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey), "an Ed25519"),
        ((ed448.Ed448PublicKey, ed448.Ed448PrivateKey), "an Ed448"),
        ((dsa.DSAPublicKey, dsa.DSAPrivateKey), "a DSA"),
        ((x25519.X25519PublicKey, x25519.X25519PrivateKey), "an X25519"),
    ]
    return next((name for types, name in kinds if isinstance(key, types)), "a non-RSA")


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _canonical(value: dict) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(value: object, source: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise UserError(f"{source} is damaged: bad {what} field")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise UserError(f"{source} is damaged: bad {what} field") from None
