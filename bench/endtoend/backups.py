"""Backup and restore of a home whose store holds N messages (100,000; quick: 5,000).

The home: an RSA-4096 identity at Enclave's own KDF cost, one contact, and N messages
of 100 characters with it, half each way (the outgoing ones delivered), written
through the store's own commit cycles. Then, on the same files:

- backup, in this process: the keys first (one scrypt run, untimed: the password's
  cost, not the throughput), then ``backup.write_sealed`` timed: the store's snapshot
  (SQLite's online backup), sealing every chunk, writing and syncing the file. MB/s of
  the backup file (1 MB = 10^6 bytes), the figure the target is for.
- ``enclave backup`` as a process: wall, with its two scrypt runs (unlocking the
  identity, then the backup's key) and the interpreter's start.
- restore, in this process: ``restore.open_backup`` untimed (scrypt, the size check),
  then ``restore.restore`` timed: every chunk decrypted and checked, the files written
  and synced into a new folder, renamed into place.
- ``enclave restore`` as a process: wall, with its one scrypt run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from endtoend import REPO

PASSWORD = "bench backup password"
BATCH = 4096
BODY_CHARS = 100


def backup_case(tmp: Path, key_file: Path, peer_pub: Path, n: int) -> dict:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from enclave.identity import backup, home, keys, restore

    place = home.Home(tmp / "bak-home")
    key = load_pem_private_key(key_file.read_bytes(), None)
    keys.save_identity(place, key, PASSWORD)
    fill_store(place.db_path, peer_pub.read_text(), n)
    store_bytes = place.db_path.stat().st_size

    sealing = backup.Sealing.new(PASSWORD)
    t0 = time.perf_counter()
    written = backup.write_sealed(place, tmp / "bak-inproc.bak", sealing, False)
    backup_s = time.perf_counter() - t0
    opened = restore.open_backup(tmp / "bak-inproc.bak", PASSWORD)
    t0 = time.perf_counter()
    restore.restore(opened, home.Home(tmp / "bak-restored"), force=False)
    restore_s = time.perf_counter() - t0

    target = tmp / "bak-cli.bak"
    backup_cli_s = _wall("--home", str(place.path), "backup", str(target))
    restore_cli_s = _wall("restore", str(target), "--home", str(tmp / "bak-restored-cli"))
    mb = written.size / 1e6
    return {
        "messages": n,
        "full": n >= 100_000,
        "store_mb": store_bytes / 1e6,
        "backup_mb": mb,
        "backup_s": backup_s,
        "backup_mb_s": mb / backup_s,
        "backup_cli_s": backup_cli_s,
        "restore_s": restore_s,
        "restore_mb_s": mb / restore_s,
        "restore_cli_s": restore_cli_s,
    }


def fill_store(db_path: Path, peer_pem: str, n: int) -> None:
    """``n`` messages with one contact, half each way, in commit cycles of ``BATCH``."""
    from enclave.identity import keys
    from enclave.store import Store

    peer = keys.load_peer_key(peer_pem.encode(), source="the bench's peer").fingerprint
    now = int(time.time() * 1000)
    with Store.open(db_path, sync="normal") as store:
        store.upsert_peer(peer, peer_pem, "127.0.0.1:9", "bob", time.time())
        for start in range(0, n // 2, BATCH):
            count = min(BATCH, n // 2 - start)
            incoming = [(peer, os.urandom(16), _body(), now, now, False) for _ in range(count)]
            store.write_cycle(incoming=incoming)
            rows = [
                (store.reserve_rowid(), peer, os.urandom(16), _body(), now) for _ in range(count)
            ]
            store.write_cycle(enqueue=rows)
            store.write_cycle(delivered=[(peer, [r[0] for r in rows])], now_ms=now)


def _body() -> str:
    return os.urandom(BODY_CHARS // 2).hex()


def _wall(*argv: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env["ENCLAVE_PASSWORD"] = PASSWORD
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "enclave", *argv],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    return time.perf_counter() - t0


if __name__ == "__main__":  # a quick look: python bench/endtoend/backups.py 20000
    import tempfile

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        made = [rsa.generate_private_key(public_exponent=65537, key_size=4096) for _ in "ab"]
        (tmp / "a.pem").write_bytes(
            made[0].private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (tmp / "b.pub").write_bytes(
            made[1]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        print(backup_case(tmp, tmp / "a.pem", tmp / "b.pub", count))
