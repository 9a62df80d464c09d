"""The corpus of the connection fuzz: inputs worth replaying, kept as JSON.

``tests/corpus/connection/<target>.json`` keeps the shortest input the strategies found
for each (target, outcome), plus hand-written edge cases. An input is raw bytes
(``hex``), a mutation of the genuine input (``mutate``, the ops of
``support.fuzz_inputs.mutate``) or plaintexts to seal under the session keys
(``sealed``, fingerprints as the ``SENDER``/``RECEIVER`` placeholders of
``support.fuzz_sealed``). ``test_corpus_replays`` feeds each to a rig of alice and bob
and to one of carol and mallory with other random values, and checks every property
and the recorded end state.

``ENCLAVE_FUZZ_CORPUS=update`` makes a run add an entry for every (target, outcome) it
reaches that the corpus lacks, if the other rig ends the same way: the fuzz tests
``note`` what they reach, and the entries are written once, when the run ends.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from support.fuzz_checks import Outcome, feed
from support.fuzz_inputs import mutate
from support.fuzz_rig import Rig, Target
from support.fuzz_sealed import sealed_stream

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "connection"
_UPDATE_CORPUS = os.environ.get("ENCLAVE_FUZZ_CORPUS", "") == "update"
_FOUND: dict[tuple[str, str], tuple[int, dict]] = {}
_OTHER_RIG: list[Rig] = []  # in corpus-update runs: a rig of other keys


def replay(rig: Rig, name: str, source: dict, chunking) -> Outcome:
    """Feed a corpus input (raw bytes, a mutation of the genuine input, or plaintexts
    to seal under the session keys) to a fresh connection of ``rig`` in state ``name``."""
    target = rig.targets()[name]
    bounds: list[int] = []
    if "mutate" in source:
        stream, bounds = mutate(target.frames, source["mutate"])
    elif "sealed" in source:
        stream = sealed_stream(rig, name, [bytes.fromhex(p) for p in source["sealed"]])
    else:
        stream = bytes.fromhex(source["hex"])
    return feed(target, stream, tuple(chunking), bounds)


def note(target: Target, source: dict, chunking, outcome: Outcome) -> None:
    """In corpus-update runs, keep the shortest input per (target, outcome) whose
    outcome does not depend on the keys or the recorded random values."""
    if not _UPDATE_CORPUS:
        return
    entry = {
        "input": source,
        "chunking": [chunking[0], list(chunking[1])],
        "expect": {"state": outcome.conn.state.value, "reason": outcome.conn.close_reason},
    }
    key = (target.name, outcome.label)
    size = len(json.dumps(entry))
    if key in _FOUND and size >= _FOUND[key][0]:
        return
    if replay(_OTHER_RIG[0], target.name, source, chunking).label == outcome.label:
        _FOUND[key] = (size, entry)


def start_update(rsa_keys, config: pytest.Config) -> None:
    """In a corpus-update run, at the start of each fuzz module (with the randomness
    patched): make the rig of other keys once, and have the corpus written at the end."""
    if _UPDATE_CORPUS and not _OTHER_RIG:
        _OTHER_RIG.append(Rig(rsa_keys, "carol", "mallory"))
        config.add_cleanup(write_found)


def write_found() -> None:
    """Add what this run found to the corpus files (labels they already hold stay)."""
    CORPUS.mkdir(parents=True, exist_ok=True)
    for name in sorted({name for name, _ in _FOUND}):
        path = CORPUS / f"{name}.json"
        entries = json.loads(path.read_text()) if path.exists() else []
        have = {label_of(e) for e in entries}
        for (target, label), (_, entry) in sorted(_FOUND.items()):
            if target == name and label not in have:
                entries.append({"why": f"shortest input seen that ends in {label}", **entry})
        entries.sort(key=label_of)
        lines = ",\n".join(" " + json.dumps(entry) for entry in entries)
        path.write_text(f"[\n{lines}\n]\n")


def label_of(entry: dict) -> str:
    return entry["expect"]["reason"] or entry["expect"]["state"]


def corpus() -> list:
    """(target, entry) for every kept input, with readable test ids."""
    cases = []
    for path in sorted(CORPUS.glob("*.json")):
        for n, entry in enumerate(json.loads(path.read_text())):
            cases.append(pytest.param(path.stem, entry, id=f"{path.stem}-{n}-{label_of(entry)}"))
    return cases
