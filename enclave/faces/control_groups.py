"""The running node's side of ``enclave group``: one control request per command.

Request: {"op": "group", "action": A, "group": NAME, "peers": [PEER, ...], "text": TEXT}
with A one of create (group = the new name, peers), add / remove / promote (one
peer), disappear ("seconds": 0 or 30..2419200), leave,
list and send (text). Answers: {"groups": [...]} for list; {"group": {...}} after a
change; for send {"state": "queued", "group", "ref", "copies"} and then, within
``DELIVERY_WAIT`` seconds, {"delivered": N, "copies": M} once all copies are delivered
or the wait ends; or {"error": ...}.
"""

from __future__ import annotations

import asyncio

from enclave.errors import UserError
from enclave.node.display import message_ref
from enclave.node.events import DeliveryChanged

ACTIONS = ("create", "add", "remove", "promote", "rename", "disappear", "leave", "list", "send")


def info_dict(info) -> dict:
    return {
        "id": info.id, "name": info.name, "state": info.state, "epoch": info.epoch,
        "disappear_s": info.disappear_s,
        "members": [
            {"fingerprint": m.fingerprint, "name": m.name, "admin": m.admin,
             "contact": m.contact, "you": m.you}
            for m in info.members
        ],
    }  # fmt: skip


async def serve_group(node, request: dict, answer, wait: float) -> None:
    action = request.get("action")
    group, peers, text = request.get("group"), request.get("peers") or [], request.get("text")
    try:
        if action not in ACTIONS or not isinstance(peers, list):
            raise UserError(f"bad control request (group action {action!r})")
        if action == "list":
            await answer({"groups": [info_dict(i) for i in node.groups_list()]})
        elif action == "send":
            await _send(node, group, text, answer, wait)
        elif action == "disappear":
            seconds = request.get("seconds")
            if type(seconds) is not int:
                raise UserError("bad control request (group disappear needs seconds)")
            await answer({"group": info_dict(await node.group_disappearing(group, seconds))})
        else:
            await answer({"group": info_dict(await _change(node, action, group, peers))})
    except UserError as err:
        await answer({"error": str(err)})


async def _change(node, action: str, group: str, peers: list):
    if action == "create":
        return await node.create_group(group, peers)
    if action == "leave":
        return await node.group_leave(group)
    if action == "rename":
        return await node.group_rename(group, peers[0] if len(peers) == 1 else "")
    if len(peers) != 1:
        raise UserError(f"group {action} takes one peer")
    if action == "add":
        return await node.group_add(group, peers[0])
    if action == "promote":
        return await node.group_promote(group, peers[0])
    return await node.group_remove(group, peers[0])


async def _send(node, group: str, text: str, answer, wait: float) -> None:
    done: set[int] = set()
    rowids: set[int] = set()
    all_done = asyncio.Event()

    def watch(event) -> None:
        if isinstance(event, DeliveryChanged) and event.state == "delivered":
            done.add(event.rowid)
            if rowids and rowids <= done:
                all_done.set()

    unsubscribe = node.subscribe(watch, progress=False)
    try:
        sent = await node.group_send(group, text)
        rowids.update(sent.rowids)
        await answer({"state": "queued", "group": sent.group, "ref": message_ref(sent.id),
                      "copies": len(sent.rowids)})  # fmt: skip
        if not rowids <= done:
            try:
                await asyncio.wait_for(all_done.wait(), wait)
            except TimeoutError:
                pass
        await answer({"delivered": len(rowids & done), "copies": len(rowids)})
    finally:
        unsubscribe()
