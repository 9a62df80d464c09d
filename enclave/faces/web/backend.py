"""The node behind the page: absent until the page unlocks (or creates) the identity.

Rules:
- States: ``setup`` (no identity in the home folder), ``locked`` (an identity, not yet
  unlocked), ``ready`` (the node runs). Only ``create`` and ``unlock`` move between
  them, one at a time (a lock), so two tabs cannot start two nodes or run two 128 MiB
  scrypt derivations at once.
- Key generation and scrypt run in a thread, so the page and the WebSocket stay live.
- The password is used and dropped: it is never logged, stored or sent back.
- Events fan out to every open page (``listen``). Besides the Node's own events the
  backend announces what one page did that the others should show (a message sent,
  a peer added, a chat read, the state changing).
- Unread counts belong to this face, like the REPL's: received since the user last
  opened that chat in any page, kept for the life of the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from enclave.errors import UserError
from enclave.faces.web import views
from enclave.faces.web.events import ToPage, make
from enclave.identity import home as homes
from enclave.identity import keys
from enclave.node.events import MessageReceived

log = logging.getLogger("enclave.faces.web")

MAX_PASSWORD_CHARS = 1024
RECOMMENDED_PASSWORD = 12

Starter = Callable[[keys.Identity], Awaitable[object]]


class Backend:
    def __init__(
        self,
        home: Path,
        starter: Starter,
        *,
        node=None,
        keygen=keys.generate,
        kdf: keys.KdfCost = keys.DEFAULT_KDF,
        min_kdf: keys.KdfCost = keys.MIN_KDF,
    ) -> None:
        self.place = homes.Home(Path(home))
        self.starter = starter
        self.keygen, self.kdf, self.min_kdf = keygen, kdf, min_kdf
        self.node = None
        self.unread: Counter[str] = Counter()
        self._listeners: list[Callable[[dict], None]] = []
        self._busy = asyncio.Lock()
        # Set when Enclave stops: each open page's socket closes at once ("going away")
        # instead of holding the stop up for the server's grace period.
        self.closing = asyncio.Event()
        if node is not None:
            self._attach(node)

    # --- state ----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        if self.node is not None:
            return "ready"
        return "locked" if self.place.has_identity() else "setup"

    def require_node(self):
        if self.node is None:
            raise NotReady(
                "create your identity first" if self.state == "setup" else "unlock first"
            )
        return self.node

    async def create(self, password: str, repeat: str) -> str | None:
        """Make a new identity under ``password`` and start the node; a warning or None."""
        _check_password(password)
        if password != repeat:
            raise UserError("the two passwords do not match")
        async with self._busy:
            if self.state != "setup":
                raise UserError("an identity already exists here; unlock it instead")
            loop = asyncio.get_running_loop()
            key = await loop.run_in_executor(None, self.keygen)
            identity = await loop.run_in_executor(None, self._save, key, password)
            await self.start(identity)
        if len(password) < RECOMMENDED_PASSWORD:
            return (
                f"a password of {len(password)} characters is weak; "
                f"{RECOMMENDED_PASSWORD} or more is recommended"
            )
        return None

    async def unlock(self, password: str) -> None:
        _check_password(password)
        async with self._busy:
            if self.state != "locked":
                raise UserError(
                    "already unlocked" if self.node else "there is no identity yet; create one"
                )
            loop = asyncio.get_running_loop()
            identity = await loop.run_in_executor(None, self._load, password)
            await self.start(identity)

    def _save(self, key, password: str) -> keys.Identity:
        return keys.save_identity(self.place, key, password, kdf=self.kdf)

    def _load(self, password: str) -> keys.Identity:
        return keys.load_identity(self.place, password, min_kdf=self.min_kdf)

    async def start(self, identity: keys.Identity) -> None:
        """Start the node for an unlocked identity (the page's, or one unlocked at launch)."""
        self._attach(await self.starter(identity))
        self.announce(make(ToPage.STATE, state="ready"))

    def _attach(self, node) -> None:
        self.node = node
        node.subscribe(self._on_event)

    # --- events ---------------------------------------------------------------------------

    def listen(self, callback: Callable[[dict], None]) -> Callable[[], None]:
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def announce(self, message: dict) -> None:
        for callback in list(self._listeners):
            try:
                callback(message)
            except Exception:  # one broken page must not break the others
                log.exception("a page listener failed")

    def _on_event(self, event) -> None:
        if isinstance(event, MessageReceived):
            self.unread[event.peer] += 1
        shown = views.event(event)
        if shown is not None:
            self.announce(shown)

    def mark_read(self, fingerprint: str) -> None:
        if self.unread.pop(fingerprint, None):
            self.announce(make(ToPage.READ, peer=fingerprint))


class NotReady(Exception):
    """The page asked for something that needs the node before it runs."""


def _check_password(password: object) -> None:
    if not isinstance(password, str) or not password:
        raise UserError("enter a password")
    if len(password) > MAX_PASSWORD_CHARS:
        raise UserError(f"a password has at most {MAX_PASSWORD_CHARS} characters")
