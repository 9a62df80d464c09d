"""The layers of enclave/, checked from the import statements of every module.

The rules (README "Layout"):
- ``enclave.protocol`` is sans-IO: bytes and times in, bytes and events out. It never
  imports asyncio, socket, sqlite3, time (``now`` is passed in) or threads, nor any
  part of Enclave above it. Its one exception: ``protocol/crypto.py`` counts the
  identity's RSA private operations under a ``threading.Lock``, because the node runs
  them on its crypto threads (the lock guards a counter, never protocol state).
- ``errors`` imports nothing of Enclave; ``_fast`` and ``identity`` import only
  ``errors`` besides themselves, ``store`` only ``errors`` and ``_fast`` (its sealer).
- ``node`` builds on everything below it and never imports a face.
- A face uses only the Node API (the ``enclave.node`` package's exports and the
  modules listed in ``NODE_API``), the identity, and ``errors``. It never imports the
  store, the protocol or ``_fast``, nor another face's internals: the shared modules
  ``faces.cli`` (arguments, home, unlocking), ``faces.control`` (asking a running
  node) and ``faces.runner`` (running a node for
  a face) are open to every face; the rest belongs to its own face.
- Imports inside functions count as much as those at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENCLAVE = Path(__file__).resolve().parent.parent / "enclave"

PROTOCOL_FORBIDDEN_STDLIB = {"asyncio", "socket", "selectors", "sqlite3", "threading", "time"}
PROTOCOL_EXCEPTIONS = {("enclave.protocol.crypto", "threading")}
NODE_API = {
    "enclave.node",
    "enclave.node.events",
    "enclave.node.book",
    "enclave.node.settings",
    "enclave.node.addresses",
    "enclave.node.display",
    "enclave.node.key_rotation",
}
SHARED_FACES = {
    "enclave.faces",
    "enclave.faces.cli",
    "enclave.faces.control",
    "enclave.faces.runner",
}
# Which face a module belongs to (its internals are for that face alone).
FACES = {
    "enclave.faces.repl": "repl",
    "enclave.faces.repl_commands": "repl",
    "enclave.faces.jsonlines": "repl",
    "enclave.faces.send": "send",
    "enclave.faces.contacts": "contacts",
    "enclave.faces.web": "web",
    "enclave.faces.web_sessions": "web",  # the page's sign-ins, from the command line
}
BELOW = {  # layer -> the Enclave layers it may import besides itself
    "__main__": {"faces"},  # python -m enclave: the command line
    "_fast": {"errors"},
    "errors": set(),
    "protocol": {"_fast", "errors"},
    "identity": {"errors"},
    "store": {"_fast", "errors"},
    "node": {"_fast", "errors", "protocol", "identity", "store"},
    "faces": {"errors", "identity", "node", "version"},
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ENCLAVE.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def imports(source: str, module: str, is_package: bool) -> list[str]:
    """Every module an import statement in ``source`` names (``from X import y`` gives
    X.y as well as X, since y may be a module)."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]
    return found


def layer_of(name: str) -> str | None:
    if name == "enclave":
        return "version"  # enclave/__init__.py: the version, nothing else
    parts = name.split(".")
    if parts[0] != "enclave":
        return None
    if parts[1] == "__version__":
        return "version"
    return parts[1]


def face_of(name: str) -> str | None:
    for prefix, face in FACES.items():
        if name == prefix or name.startswith(prefix + "."):
            return face
    return None


def violations(module: str, names: list[str]) -> list[str]:
    """What ``module`` may not import, among ``names``; empty when it keeps the rules."""
    layer = layer_of(module)
    bad = []
    for name in names:
        target = layer_of(name)
        if layer == "protocol" and name.split(".")[0] in PROTOCOL_FORBIDDEN_STDLIB:
            if (module, name) not in PROTOCOL_EXCEPTIONS:
                bad.append(f"{module} imports {name}: the protocol core does no I/O")
        if target is None or target == layer or layer in ("version", None):
            if layer == "faces" and target == "faces":
                bad += _face_to_face(module, name)
            continue
        if target == "version" or target in BELOW.get(layer, set()):
            if layer == "faces" and target == "node" and _node_module(name) not in NODE_API:
                bad.append(f"{module} imports {name}: a face uses only the Node API")
            continue
        bad.append(f"{module} imports {name}: {layer} may not import {target}")
    return bad


def _node_module(name: str) -> str:
    """The node module ``name`` comes from: enclave.node.book.open_book -> enclave.node.book;
    enclave.node.Node (a name the package exports) -> enclave.node."""
    parts = name.split(".")
    if len(parts) > 2 and _is_module(ENCLAVE / "node" / parts[2]):
        return ".".join(parts[:3])
    return "enclave.node"


def _is_module(path: Path) -> bool:
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _face_to_face(module: str, name: str) -> list[str]:
    mine, theirs = face_of(module), face_of(name)
    if name in SHARED_FACES or theirs is None or theirs == mine:
        return []
    if module == "enclave.faces.cli" and name in FACES:
        return []  # the command line hands an action to its face's entry module
    return [f"{module} imports {name}: another face's internals"]


def modules() -> list[tuple[str, Path]]:
    return sorted((module_name(p), p) for p in ENCLAVE.rglob("*.py"))


@pytest.mark.parametrize("module, path", modules(), ids=[m for m, _ in modules()])
def test_every_module_keeps_to_its_layer(module, path):
    names = imports(path.read_text(), module, path.name == "__init__.py")
    assert violations(module, names) == []


def test_every_module_has_a_layer():
    layers = {layer_of(m) for m, _ in modules()}
    assert layers <= set(BELOW) | {"version"}


@pytest.mark.parametrize(
    "module, source",
    [
        ("enclave.protocol.connection", "import asyncio"),
        ("enclave.protocol.records", "import time"),
        ("enclave.protocol.legacy", "from threading import Lock"),
        ("enclave.protocol.messages", "def f():\n    import sqlite3"),
        ("enclave.protocol.policy", "from ..node import api"),
        ("enclave.protocol.handshake", "from enclave.store import Store"),
        ("enclave.store.core", "from enclave.protocol import messages"),
        ("enclave.identity.keys", "from enclave.node import settings"),
        ("enclave.node.delivery", "from enclave.faces import runner"),
        ("enclave.node.api", "from ..faces.web import views"),
        ("enclave.faces.repl", "from enclave.store import Store"),
        ("enclave.faces.web.app", "from enclave.protocol.messages import MAX_BODY_CHARS"),
        ("enclave.faces.runner", "from enclave._fast import Pool"),
        ("enclave.faces.web.views", "from enclave.node.delivery import Out"),
        ("enclave.faces.send", "from enclave.node.sessions import Sessions"),
        ("enclave.faces.web.app", "from enclave.faces.repl_commands import Commands"),
        ("enclave.faces.repl_commands", "from enclave.faces.web import views"),
        ("enclave.faces.send", "from enclave.faces import repl"),
    ],
)
def test_a_forbidden_import_is_caught(module, source):
    is_package = module.endswith(("protocol", "web"))
    assert violations(module, imports(source, module, is_package)) != []


@pytest.mark.parametrize(
    "module, source",
    [
        ("enclave.protocol.crypto", "import threading"),
        ("enclave.protocol.connection", "from .._fast import FrameSplitter"),
        ("enclave.node.api", "from enclave.protocol.crypto import Identity"),
        ("enclave.faces.web.app", "from enclave.node import Node, check_text"),
        ("enclave.faces.cli", "from enclave.node.book import open_book"),
        ("enclave.faces.send", "from enclave.faces import cli, runner"),
        ("enclave.faces.repl", "from enclave.faces.repl_commands import Commands"),
        ("enclave.faces.web.app", "from enclave.faces.web import views"),
    ],
)
def test_an_allowed_import_passes(module, source):
    assert violations(module, imports(source, module, False)) == []
