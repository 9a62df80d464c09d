"""The page's file routes: upload (then send), accept, decline, cancel, download, preview.

Rules:
- An upload is the raw request body, its name percent-encoded (UTF-8) in ``X-File-Name``.
  It is streamed to disk, never held whole in memory, into a fresh private folder the
  node gives (``upload_folder``, under ``<home>/outgoing``), under ``MAX_UPLOAD_BYTES``
  (the app's ``MAX_UPLOAD_BYTES`` config): over it the answer is 413 and the partial
  file is gone. Once sent, the copy is the node's: it goes when its transfers settle
  (or at once if the send is refused).
- Only the Node's file calls are used (``send_file``, ``send_file_to_many``,
  ``accept_file``, ``decline_file``, ``cancel_file``, ``file``); a transfer is named by
  its integer ``key``.
- A download is always an attachment of type application/octet-stream (nosniff); only
  ``/preview`` serves ``image/*``, and only when the file's first bytes are a PNG, JPEG,
  GIF or WebP signature (else 415). Only a delivered incoming file, or a file we send,
  is served: anything else is 404 (no such transfer) or 409 (not delivered).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import quote, unquote

from quart import Quart, Request, request, send_file

from enclave.faces.web import views
from enclave.node import UnsafeName, safe_name

MAX_UPLOAD_BYTES = 4 << 30  # 4 GiB from the page; larger files go by the command line
MAX_PEERS = 1000
MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def is_upload(path: str, method: str) -> bool:
    return method == "POST" and (
        path == "/api/files" or (path.startswith("/api/peers/") and path.endswith("/files"))
    )


class UploadRequest(Request):
    """A request whose body may be large on the upload routes: the body buffer is not
    capped there (the handler counts bytes as it writes them to disk)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if is_upload(self.path, self.method):
            self.body = self.body_class(None, None)


def image_type(path: str) -> str | None:
    with open(path, "rb") as f:
        head = f.read(16)
    for magic, kind in MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


async def _staged(limit: int, node, api_error) -> Path:
    """The request body, streamed into a private folder the node gives; its path."""
    name = _upload_name()
    length = request.content_length
    if length is not None and length > limit:
        raise api_error(413, f"a file from the page can be at most {_size(limit)}")
    folder = node.upload_folder()
    target = folder / name
    written = 0
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.body:
                written += len(chunk)
                if written > limit:
                    raise api_error(413, f"a file from the page can be at most {_size(limit)}")
                out.write(chunk)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return target


def file_routes(app: Quart, backend, api_error, fingerprint) -> None:
    """Uploads (to one peer, to several), then the routes of one transfer."""
    app.request_class = UploadRequest
    app.config.setdefault("MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES)

    async def sent(send) -> list[dict]:
        node = backend.require_node()
        path = await _staged(app.config["MAX_UPLOAD_BYTES"], node, api_error)
        made = await send(str(path))  # refused or not, the copy is the node's now
        return [views.file(f) for f in made]

    @app.post("/api/peers/<fp>/files")
    async def upload(fp: str):
        node = backend.require_node()
        peer = node.resolve(fingerprint(fp))
        made = await sent(lambda p: node.send_file_to_many([peer.fingerprint], p))
        return {"file": made[0]}

    @app.post("/api/files")
    async def upload_many():
        node = backend.require_node()
        peers = request.args.getlist("peer")
        if not peers or len(peers) > MAX_PEERS:
            raise api_error(400, "name the peers: ?peer=FINGERPRINT&peer=...")
        fps = [node.resolve(fingerprint(p)).fingerprint for p in peers]
        return {"files": await sent(lambda p: node.send_file_to_many(fps, p))}

    _transfer_routes(app, backend, api_error)


def _transfer_routes(app: Quart, backend, api_error) -> None:
    """Accept, decline, cancel, one transfer's state, its content and its preview."""

    def transfer(key: str):
        node = backend.require_node()
        if not (key.isascii() and key.isdigit()) or len(key) > 18:
            raise api_error(400, "a file is named by its key: a whole number")
        found = node.file(int(key))
        if found is None:
            raise api_error(404, f"no file transfer {key}")
        return node, found

    @app.post("/api/files/<key>/accept")
    async def accept(key: str):
        node, f = transfer(key)
        return {"file": views.file(await node.accept_file(f.key))}

    @app.post("/api/files/<key>/decline")
    async def decline(key: str):
        node, f = transfer(key)
        return {"file": views.file(await node.decline_file(f.key))}

    @app.post("/api/files/<key>/cancel")
    async def cancel(key: str):
        node, f = transfer(key)
        return {"file": views.file(await node.cancel_file(f.key))}

    @app.get("/api/files/<key>")
    async def one(key: str):
        return {"file": views.file(transfer(key)[1])}

    _content_routes(app, transfer, api_error)


def _content_routes(app: Quart, transfer, api_error) -> None:
    """A transfer's bytes: as an attachment, or as an image preview."""

    def readable(key: str) -> tuple[str, str]:
        _, f = transfer(key)
        if f.direction == "in" and f.state != "delivered":
            raise api_error(409, f"{f.name} has not arrived ({f.state})")
        if not f.path or not os.path.isfile(f.path):
            raise api_error(404, f"{f.name} is no longer on this computer")
        return f.path, f.name

    @app.get("/api/files/<key>/content")
    async def content(key: str):
        path, name = readable(key)
        response = await send_file(path, mimetype="application/octet-stream")
        response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name)}"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/api/files/<key>/preview")
    async def preview(key: str):
        path, _ = readable(key)
        kind = image_type(path)
        if kind is None:
            raise api_error(415, "only PNG, JPEG, GIF and WebP images have a preview")
        response = await send_file(path, mimetype=kind)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Disposition"] = "inline"
        return response


def _upload_name() -> str:
    raw = request.headers.get("X-File-Name", "")
    if not raw or len(raw) > 4096:
        raise _bad("X-File-Name is required: the file's name, percent-encoded")
    try:
        name = os.path.basename(unquote(raw, errors="strict").replace("\\", "/"))
        name = safe_name(name)
    except (UnicodeDecodeError, ValueError, UnsafeName):
        name = ""
    if not name or name in (".", ".."):
        raise _bad("the file's name is not usable")
    return name


def _bad(text: str):
    from enclave.faces.web.app import ApiError

    return ApiError(400, text)


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "bytes" else f"{n:.4g} {unit}"
        n /= 1024
    return str(n)
