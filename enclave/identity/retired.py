"""The keys this home rotated away from (``retired/``, docs/PROTOCOL.md "Key succession").

Rules:
- ``retired/<seq>-<fingerprint>.key`` is the key rotation ``seq`` retired, sealed like
  ``identity.key`` under the same password; ``retired/<seq>-<fingerprint>.succession``
  is the statement that hands it over to its successor. Both are 0600.
- A running node needs them until every contact of the rotation's time has switched:
  until then the retired key still answers those contacts. They are unlocked with the
  identity, by the same password; one that does not open (another password, a damaged
  file) is skipped with a warning, and contacts that never switched must pair again.
- ``change-password`` re-seals them with the identity.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

from enclave.errors import UserError

from . import home as homes

RETIRED_DIR = "retired"
MAX_STATEMENT_FILE = 16 * 1024
log = logging.getLogger("enclave.identity.retired")


class Retired(NamedTuple):
    seq: int
    private_key: object  # rsa.RSAPrivateKey
    statement: bytes


def key_files(place: homes.Home) -> list[tuple[int, str, Path]]:
    """(seq, fingerprint, path) of every retired key file, oldest first."""
    folder = place.path / RETIRED_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("*.key"):
        seq, _, fp = path.stem.partition("-")
        if seq.isdigit() and path.with_suffix(".succession").is_file():
            found.append((int(seq), fp, path))
    return sorted(found)


def reseal(place: homes.Home, retired, seal) -> int:
    """Write each of ``retired`` again as ``seal(private_key)`` gives it (a new
    password); how many."""
    by_seq = {seq: path for seq, _, path in key_files(place)}
    for r in retired:
        homes.write_atomic(by_seq[r.seq], seal(r.private_key), homes.KEY_MODE)
    return len(retired)


def load(place: homes.Home, password: str, open_key) -> tuple[Retired, ...]:
    """Every retired key that opens with ``password`` (``open_key(data, password,
    source)`` -> an unlocked identity), with its statement."""
    out = []
    for seq, fp, path in key_files(place):
        try:
            identity = open_key(
                homes.read_file(path, "retired key", 64 * 1024), password, str(path)
            )
        except UserError as err:
            log.warning("retired key %d not unlocked: %s", seq, err)
            continue
        if identity.fingerprint != fp:
            log.warning("retired key %d: %s holds another key; skipped", seq, path.name)
            continue
        statement = homes.read_file(
            path.with_suffix(".succession"), "succession statement", MAX_STATEMENT_FILE
        )
        out.append(Retired(seq, identity.private_key, statement))
    return tuple(out)
