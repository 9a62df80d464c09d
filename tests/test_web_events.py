"""The WebSocket's types are declared once (enclave/faces/web/events.py), and both sides keep
to them: the page's dispatch table handles exactly what the server sends, the page
sends only what the server reads, and the server builds every socket message with
``events.make``. Read from the sources, so a renamed type fails here instead of
falling through the page's dispatch in silence."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import enclave.faces.web
from enclave.faces.web.events import FromPage, ToPage, make

WEB = Path(enclave.faces.web.__file__).parent
MODULES = WEB / "static" / "js"
TABLE = re.compile(r"^const HANDLERS = Object\.freeze\(\{\n(.*?)^\}\);", re.M | re.S)
ENTRY = re.compile(r"^  ([a-z_]+): \S.*,$")
SEND = re.compile(r"(?<![\w.])sendSocket\(")
SEND_TYPE = re.compile(r'sendSocket\("([a-z_]+)"')
COMMENT = re.compile(r"^\s*//.*$", re.M)


def handled_types() -> list[str]:
    """The keys of the page's dispatch table, one ``type: handler,`` per line."""
    source = (MODULES / "events.js").read_text(encoding="utf-8")
    found = TABLE.findall(source)
    assert len(found) == 1, "events.js must hold one `const HANDLERS = Object.freeze({` table"
    types = []
    for line in found[0].splitlines():
        if not line.strip() or line.strip().startswith("//"):
            continue
        entry = ENTRY.match(line)
        assert entry, f"events.js: keep one `type: handler,` per line, not {line.strip()!r}"
        types.append(entry.group(1))
    return types


def sent_types() -> dict[str, list[str]]:
    """Each module's sendSocket calls: the literal type of each."""
    sent: dict[str, list[str]] = {}
    for path in sorted(MODULES.glob("*.js")):
        source = COMMENT.sub("", path.read_text(encoding="utf-8"))
        for call in SEND.finditer(source):
            if source[: call.start()].endswith("function "):
                continue  # its definition
            literal = SEND_TYPE.match(source, call.start())
            assert literal, f"{path.name}: sendSocket's type must be a string literal"
            sent.setdefault(path.name, []).append(literal.group(1))
    return sent


def test_the_page_handles_exactly_the_types_the_server_sends():
    types = handled_types()
    assert len(types) == len(set(types)), "a type is handled twice"
    declared = {t.value for t in ToPage}
    assert not declared - set(types), "the page does not handle these"
    assert not set(types) - declared, "the page handles types the server never sends"


def test_the_page_sends_only_what_the_server_reads():
    sent = sent_types()
    assert sent, "the page sends typing hints; no sendSocket call was found"
    every = {t for types in sent.values() for t in types}
    assert every == {t.value for t in FromPage}


def _server_sources():
    for path in sorted(WEB.glob("*.py")):
        if path.name != "events.py":
            yield path, ast.parse(path.read_text(encoding="utf-8"))


def test_the_server_builds_every_socket_message_through_events():
    for path, tree in _server_sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                assert "type" not in keys, f"{path.name}:{node.lineno}: build it with events.make"
            if isinstance(node, ast.Call):
                if isinstance(node.func, ast.Name) and node.func.id == "dict":
                    named = {k.arg for k in node.keywords}
                    assert "type" not in named, f"{path.name}:{node.lineno}: use events.make"
                if isinstance(node.func, ast.Name) and node.func.id == "make":
                    kind = node.args[0]
                    assert (
                        isinstance(kind, ast.Attribute)
                        and getattr(kind.value, "id", None) == "ToPage"
                    ), f"{path.name}:{node.lineno}: make() takes a ToPage member"
                    assert kind.attr in ToPage.__members__, f"{path.name}:{node.lineno}"


def test_every_type_is_sent_somewhere():
    """A type in the list that nothing sends is a handler nobody calls."""
    used = set()
    for _, tree in _server_sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "ToPage":
                used.add(node.attr)
    assert used == set(ToPage.__members__)


def test_a_message_carries_its_type_as_plain_text():
    message = make(ToPage.PRESENCE, peer="ab" * 32, online=True)
    assert message == {"type": "presence", "peer": "ab" * 32, "online": True}
    assert type(message["type"]) is str
    with pytest.raises(ValueError):
        make("presents")
