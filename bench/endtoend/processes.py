"""The run's processes and the keys they use.

Every process is a ``support.procs.Proc`` (tests/support/procs.py, the harness the
tests use too): nodes run tests/support/node_worker.py ``--quiet`` (replies only, so a
measured node does no work for its harness), references bench/ref_worker.py, the
broadcast's recipients bench/fleet_worker.py. Each process's stderr goes to the run's
temporary folder. A node is always stopped the same way: ``quit`` to each, then each
process is waited for (``stop``).

Keys are unencrypted PEM files in the run's temporary folder (a benchmark shortcut;
Enclave itself keeps keys encrypted): RSA-4096 for the nodes, RSA-2048 (the protocol's
minimum) for the many peers of the crowd cases, whose own key work is not measured.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from support.procs import NodeProc, Proc

from endtoend import BENCH

REF_WORKER = BENCH / "ref_worker.py"
FLEET_WORKER = BENCH / "fleet_worker.py"


def node(
    name: str,
    tmp: Path,
    key_file: Path,
    settings: dict | None = None,
    port: int = 0,
    sealed: bool = True,
) -> NodeProc:
    """A node with its home in ``tmp``, listening on 127.0.0.1 (on ``port``, or any free
    one), once it is ready. Its history is sealed, as a user's node keeps it, unless
    ``sealed`` is False (the previous version's clear store, for a side by side)."""
    return NodeProc.start(
        name,
        tmp / name,
        key_file,
        port,
        log_dir=tmp,
        quiet=True,
        settings=settings,
        timeout=60,
        reply_timeout=60,
        sealed=sealed,
    )


def ref(name: str, tmp: Path, *args) -> Proc:
    """A reference worker (bench/ref_worker.py ROLE ...)."""
    return Proc(name, [REF_WORKER, *args, "--dir", tmp], tmp)


def fleet(name: str, tmp: Path, *args) -> Proc:
    """A process holding several recipient nodes (bench/fleet_worker.py)."""
    return Proc(name, [FLEET_WORKER, *args], tmp)


def introduce(x: NodeProc, x_pub: Path, y: NodeProc, y_pub: Path) -> None:
    """Each of two nodes adds the other as a peer at its address."""
    x.request("add_peer", pem=y_pub.read_text(), address=f"127.0.0.1:{y.port}")
    y.request("add_peer", pem=x_pub.read_text(), address=f"127.0.0.1:{x.port}")


def stop(*nodes: NodeProc) -> None:
    """Ask every node to stop, then wait for each (they stop side by side)."""
    for p in nodes:
        p.request("quit")
    for p in nodes:
        p.close()


# --- keys ----------------------------------------------------------------------------------


def _new_key_pem(bits: int) -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def _gen(_name: str) -> tuple[bytes, bytes]:
    return _new_key_pem(4096)


def _gen_small(_index: int) -> tuple[bytes, bytes]:
    return _new_key_pem(2048)


def make_keys(tmp: Path, names: list[str]) -> dict[str, tuple[Path, Path]]:
    """RSA-4096 keys, by name: (private key file, public key file)."""
    with ProcessPoolExecutor(2) as pool:
        pems = list(pool.map(_gen, names))
    out = {}
    for name, (private, public) in zip(names, pems, strict=True):
        key_file, pub_file = tmp / f"{name}.key.pem", tmp / f"{name}.pub.pem"
        _write_private(key_file, private)
        pub_file.write_bytes(public)
        out[name] = (key_file, pub_file)
    return out


def small_keys(folder: Path, count: int, stem: str) -> list[tuple[Path, bytes]]:
    """``count`` RSA-2048 keys in a new ``folder`` as ``<stem><i>.pem``: each one's private
    key file and public PEM."""
    folder.mkdir()
    with ProcessPoolExecutor(2) as pool:
        pems = list(pool.map(_gen_small, range(count)))
    out = []
    for i, (private, public) in enumerate(pems):
        key_file = folder / f"{stem}{i}.pem"
        key_file.write_bytes(private)
        out.append((key_file, public))
    return out


def _write_private(path: Path, pem: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
