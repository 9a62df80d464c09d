"""The page's group routes: the list, create, add, remove, leave, post, history.

Rules:
- Only the Node's group calls are used (``groups_list``, ``group``, ``create_group``,
  ``group_add``, ``group_remove``, ``group_leave``, ``group_send``, ``group_history``);
  they hold every rule of who may do what, and say a mistake in one line (UserError,
  answered 400 like every other).
- A group is named in the path by hex of its id (8 to 64 digits), never by its name:
  a name is a peer's text, and two groups may share one. A member is named by its
  fingerprint (64 lowercase hex), as peers are everywhere else on the page.
- Our own post is one line whatever the number of members, with each member's state
  of it (``states``); the page shows "✓ 2/3" from them.
- A group's history carries its membership changes too (``changes``, from the log), so
  the page's system lines ("bob added carol") outlive a reload.
"""

from __future__ import annotations

from quart import Quart, request

from enclave.faces.web import views

MAX_GROUP_NAME = 64
MAX_MEMBERS = 100
HISTORY_PAGE = 100
HISTORY_MAX = 500
_HEX = frozenset("0123456789abcdef")


def group_routes(app: Quart, backend, api_error, body, fingerprint, message_text) -> None:
    """Every route under ``/api/groups``; its handlers are named ``group_*`` (Quart's
    endpoint names are one namespace for the whole app)."""

    def group_id(gid: str) -> str:
        return _group_id(backend, api_error, gid)

    _member_routes(app, backend, body, fingerprint, group_id, api_error)

    @app.get("/api/groups")
    async def group_list():
        node = backend.require_node()
        return {"groups": [views.group(g) for g in node.groups_list()]}

    @app.post("/api/groups")
    async def group_create():
        node = backend.require_node()
        data = await body()
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise api_error(400, "'name' is required: the group's name")
        if len(name) > MAX_GROUP_NAME:
            raise api_error(400, f"'name' is too long ({MAX_GROUP_NAME} characters at most)")
        members = data.get("members")
        if not isinstance(members, list) or not members or len(members) > MAX_MEMBERS:
            raise api_error(400, "'members' is required: the fingerprints of 1 to 100 contacts")
        fps = [fingerprint(m) for m in members]
        return {"group": views.group(await node.create_group(name.strip(), fps))}

    @app.get("/api/groups/<gid>/messages")
    async def group_history(gid: str):
        gid = group_id(gid)
        limit = _limit(api_error)
        lines = backend.node.group_history(gid, limit)
        changes = backend.node.group_changes(gid)
        return {
            "posts": [views.group_post(gid, line) for line in lines],
            "changes": [views.group_change(c) for c in changes],
        }

    @app.post("/api/groups/<gid>/send")
    async def group_send(gid: str):
        gid = group_id(gid)
        text = message_text(await body())
        sent = await backend.node.group_send(gid, text)
        return {"id": sent.id.hex(), "members": list(sent.members)}


def _group_id(backend, api_error, gid: str) -> str:
    if not 8 <= len(gid) <= 64 or not _HEX.issuperset(gid):
        raise api_error(400, "a group is named by its id: 8 to 64 lowercase hex digits")
    node = backend.require_node()
    return node.group(gid).id  # UserError: no such group, or two match


def _member_routes(app: Quart, backend, body, fingerprint, group_id, api_error) -> None:
    """Adding, removing and leaving: the changes to a group's members; and its
    disappearing-messages timer (admins)."""

    async def member(gid: str) -> tuple[str, str]:
        return group_id(gid), fingerprint((await body()).get("peer"))

    @app.post("/api/groups/<gid>/add")
    async def group_add(gid: str):
        gid, fp = await member(gid)
        return {"group": views.group(await backend.node.group_add(gid, fp))}

    @app.post("/api/groups/<gid>/remove")
    async def group_remove(gid: str):
        gid, fp = await member(gid)
        return {"group": views.group(await backend.node.group_remove(gid, fp))}

    @app.post("/api/groups/<gid>/disappear")
    async def group_disappear(gid: str):
        gid = group_id(gid)
        seconds = (await body()).get("seconds")
        if type(seconds) is not int:
            raise api_error(400, "'seconds' must be a whole number (0: off)")
        return {"group": views.group(await backend.node.group_disappearing(gid, seconds))}

    @app.post("/api/groups/<gid>/leave")
    async def group_leave(gid: str):
        gid = group_id(gid)
        return {"group": views.group(await backend.node.group_leave(gid))}


def _limit(api_error) -> int:
    text = request.args.get("limit")
    if text is None:
        return HISTORY_PAGE
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= HISTORY_MAX:
        raise api_error(400, f"'limit' must be a whole number from 1 to {HISTORY_MAX}")
    return int(text)
