"""Opening a home's store as its node does: with the store key from its identity file
(the history is sealed under it; enclave.store.sealing)."""

from __future__ import annotations

from pathlib import Path

from enclave.identity import home, keys
from enclave.store import Store


def unlocked_store(home_path: Path, password: str) -> Store:
    place = home.Home(Path(home_path))
    return Store.open(place.db_path, key=keys.load_identity(place, password).store_key)
