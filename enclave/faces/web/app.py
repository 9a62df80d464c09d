"""The Quart app: the page shell, its static files, the JSON API and one WebSocket.

Rules:
- ``security.Guard`` checks every request before a handler runs (``before_request``,
  ``before_websocket``): Host everywhere; the token on ``/api`` and ``/ws``; the Origin
  on ``/ws`` and on every POST (``/api/device/resume`` trades a device cookie for the
  token instead, signin.py). The page shell and ``/static`` need no token: they hold
  nothing secret (the page reads its token from the URL fragment), so a browser can
  load them before it knows the token.
- ``/static`` serves the page: ``index.html``'s ES modules under ``static/js`` (no build
  step), always as JavaScript, and its stylesheet and icon.
- Handlers only check input and call the Node (through ``Backend``); they hold no
  protocol or storage rule. Every mistake is a JSON ``{"error": "..."}`` with a 4xx
  status and one line a person can act on; nothing echoes input as HTML.
- The WebSocket carries events to the page and typing hints from it. A page that
  cannot keep up is told to ``resync`` (refetch) instead of queueing without bound.
- Adding a peer may set its protocol ("auto" or "v1"). The Node refuses to mark v1 a
  peer that has spoken v2 (409); the page offers no way to force it: that takes the
  command line, where the warning is printed beside the flag.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from quart import Quart, jsonify, request, websocket
from quart.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from enclave.errors import UserError
from enclave.faces.web import files, groups, pairing, security, signin, views
from enclave.faces.web.backend import Backend, NotReady
from enclave.faces.web.events import FromPage, ToPage, make
from enclave.faces.web.nearby import nearby_routes
from enclave.identity import safety
from enclave.node import DowngradeRefused, check_text

log = logging.getLogger("enclave.faces.web")

STATIC = Path(__file__).parent / "static"
JS_TYPE = "text/javascript; charset=utf-8"
MAX_BODY_BYTES = 256 * 1024  # a 64 KiB PEM or a 10,000-character message, JSON-escaped
MAX_KEY_CHARS = 64 * 1024
MAX_ADDRESS_CHARS = 300
MAX_WS_MESSAGE = 4096
WS_QUEUE = 1000
HISTORY_PAGE = 50
HISTORY_MAX = 200
SEARCH_MAX_CHARS = 200
SEARCH_RESULTS = 50
_HEX = frozenset("0123456789abcdef")


class SafeJSON(DefaultJSONProvider):
    """JSON with <, > and & escaped: even a page that misread an answer as HTML
    would find no markup in it."""

    def dumps(self, obj, **kwargs) -> str:
        return safe_dumps(super().dumps(obj, **kwargs))


def safe_dumps(text: str) -> str:
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _send(message: dict):
    return websocket.send(safe_dumps(json.dumps(message)))


class ApiError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def create_app(backend: Backend, guard: security.Guard) -> Quart:
    app = Quart(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.json = SafeJSON(app)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["BODY_TIMEOUT"] = 30
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 0
    _guard_requests(app, guard)
    _errors(app)
    _identity_routes(app, backend)
    _peer_routes(app, backend)
    _message_routes(app, backend)
    files.file_routes(app, backend, ApiError, _fingerprint)
    groups.group_routes(app, backend, ApiError, _body, _fingerprint, _message_text)
    pairing.pairing_routes(app, backend, ApiError, _body)
    signin.device_routes(app, backend, guard, ApiError, _body)
    nearby_routes(app, backend)
    _websocket(app, backend)

    @app.get("/")
    async def shell():
        return await app.send_static_file("index.html")

    return app


# --- the guard ------------------------------------------------------------------------


def _guard_requests(app: Quart, guard: security.Guard) -> None:
    @app.before_request
    async def check_request():
        host = request.headers.get("Host")
        if not guard.host_ok(host):
            raise ApiError(403, "this page answers only to its own address (Host refused)")
        if request.method not in ("GET", "HEAD") and not _origin_ok(guard, host):
            raise ApiError(403, "request from another site refused (Origin)")
        if (
            request.path.startswith("/api/")
            and request.path != signin.RESUME
            and not guard.bearer_ok(request.headers.get("Authorization"))
        ):
            raise ApiError(
                401, "the launch token is missing or wrong; open the address Enclave printed"
            )

    @app.before_websocket
    async def check_websocket():
        host = websocket.headers.get("Host")
        if not guard.host_ok(host):
            raise ApiError(403, "Host refused")
        if not guard.origin_ok(websocket.headers.get("Origin"), host):
            raise ApiError(403, "Origin refused")
        if not guard.subprotocol_ok(websocket.requested_subprotocols):
            raise ApiError(401, "the launch token is missing or wrong")

    @app.after_request
    async def headers(response):
        response.headers.update(security.HEADERS)
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        elif request.path.endswith(".js") and response.status_code == 200:
            # Browsers run a module only when it is served as JavaScript, and nosniff
            # forbids guessing: set here, not left to the platform's table of types.
            response.headers["Content-Type"] = JS_TYPE
        return response


def _origin_ok(guard: security.Guard, host: str | None) -> bool:
    origin = request.headers.get("Origin")
    return origin is None or guard.origin_ok(origin, host)


def _errors(app: Quart) -> None:
    @app.errorhandler(ApiError)
    async def api_error(err: ApiError):
        return _error(err.status, str(err))

    @app.errorhandler(UserError)
    async def user_error(err: UserError):
        return _error(400, " ".join(str(err).split()))

    @app.errorhandler(NotReady)
    async def not_ready(err: NotReady):
        return _error(409, str(err))

    @app.errorhandler(HTTPException)
    async def http_error(err: HTTPException):
        return _error(err.code or 500, err.description or err.name)

    @app.errorhandler(Exception)
    async def bug(err: Exception):
        log.error("web request failed: %s: %s", type(err).__name__, err)
        return _error(500, f"internal problem ({type(err).__name__}); the node keeps running")


def _error(status: int, text: str):
    response = jsonify({"error": text})
    response.status_code = status
    return response


# --- input --------------------------------------------------------------------------------


async def _body() -> dict:
    if not request.is_json:
        raise ApiError(415, "send a JSON body (Content-Type: application/json)")
    data = await request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def _text(data: dict, key: str, limit: int, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None or (value == "" and not required):
        if required:
            raise ApiError(400, f"'{key}' is required")
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"'{key}' must be text")
    if len(value) > limit:
        raise ApiError(400, f"'{key}' is too long ({limit:,} characters at most)")
    return value


def _reply(data: dict) -> tuple[str | None, str | None]:
    """The message a new one quotes: (its id, its direction), or (None, None)."""
    reply = data.get("reply_to")
    if reply is None:
        return None, None
    if not isinstance(reply, str) or len(reply) != 32 or not set(reply) <= _HEX:
        raise ApiError(400, "'reply_to' is the quoted message's id: 32 lowercase hex digits")
    direction = data.get("reply_direction")
    if direction not in ("in", "out"):
        raise ApiError(400, '\'reply_direction\' must be "in" or "out"')
    return reply, direction


def _fingerprint(value: object) -> str:
    if not isinstance(value, str) or len(value) != 64 or not _HEX.issuperset(value):
        raise ApiError(400, "a peer is named by its fingerprint: 64 lowercase hex digits")
    return value


def _int_arg(name: str, low: int, high: int, default: int | None) -> int | None:
    text = request.args.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise ApiError(400, f"'{name}' must be a whole number from {low} to {high}")
    return int(text)


def _peer(backend: Backend, fp: str):
    node = backend.require_node()
    return node.resolve(_fingerprint(fp))


# --- routes -------------------------------------------------------------------------------


def _identity_routes(app: Quart, backend: Backend) -> None:
    @app.get("/api/state")
    async def state():
        return {"state": backend.state, "home": str(backend.place.path)}

    @app.post("/api/identity/create")
    async def create():
        data = await _body()
        password = _text(data, "password", 1 << 16)
        repeat = _text(data, "repeat", 1 << 16)
        warning = await backend.create(password, repeat)
        return {"state": backend.state, "warning": warning}

    @app.post("/api/identity/unlock")
    async def unlock():
        data = await _body()
        await backend.unlock(_text(data, "password", 1 << 16))
        return {"state": backend.state}

    @app.get("/api/me")
    async def me():
        return views.me(backend.require_node())


def _peer_routes(app: Quart, backend: Backend) -> None:
    """Everything under ``/api/peers``, registered in this order."""
    _peer_list_routes(app, backend)
    _conversation_routes(app, backend)
    _peer_state_routes(app, backend)


def _peer_list_routes(app: Quart, backend: Backend) -> None:
    """The list of peers, and adding one to it."""

    @app.get("/api/peers")
    async def peers():
        node = backend.require_node()
        out = []
        for status in node.peers():
            fp = status.peer.fingerprint
            last = node.history(fp, 1)
            out.append(views.peer(status, backend.unread[fp], last[-1] if last else None))
        return {"peers": out}

    @app.post("/api/peers")
    async def add_peer():
        node = backend.require_node()
        data = await _body()
        pem = _text(data, "public_key", MAX_KEY_CHARS)
        address = _text(data, "address", MAX_ADDRESS_CHARS)
        name = _text(data, "name", 64, required=False)
        protocol = data.get("protocol")
        if protocol not in (None, "auto", "v1"):
            raise ApiError(400, '\'protocol\' must be "auto" or "v1"')
        try:
            done = node.add_contact(
                pem, address.strip(), name=name, protocol=protocol, source="this key"
            )
        except DowngradeRefused as err:
            raise ApiError(409, _downgrade_refused(backend, err)) from None
        return {
            "fingerprint": done.peer.fingerprint,
            "added": done.added,
            "warning": done.weak,
        }


def _conversation_routes(app: Quart, backend: Backend) -> None:
    """One peer's messages: a page of its history, and marking it read."""

    @app.get("/api/peers/<fp>/messages")
    async def history(fp: str):
        peer = _peer(backend, fp)
        limit = _int_arg("limit", 1, HISTORY_MAX, HISTORY_PAGE)
        before = _int_arg("before", 1, (1 << 63) - 1, None)
        await backend.node.settled()  # every chat the page was shown is in the history
        rows = backend.node.history(peer.fingerprint, limit, before)
        changes = [
            views.key_change(old, new, peer.name, int(at * 1000))
            for _, old, new, at in backend.node.key_history(peer.fingerprint)
        ]
        return {
            "messages": [views.message(m) for m in rows],
            "more": len(rows) == limit,
            "key_changes": changes,  # the audit lines of its rotations (all of them)
        }

    @app.post("/api/peers/<fp>/read")
    async def read(fp: str):
        peer = _peer(backend, fp)
        backend.mark_read(peer.fingerprint)
        backend.node.mark_read(peer.fingerprint)  # a read receipt, where both allow them
        return {"ok": True}


def _peer_state_routes(app: Quart, backend: Backend) -> None:
    """Changing one peer: its verified mark, and sending again what it has not received."""

    @app.get("/api/peers/<fp>/safety")
    async def safety_number(fp: str):
        """The safety number with this peer (identity.safety), grouped, and its QR code."""
        peer = _peer(backend, fp)
        number = safety.safety_number(backend.node.fingerprint, peer.fingerprint)
        return {"lines": safety.grouped(number), "qr": views.qr_rows(safety.qr_text(number))}

    @app.post("/api/peers/<fp>/verified")
    async def verified(fp: str):
        peer = _peer(backend, fp)
        value = (await _body()).get("verified")
        if not isinstance(value, bool):
            raise ApiError(400, "'verified' must be true or false")
        backend.node.set_verified(peer.fingerprint, value)
        backend.announce(make(ToPage.PEERS))
        return {"verified": value}

    @app.post("/api/peers/<fp>/retry")
    async def retry(fp: str):
        """Failed messages back in the outbox, and the peer tried at once."""
        peer = _peer(backend, fp)
        done = await backend.node.retry_now(peer.fingerprint)
        return {"retried": done.requeued, "waiting": done.waiting, "tried": bool(done.tried)}

    _contact_routes(app, backend)


def _contact_routes(app: Quart, backend: Backend) -> None:
    """The contact menu: rename, block or unblock, remove (after the page asked)."""

    @app.post("/api/peers/<fp>/name")
    async def rename(fp: str):
        peer = _peer(backend, fp)
        name = _text(await _body(), "name", 64, required=False)
        done = backend.node.rename_contact(peer.fingerprint, name.strip() if name else None)
        return {"name": done.name}

    @app.post("/api/peers/<fp>/blocked")
    async def blocked(fp: str):
        peer = _peer(backend, fp)
        value = (await _body()).get("blocked")
        if not isinstance(value, bool):
            raise ApiError(400, "'blocked' must be true or false")
        return {"blocked": backend.node.block_contact(peer.fingerprint, value).blocked}

    @app.get("/api/peers/<fp>/owed")
    async def owed(fp: str):
        peer = _peer(backend, fp)  # first: it says "unlock first" before the node runs
        return {"owed": backend.node.owed(peer.fingerprint)}

    @app.post("/api/peers/<fp>/clear")
    async def clear(fp: str):
        peer = _peer(backend, fp)
        erased = backend.node.clear_history(peer.fingerprint)
        backend.mark_read(peer.fingerprint)
        return {"erased": erased}

    @app.post("/api/peers/<fp>/receipts")
    async def receipts(fp: str):
        peer = _peer(backend, fp)
        allowed = (await _body()).get("allowed")
        if not isinstance(allowed, bool):
            raise ApiError(400, "'allowed' must be true or false")
        done = backend.node.set_receipts(peer.fingerprint, allowed)
        return {"receipts": done.receipts}

    @app.post("/api/peers/<fp>/history")
    async def keep_history(fp: str):
        peer = _peer(backend, fp)
        keep = (await _body()).get("keep")
        if not isinstance(keep, bool):
            raise ApiError(400, "'keep' must be true or false")
        return {"keep_history": backend.node.set_keep_history(peer.fingerprint, keep).keep_history}

    @app.post("/api/peers/<fp>/disappear")
    async def disappear(fp: str):
        peer = _peer(backend, fp)
        seconds = (await _body()).get("seconds")
        if type(seconds) is not int:
            raise ApiError(400, "'seconds' must be a whole number (0: off)")
        changed = await backend.node.set_disappearing(peer.fingerprint, seconds)
        return {"disappear_s": changed.in_force}

    @app.post("/api/peers/<fp>/messages/<mid>/delete")
    async def delete_message(fp: str, mid: str):
        peer = _peer(backend, fp)
        if len(mid) != 32 or not set(mid) <= _HEX:
            raise ApiError(400, "a message is named by its id: 32 lowercase hex digits")
        direction = (await _body()).get("direction")
        if direction not in ("in", "out"):
            raise ApiError(400, '\'direction\' must be "in" or "out"')
        await backend.node.settled()
        backend.node.delete_message(peer.fingerprint, mid, direction)
        return {"deleted": mid}

    @app.post("/api/peers/<fp>/remove")
    async def remove(fp: str):
        peer = _peer(backend, fp)
        backend.node.remove_contact(peer.fingerprint)
        backend.mark_read(peer.fingerprint)
        return {"removed": peer.fingerprint}


def _downgrade_refused(backend: Backend, err: DowngradeRefused) -> str:
    force = backend.place.command(
        "--add-peer", "FILE", "--peer-address", "HOST:PORT", "--protocol", "v1", "--force"
    )
    return f"{err}. Only if it went back to the original client: stop Enclave and run {force}"


def _message_routes(app: Quart, backend: Backend) -> None:
    @app.post("/api/send")
    async def send():
        node = backend.require_node()
        data = await _body()
        fp = _fingerprint(data.get("peer"))
        text = _message_text(data)
        reply, direction = _reply(data)
        sent = await node.send(fp, text, reply, direction)
        # Every page (this one too) got it as a "sent" event from the node's "queued".
        return {"message": views.sent(sent, text, reply)}

    @app.post("/api/broadcast")
    async def broadcast():
        node = backend.require_node()
        text = _message_text(await _body())
        sent = await node.broadcast(text)
        return {"messages": [views.sent(s, text) for s in sent]}

    @app.get("/api/search")
    async def search():
        node = backend.require_node()
        query = request.args.get("q", "")
        if not query.strip():
            raise ApiError(400, "'q' is required: the text to look for")
        if len(query) > SEARCH_MAX_CHARS:
            raise ApiError(400, f"'q' is too long ({SEARCH_MAX_CHARS} characters at most)")
        found = node.search(query, SEARCH_RESULTS)
        return {"messages": [views.message(m) for m in reversed(found)]}


def _message_text(data: dict) -> str:
    text = data.get("text")
    if not isinstance(text, str):
        raise ApiError(400, "'text' is required: the message to send")
    try:
        check_text(text)
    except UserError as err:
        raise ApiError(400, str(err)) from None
    return text


# --- the WebSocket ------------------------------------------------------------------------


def _websocket(app: Quart, backend: Backend) -> None:
    @app.websocket("/ws")
    async def events():
        await websocket.accept(subprotocol=security.SUBPROTOCOL)
        queue: asyncio.Queue = asyncio.Queue(WS_QUEUE)
        overflow = asyncio.Event()

        def push(message: dict) -> None:
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                overflow.set()

        unsubscribe = backend.listen(push)
        try:
            await _send(make(ToPage.HELLO, state=backend.state))
            reader = asyncio.ensure_future(_read_page(backend))
            writer = asyncio.ensure_future(_write_page(queue, overflow))
            closing = asyncio.ensure_future(backend.closing.wait())
            try:
                await asyncio.wait((reader, writer, closing), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (reader, writer, closing):
                    task.cancel()
            for task in (reader, writer):
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()
            if backend.closing.is_set():
                await websocket.close(1001, "Enclave is stopping")
        finally:
            unsubscribe()


async def _write_page(queue: asyncio.Queue, overflow: asyncio.Event) -> None:
    while True:
        message = await queue.get()
        if overflow.is_set():
            overflow.clear()
            while not queue.empty():
                queue.get_nowait()
            message = make(ToPage.RESYNC)
        await _send(message)


async def _read_page(backend: Backend) -> None:
    while True:
        raw = await websocket.receive()
        try:
            _page_message(backend, raw)
        except (ApiError, UserError, NotReady) as err:
            await _send(make(ToPage.ERROR, text=str(err)))


def _page_message(backend: Backend, raw) -> None:
    if not isinstance(raw, str) or len(raw) > MAX_WS_MESSAGE:
        raise ApiError(400, "a WebSocket message is a short JSON text")
    try:
        data = json.loads(raw)
    except ValueError:
        raise ApiError(400, "a WebSocket message must be JSON") from None
    if not isinstance(data, dict) or data.get("type") != FromPage.TYPING:
        raise ApiError(400, f"unknown WebSocket message; only '{FromPage.TYPING}' is accepted")
    active = data.get("active")
    if not isinstance(active, bool):
        raise ApiError(400, "'active' must be true or false")
    fp = _fingerprint(data.get("peer"))
    backend.require_node().typing(fp, active)
