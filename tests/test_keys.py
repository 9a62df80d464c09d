"""Identities: the key file (docs/KEYFILE.md), home folder modes, import, fingerprints."""

import base64
import hashlib
import json
import os
import re
import stat
import time
import unicodedata

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from support.keyfactory import (
    FAST_KDF,
    PASSWORD,
    ec_key,
    ed25519_key,
    make_identity,
    private_pem,
    public_pem,
    small_rsa,
)

from enclave.errors import UserError
from enclave.identity import home, keys


@pytest.fixture
def alice(rsa_keys):
    return rsa_keys["alice"]


@pytest.fixture
def sealed(alice) -> bytes:
    return keys.encrypt_identity(alice, PASSWORD, kdf=FAST_KDF)


def one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(UserError) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert message and "\n" not in message
    return message


def edit(data: bytes, change) -> bytes:
    doc = json.loads(data)
    change(doc)
    return json.dumps(doc).encode()


def no_guess(*args):
    pytest.fail("scrypt ran on a file that should have been refused first")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# --- the key file -------------------------------------------------------------------


def test_round_trip(alice, sealed):
    identity = keys.decrypt_identity(sealed, PASSWORD, min_kdf=FAST_KDF)
    assert identity.private_key.private_numbers() == alice.private_numbers()
    assert identity.fingerprint == keys.fingerprint(alice.public_key())
    assert identity.public_pem == public_pem(alice)
    assert identity.fingerprint_bytes == bytes.fromhex(identity.fingerprint)


def test_file_layout_matches_keyfile_md(alice, sealed):
    doc = json.loads(sealed)
    assert list(doc) == [
        "format", "version", "kdf", "cipher", "nonce", "ciphertext", "fingerprint"
    ]  # fmt: skip
    assert doc["format"] == "enclave-identity" and doc["version"] == 1
    assert doc["cipher"] == "AES-256-GCM"
    assert doc["kdf"] | {"salt": None} == {
        "name": "scrypt",
        "n": 1024,
        "r": 8,
        "p": 1,
        "salt": None,
    }
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 16
    assert len(base64.b64decode(doc["nonce"])) == 12
    assert doc["fingerprint"] == keys.fingerprint(alice.public_key())
    assert b"PRIVATE" not in sealed


def test_default_cost_is_what_enclave_writes(alice, monkeypatch):
    # Check the default parameters land in the file without paying for scrypt here.
    monkeypatch.setattr(keys, "derive_key", lambda password, salt, kdf: bytes(32))
    doc = json.loads(keys.encrypt_identity(alice, PASSWORD))
    assert (doc["kdf"]["n"], doc["kdf"]["r"], doc["kdf"]["p"]) == (2**17, 8, 1)
    assert keys.DEFAULT_KDF.memory == 128 * 1024 * 1024


def test_each_write_uses_fresh_salt_and_nonce(alice, sealed):
    again = json.loads(keys.encrypt_identity(alice, PASSWORD, kdf=FAST_KDF))
    first = json.loads(sealed)
    assert again["kdf"]["salt"] != first["kdf"]["salt"]
    assert again["nonce"] != first["nonce"]


def test_wrong_password_is_one_line(sealed):
    message = one_line_error(
        keys.decrypt_identity, sealed, "not it", source="/h/identity.key", min_kdf=FAST_KDF
    )
    assert message == "wrong password for /h/identity.key"


def test_password_is_nfc_normalized(alice):
    composed = unicodedata.normalize("NFC", "pässwörd-ñ")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    data = keys.encrypt_identity(alice, composed, kdf=FAST_KDF)
    assert keys.decrypt_identity(data, decomposed, min_kdf=FAST_KDF).fingerprint


def test_ciphertext_bit_flip_is_refused(sealed):
    def flip(doc):
        raw = bytearray(base64.b64decode(doc["ciphertext"]))
        raw[100] ^= 0x01
        doc["ciphertext"] = base64.b64encode(raw).decode()

    assert "wrong password" in one_line_error(
        keys.decrypt_identity, edit(sealed, flip), PASSWORD, min_kdf=FAST_KDF
    )


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: d["kdf"].update(n=2**11), id="raised-n"),
        pytest.param(lambda d: d["kdf"].update(r=9), id="changed-r"),
        pytest.param(
            lambda d: d["kdf"].update(salt=base64.b64encode(bytes(16)).decode()), id="salt"
        ),
        pytest.param(lambda d: d.update(fingerprint="0" * 64), id="fingerprint"),
        pytest.param(lambda d: d.update(nonce=base64.b64encode(bytes(12)).decode()), id="nonce"),
    ],
)
def test_header_edits_break_the_tag(sealed, change):
    # Every header field is associated data: no field can be swapped silently.
    assert "wrong password" in one_line_error(
        keys.decrypt_identity, edit(sealed, change), PASSWORD, min_kdf=FAST_KDF
    )


def test_lowered_cost_is_refused_before_any_guess(sealed, monkeypatch):
    monkeypatch.setattr(keys, "derive_key", no_guess)
    cheap = edit(sealed, lambda d: d["kdf"].update(n=2**9))
    assert "below Enclave's minimum" in one_line_error(
        keys.decrypt_identity, cheap, PASSWORD, min_kdf=FAST_KDF
    )


def test_floor_is_enforced_at_the_real_default(sealed, monkeypatch):
    # A file as cheap as the tests' own is refused by Enclave's real floor.
    monkeypatch.setattr(keys, "derive_key", no_guess)
    assert "below Enclave's minimum" in one_line_error(keys.decrypt_identity, sealed, PASSWORD)
    assert (keys.MIN_KDF.n, keys.MIN_KDF.r, keys.MIN_KDF.p) == (2**17, 8, 1)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda d: d["kdf"].update(n=2**21), "unreasonable"),
        (lambda d: d["kdf"].update(n=2**17, r=128), "unreasonable"),
        (lambda d: d["kdf"].update(n=2**17, p=16), "unreasonable"),
        (lambda d: d["kdf"].update(n=1000), "invalid scrypt"),
        (lambda d: d["kdf"].update(r=0), "invalid scrypt"),
        (lambda d: d["kdf"].update(n=True), "whole numbers"),
        (lambda d: d["kdf"].update(n="1024"), "whole numbers"),
        (lambda d: d["kdf"].update(name="pbkdf2"), "unknown key derivation"),
        (lambda d: d["kdf"].update(salt="AAAA"), "salt of 3 bytes"),
        (lambda d: d["kdf"].update(salt="not base64!"), "bad salt"),
        (lambda d: d["kdf"].pop("p"), "bad kdf section"),
        (lambda d: d.update(cipher="AES-128-CBC"), "unknown cipher"),
        (lambda d: d.update(version=3), "newer Enclave"),
        (lambda d: d.update(version="1"), "unknown key file version"),
        (lambda d: d.update(extra=1), "unexpected or missing fields"),
        (lambda d: d.pop("nonce"), "unexpected or missing fields"),
        (lambda d: d.update(nonce="AAAA"), "bad nonce"),
        (lambda d: d.update(fingerprint="XYZ"), "bad fingerprint"),
        (lambda d: d.update(format="other"), "not an Enclave key file"),
    ],
)
def test_damaged_or_hostile_files_are_refused_before_any_guess(sealed, monkeypatch, change, why):
    monkeypatch.setattr(keys, "derive_key", no_guess)
    assert why in one_line_error(
        keys.decrypt_identity, edit(sealed, change), PASSWORD, min_kdf=FAST_KDF
    )


@pytest.mark.parametrize(
    "data", [b"", b"\xff\xfe", b"[]", b"-----BEGIN PRIVATE KEY-----", b"{" * 70000]
)
def test_not_a_key_file(data):
    one_line_error(keys.decrypt_identity, data, PASSWORD, min_kdf=FAST_KDF)


def test_only_rsa_4096_identities_are_sealed():
    assert "RSA-4096" in one_line_error(
        keys.encrypt_identity, small_rsa(2048), PASSWORD, kdf=FAST_KDF
    )
    assert "RSA-4096" in one_line_error(keys.encrypt_identity, ec_key(), PASSWORD, kdf=FAST_KDF)


# --- one guess costs at least 600,000 rounds of PBKDF2-HMAC-SHA256 ------------------


@pytest.mark.slow
def test_one_guess_costs_at_least_pbkdf2_600k():
    """A security property, compared within one run on one machine (not a speed target)."""
    salt = os.urandom(16)

    def best_of(runs, work):
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        return min(times)

    pbkdf2 = best_of(3, lambda: PBKDF2HMAC(hashes.SHA256(), 32, salt, 600_000).derive(b"guess"))
    scrypt = best_of(2, lambda: keys.derive_key("guess", salt, keys.DEFAULT_KDF))
    print(
        f"\none guess: scrypt n=2**17 r=8 p=1 {scrypt * 1000:.0f} ms; "
        f"PBKDF2-HMAC-SHA256 600,000 rounds {pbkdf2 * 1000:.0f} ms "
        f"(ratio {scrypt / pbkdf2:.1f}x)"
    )
    assert scrypt >= pbkdf2


# --- identities in a home folder ----------------------------------------------------


def test_save_and_load_with_modes(tmp_path, alice):
    place = home.Home(tmp_path / "nested" / "home")
    saved = make_identity(place.path, alice)
    assert mode(place.path) == 0o700
    assert mode(place.key_path) == 0o600
    assert mode(place.pub_path) == 0o644
    assert place.pub_path.read_bytes() == public_pem(alice)
    loaded = keys.load_identity(place, PASSWORD, min_kdf=FAST_KDF)
    assert loaded.fingerprint == saved.fingerprint == keys.fingerprint(alice.public_key())
    public = keys.read_public_identity(place)
    assert public == keys.PublicIdentity(public_pem(alice), saved.fingerprint)
    assert not list(place.path.glob(".*tmp*"))


def test_modes_hold_under_a_permissive_umask(tmp_path, alice):
    old = os.umask(0)
    try:
        place = home.Home(tmp_path / "home")
        make_identity(place.path, alice)
    finally:
        os.umask(old)
    assert (mode(place.path), mode(place.key_path), mode(place.pub_path)) == (0o700, 0o600, 0o644)


def test_wrong_password_from_a_home(tmp_path, alice):
    place = home.Home(tmp_path / "home")
    make_identity(place.path, alice)
    message = one_line_error(keys.load_identity, place, "nope", min_kdf=FAST_KDF)
    assert message == f"wrong password for {place.key_path}"


def test_save_refuses_to_overwrite_without_force(tmp_path, rsa_keys):
    place = home.Home(tmp_path / "home")
    make_identity(place.path, rsa_keys["alice"])
    assert "already exists" in one_line_error(
        keys.save_identity, place, rsa_keys["bob"], PASSWORD, kdf=FAST_KDF
    )
    keys.save_identity(place, rsa_keys["bob"], PASSWORD, kdf=FAST_KDF, force=True)
    assert keys.read_public_identity(place).fingerprint == keys.fingerprint(
        rsa_keys["bob"].public_key()
    )


@pytest.mark.parametrize("bad_mode", [0o644, 0o640, 0o604, 0o660])
def test_private_key_open_to_others_is_refused(tmp_path, alice, bad_mode):
    place = home.Home(tmp_path / "home")
    make_identity(place.path, alice)
    os.chmod(place.key_path, bad_mode)
    message = one_line_error(keys.load_identity, place, PASSWORD, min_kdf=FAST_KDF)
    assert f"chmod 600 {place.key_path}" in message
    assert f"mode {bad_mode:03o}" in message
    one_line_error(keys.read_public_identity, place)


@pytest.mark.parametrize("bad_mode", [0o755, 0o750, 0o707, 0o770])
def test_home_open_to_others_is_refused(tmp_path, alice, bad_mode):
    place = home.Home(tmp_path / "home")
    make_identity(place.path, alice)
    os.chmod(place.path, bad_mode)
    message = one_line_error(keys.load_identity, place, PASSWORD, min_kdf=FAST_KDF)
    assert f"chmod 700 {place.path}" in message


def test_symlinked_private_key_is_refused(tmp_path, alice):
    place = home.Home(tmp_path / "home")
    make_identity(place.path, alice)
    real = tmp_path / "elsewhere.key"
    place.key_path.rename(real)
    place.key_path.symlink_to(real)
    assert "not a regular file" in one_line_error(
        keys.load_identity, place, PASSWORD, min_kdf=FAST_KDF
    )


def test_no_identity_yet(tmp_path):
    message = one_line_error(keys.load_identity, home.Home(tmp_path / "none"), PASSWORD)
    # The hint names the home folder in use (not the default one), so it works as printed.
    assert "no identity yet" in message
    assert message.endswith(f"run: enclave --home {tmp_path / 'none'} --generate")
    (tmp_path / "empty").mkdir(mode=0o700)
    assert "no identity yet" in one_line_error(
        keys.read_public_identity, home.Home(tmp_path / "empty")
    )


def test_mismatched_public_key_is_refused(tmp_path, rsa_keys):
    place = home.Home(tmp_path / "home")
    make_identity(place.path, rsa_keys["alice"])
    place.pub_path.write_bytes(public_pem(rsa_keys["bob"]))
    assert "does not belong to" in one_line_error(keys.read_public_identity, place)
    assert "does not belong to" in one_line_error(
        keys.load_identity, place, PASSWORD, min_kdf=FAST_KDF
    )


def test_home_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("ENCLAVE_HOME", str(tmp_path / "env"))
    assert home.resolve(str(tmp_path / "flag")).path == tmp_path / "flag"
    assert home.resolve(None).path == tmp_path / "env"
    monkeypatch.delenv("ENCLAVE_HOME")
    import platformdirs

    assert home.resolve(None).path == home.Path(
        platformdirs.user_data_dir("enclave", appauthor=False)
    )
    assert home.resolve(None).db_path.name == "enclave.db"


# --- importing the original client's identity ---------------------------------------


def test_import_seed_key_reencrypts_at_new_cost(tmp_path, alice):
    seed_pem = private_pem(alice, b"seed password")
    assert seed_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert keys.is_encrypted_pem(seed_pem)
    imported = keys.import_private_key(seed_pem, "seed password", source="private_key.pem")
    place = home.Home(tmp_path / "home")
    keys.save_identity(place, imported, "a new password!", kdf=FAST_KDF)
    loaded = keys.load_identity(place, "a new password!", min_kdf=FAST_KDF)
    assert loaded.fingerprint == keys.fingerprint(alice.public_key())
    assert loaded.private_key.private_numbers() == alice.private_numbers()
    assert json.loads(place.key_path.read_bytes())["kdf"]["name"] == "scrypt"
    one_line_error(keys.load_identity, place, "seed password", min_kdf=FAST_KDF)


def test_import_unencrypted_pkcs8(alice):
    data = private_pem(alice)
    assert not keys.is_encrypted_pem(data)
    assert (
        keys.import_private_key(data, None, source="k.pem").private_numbers()
        == alice.private_numbers()
    )


def test_import_wrong_password_whose_padding_passes_by_chance(alice):
    """About one wrong password in 256 decrypts to valid CBC padding, and the garbage then
    fails to parse: that is still a wrong password, not a damaged file."""
    data = private_pem(alice, b"seed password")
    for k in range(5000):
        password = f"other {k}".encode()
        try:
            serialization.load_pem_private_key(data, password)
        except ValueError as err:
            if "password" not in str(err).lower():
                break
    else:
        pytest.fail("no wrong password got past the padding in 5,000 tries")
    assert one_line_error(keys.import_private_key, data, password.decode(), source="k.pem") == (
        "wrong password for k.pem"
    )


def test_import_wrong_password(alice):
    data = private_pem(alice, b"seed password")
    assert one_line_error(keys.import_private_key, data, "other", source="k.pem") == (
        "wrong password for k.pem"
    )
    assert "no password" in one_line_error(keys.import_private_key, data, None, source="k.pem")


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda: private_pem(small_rsa(2048), b"pw"), "Enclave identities are RSA-4096"),
        (lambda: private_pem(ec_key(), b"pw"), "an EC key"),
        (lambda: public_pem(small_rsa(2048)), "not a private key"),
        (lambda: b"hello", "not a PEM private key"),
        (
            lambda: b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "not a readable",
        ),
    ],
)
def test_import_refuses(make, why):
    assert why in one_line_error(keys.import_private_key, make(), "pw", source="k.pem")


# --- fingerprints ---------------------------------------------------------------------


def test_fingerprint_is_sha256_of_spki_pem(alice):
    pem = public_pem(alice)
    assert keys.fingerprint(alice.public_key()) == hashlib.sha256(pem).hexdigest()
    assert keys.fingerprint_bytes(alice.public_key()) == hashlib.sha256(pem).digest()


def test_fingerprint_ignores_pem_whitespace(alice):
    pem = public_pem(alice).decode()
    body = "".join(pem.splitlines()[1:-1])
    rewrapped = "-----BEGIN PUBLIC KEY-----\r\n"
    rewrapped += "\r\n".join(body[i : i + 76] for i in range(0, len(body), 76))
    rewrapped += "\r\n-----END PUBLIC KEY-----\r\n\r\n"
    assert rewrapped != pem
    peer = keys.load_peer_key(("\n" + rewrapped).encode(), source="p.pem")
    assert peer.fingerprint == keys.fingerprint(alice.public_key())
    assert peer.pem == pem


def test_grouping():
    fp = hashlib.sha256(b"x").hexdigest()
    grouped = keys.group(fp)
    assert re.fullmatch(r"[0-9a-f]{4}( [0-9a-f]{4}){15}", grouped)
    assert grouped.replace(" ", "") == fp
    assert keys.group(fp, 4) == grouped[:19]


# --- peer keys ------------------------------------------------------------------------


def test_peer_key_accepts_spki_and_pkcs1(rsa_keys):
    from cryptography.hazmat.primitives import serialization

    bob = rsa_keys["bob"]
    pkcs1 = bob.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    for data in (public_pem(bob), pkcs1):
        peer = keys.load_peer_key(data, source="bob.pem")
        assert peer.fingerprint == keys.fingerprint(bob.public_key())
        assert peer.pem == public_pem(bob).decode() and peer.bits == 4096 and not peer.weak


def test_peer_key_2048_is_accepted_but_weak():
    peer = keys.load_peer_key(public_pem(small_rsa(2048)), source="p.pem")
    assert peer.bits == 2048 and peer.weak


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda: private_pem(small_rsa(2048)), "is a private key"),
        (lambda: private_pem(small_rsa(2048), b"pw"), "is a private key"),
        (lambda: b"garbage\x00\xff", "not a PEM public key"),
        (lambda: b"ssh-rsa AAAAB3NzaC1yc2E= bob@box", "OpenSSH"),
        (lambda: public_pem(small_rsa(1024)), "1024-bit RSA key; Enclave needs at least 2048"),
        (lambda: public_pem(small_rsa(2048, 3)), "exponent 3"),
        (lambda: public_pem(ec_key()), "an EC key"),
        (lambda: public_pem(ed25519_key()), "an Ed25519 key"),
        (lambda: public_pem(small_rsa(2048)) * 2, "2 PEM blocks"),
        (lambda: b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "damaged"),
        (lambda: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "certificate"),
    ],
)
def test_peer_key_refusals(make, why):
    assert why in one_line_error(keys.load_peer_key, make(), source="p.pem")


# --- version 2: the store key (docs/KEYFILE.md) ------------------------------------------


def test_an_identity_file_carries_a_store_key(tmp_path, alice):
    place = home.Home(tmp_path / "h")
    made = keys.save_identity(place, alice, PASSWORD, kdf=FAST_KDF)
    doc = json.loads(place.key_path.read_text())
    assert doc["version"] == 2 and len(base64.b64decode(doc["store_key"])) == 12 + 32 + 16
    assert len(made.store_key) == 32
    assert keys.load_identity(place, PASSWORD, min_kdf=FAST_KDF).store_key == made.store_key
    before = place.key_path.read_bytes()
    again = keys.save_identity(place, alice, PASSWORD, kdf=FAST_KDF, force=True)
    assert again.store_key != made.store_key  # a new identity: a new store key
    [kept] = place.path.glob("identity.key.replaced-*")  # the old store's only way in
    assert kept.read_bytes() == before and mode(kept) == 0o600
    kept = keys.save_identity(
        place, alice, "another", kdf=FAST_KDF, force=True, store_key=again.store_key
    )
    assert keys.load_identity(place, "another", min_kdf=FAST_KDF).store_key == kept.store_key


def test_a_version_1_file_gets_its_store_key_at_the_first_unlock(tmp_path, alice, sealed):
    place = home.Home(tmp_path / "h")
    keys.save_identity(place, alice, PASSWORD, kdf=FAST_KDF)
    home.write_atomic(place.key_path, sealed, 0o600)  # as an older Enclave wrote it
    assert json.loads(place.key_path.read_text())["version"] == 1
    first = keys.load_identity(place, PASSWORD, min_kdf=FAST_KDF)
    doc = json.loads(place.key_path.read_text())
    assert first.store_key is not None and doc["version"] == 2
    assert doc["kdf"]["n"] == FAST_KDF.n  # the cost the file had
    assert keys.load_identity(place, PASSWORD, min_kdf=FAST_KDF).store_key == first.store_key


def test_two_programs_upgrading_at_once_agree_on_one_store_key(tmp_path, alice, sealed):
    from concurrent.futures import ThreadPoolExecutor

    place = home.Home(tmp_path / "h")
    keys.save_identity(place, alice, PASSWORD, kdf=FAST_KDF)
    home.write_atomic(place.key_path, sealed, 0o600)
    with ThreadPoolExecutor(4) as pool:
        found = list(
            pool.map(lambda _: keys.load_identity(place, PASSWORD, min_kdf=FAST_KDF), range(4))
        )
    assert len({i.store_key for i in found}) == 1
    assert keys.load_identity(place, PASSWORD, min_kdf=FAST_KDF).store_key == found[0].store_key


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(store_key=base64.b64encode(b"\0" * 60).decode()),
        lambda d: d.update(version=1, store_key=d["store_key"]),  # downgrade with the key
    ],
)
def test_an_altered_store_key_is_refused(tmp_path, alice, change):
    data = keys.encrypt_identity(alice, PASSWORD, kdf=FAST_KDF, store_key=bytes(32))
    why = one_line_error(keys.decrypt_identity, edit(data, change), PASSWORD, min_kdf=FAST_KDF)
    assert "wrong password" in why or "unexpected or missing fields" in why


def test_a_version_2_file_without_its_store_key_is_refused(alice):
    data = keys.encrypt_identity(alice, PASSWORD, kdf=FAST_KDF, store_key=bytes(32))
    why = one_line_error(
        keys.decrypt_identity, edit(data, lambda d: d.pop("store_key")), PASSWORD, min_kdf=FAST_KDF
    )
    assert "unexpected or missing fields" in why
