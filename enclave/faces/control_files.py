"""The running node's side of ``enclave send-file``: one control request per file.

Request: {"op": "file", "peer": PEER, "text": ABSOLUTE PATH, "wait": bool}. Answers:
{"state": "offered", "key", "ref", "peer", "name", "size"}; with "wait", then
{"progress": BYTES, "size": SIZE} at most every PROGRESS_EVERY seconds, and last
{"state": "delivered" | "failed" | "cancelled", "reason"}; or {"error": ...}.
"""

from __future__ import annotations

import asyncio

from enclave.errors import UserError
from enclave.node.display import message_ref
from enclave.node.events import FileChanged

SETTLED = ("delivered", "failed", "cancelled")


async def serve_file(node, peer: str, path: str, wait: bool, answer) -> None:
    changes: asyncio.Queue = asyncio.Queue()
    key: dict = {}

    def watch(event) -> None:
        if isinstance(event, FileChanged) and event.key == key.get("key"):
            changes.put_nowait(event)

    unsubscribe = node.subscribe(watch)
    try:
        try:
            sent = await node.send_file(peer, path)
        except UserError as err:
            await answer({"error": str(err)})
            return
        key["key"] = sent.key
        record = node.contact(sent.peer)
        await answer({
            "state": "offered", "key": sent.key, "ref": message_ref(sent.id), "peer": sent.peer,
            "name": record.name if record else None, "file": sent.name, "size": sent.size,
        })  # fmt: skip
        state = node.file(sent.key)
        while wait and state.state not in SETTLED:
            state = await changes.get()
            if state.state in SETTLED:
                break
            await answer({"progress": state.done_bytes, "size": state.size})
        if wait:
            await answer({"state": state.state, "reason": state.reason})
    finally:
        unsubscribe()
