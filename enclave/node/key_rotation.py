"""One's own identity key: its revocation certificate, and rotation of the key files.

Rules:
- The revocation certificate (``revocation.cert``, 0600, next to the key) is made when
  the key is made, while the private key is unlocked, so ``revoke`` can send it later
  without the password. Whoever holds it can revoke the key, nothing more: keep a copy
  offline (printed or on a removable disk) and delete it from the machine if you like.
- Rotation keeps the old key, still sealed under the same password, as
  ``retired/<seq>-<old fp>.key`` (0600) next to the succession statement that hands it
  over (``retired/<seq>-<old fp>.succession``); only then are the new key files written,
  so a crash leaves either the old identity or the new one with its statement. ``seq``
  counts the rotations of this home, from 1 (docs/PROTOCOL.md, "Key succession").
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from enclave.identity import home as homes
from enclave.identity import keys
from enclave.identity.retired import RETIRED_DIR
from enclave.protocol import crypto
from enclave.protocol import succession as sc

REVOCATION_NAME = "revocation.cert"


def revocation_path(place: homes.Home) -> Path:
    return place.path / REVOCATION_NAME


def write_revocation_certificate(place: homes.Home, private_key, now_ms: int) -> Path:
    """Sign and write the certificate that revokes ``private_key``; its path."""
    cert = sc.sign_revocation(crypto.Identity(private_key), now_ms)
    path = revocation_path(place)
    homes.write_atomic(path, sc.encode_revocation(cert), homes.KEY_MODE)
    return path


class Rotation(NamedTuple):
    old_fp: str
    new_fp: str
    seq: int
    statement: bytes  # the encoded succession statement


def _retired(place: homes.Home) -> Path:
    folder = place.path / RETIRED_DIR
    folder.mkdir(mode=homes.DIR_MODE, exist_ok=True)
    folder.chmod(homes.DIR_MODE)
    return folder


def rotations(place: homes.Home) -> list[Path]:
    """The succession statements this home made, oldest first."""
    folder = place.path / RETIRED_DIR
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.succession"), key=lambda p: int(p.name.split("-")[0]))


def rotate(
    place: homes.Home, password: str, new_key, now_ms: int, *, kdf=None, min_kdf=None
) -> Rotation:
    """Replace the identity of ``place`` by ``new_key`` under the same password, keeping
    the old key retired with the statement that hands it over (UserError for a wrong
    password: nothing changes)."""
    old = keys.load_identity(place, password, min_kdf=min_kdf or keys.MIN_KDF)
    seq = len(rotations(place)) + 1
    statement = sc.sign_succession(
        crypto.Identity(old.private_key), crypto.Identity(new_key), seq, now_ms
    )
    data = sc.encode_succession(statement)
    stem = _retired(place) / f"{seq}-{old.fingerprint}"
    sealed = homes.read_file(place.key_path, "private key", keys.MAX_FILE_BYTES)
    homes.write_atomic(stem.with_suffix(".key"), sealed, homes.KEY_MODE)
    homes.write_atomic(stem.with_suffix(".succession"), data, homes.KEY_MODE)
    new = keys.save_identity(
        place, new_key, password, force=True, kdf=kdf or keys.DEFAULT_KDF, store_key=old.store_key
    )  # the same history: the same store key
    return Rotation(old.fingerprint, new.fingerprint, seq, data)


class HomeRotated(NamedTuple):
    old_fp: str
    new_fp: str
    seq: int
    waiting: int  # contacts that switch when they next talk to this home


def rotate_home(place: homes.Home, password: str, now_ms: int, new_key=None) -> HomeRotated:
    """``enclave rotate-key`` with no node running: a new key (RSA-4096 unless given),
    the files rotated, a new revocation certificate, and every contact in the store
    owing the rotation (the next start hands it over)."""
    import time

    from enclave.store import Store

    rotation = rotate(place, password, new_key or keys.generate(), now_ms)
    unlocked = keys.load_identity(place, password)
    write_revocation_certificate(place, unlocked.private_key, now_ms)
    waiting = 0
    if place.db_path.exists():
        with Store.open(place.db_path) as store:
            waiting = store.begin_handover(rotation.seq, time.time())
    return HomeRotated(rotation.old_fp, rotation.new_fp, rotation.seq, waiting)


class Told(NamedTuple):
    told: list[str]  # contacts (names, else fingerprints) whose node took the certificate
    unreachable: list[str]  # contacts with no address, or whose node did not answer


def read_certificate(path) -> bytes:
    """The revocation certificate in ``path`` (UserError if it is not one)."""
    from enclave.errors import PeerError, UserError

    data = homes.read_file(path, "revocation certificate", sc.MAX_STATEMENT_BYTES)
    try:
        sc.decode_revocation(data)
    except PeerError as err:
        raise UserError(f"{path} is not a revocation certificate ({err.detail})") from None
    return data


async def send_revocation(db_path, certificate: bytes, timeout: float) -> Told:
    """``enclave revoke``: hand ``certificate`` to every contact's node at each of its
    addresses, all at once; no password, no session (docs/PROTOCOL.md, "Revocation
    certificates"). Each node answers "received" whatever it decides."""
    import asyncio

    from enclave.store import Store

    with Store.open(db_path) as store:
        peers = [p for p in store.list_peers() if not p.revoked]
        # No password: sealed names cannot be read, so those contacts go by fingerprint.
        labels = [p.fingerprint[:16] if store.locked or not p.name else p.name for p in peers]
    results = await asyncio.gather(*(_tell(p.dial_addresses, certificate, timeout) for p in peers))
    told = [label for label, ok in zip(labels, results, strict=True) if ok]
    missed = [label for label, ok in zip(labels, results, strict=True) if not ok]
    return Told(told, missed)


async def _tell(addresses, certificate: bytes, timeout: float) -> bool:
    import asyncio

    frame = sc.REVOKE_MAGIC + certificate
    for address in addresses:
        host, _, port = address.rpartition(":")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port)), timeout
            )
        except (OSError, TimeoutError, ValueError):
            continue
        try:
            writer.write(len(frame).to_bytes(4, "big") + frame)
            answer = await asyncio.wait_for(reader.readexactly(4 + 5), timeout)
            if answer[4:] == sc.REVOKE_MAGIC + sc.RECEIVED:
                return True
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
    return False


REVOKED_NAME = "revoked"  # the home's own key was revoked: no node starts with it


def mark_revoked(place: homes.Home, certificate: bytes) -> None:
    """Remember that this home's key is revoked, when the certificate is its own."""
    own = keys.read_public_identity(place).fingerprint if place.has_identity() else None
    if own is not None and sc.decode_revocation(certificate).fp.hex() == own:
        homes.write_atomic(place.path / REVOKED_NAME, certificate, homes.KEY_MODE)


def refuse_revoked(place: homes.Home) -> None:
    """UserError when this home's current key was revoked (``enclave revoke``)."""
    from enclave.errors import UserError

    marker = place.path / REVOKED_NAME
    if not marker.is_file():
        return
    revoked = sc.decode_revocation(marker.read_bytes()).fp.hex()
    if place.has_identity() and keys.read_public_identity(place).fingerprint == revoked:
        raise UserError(
            "this identity's key is revoked (enclave revoke); make a new one with"
            " enclave generate --force, then pair again with your contacts"
        )
