"""The one exception tree of Enclave.

Rules:
- ``UsageError``: Enclave's own code (or a caller of its API) did something wrong.
  It is a bug, never the peer's fault, and is allowed to surface as a traceback.
- ``PeerError``: bytes from the network broke a rule. The receive boundary turns it
  into a closed connection with ``reason``; it never crashes the node.
- ``LocalFailure`` (a ``PeerError``): our own side failed (a store error, a job that
  raised) while handling the peer's input. Not the peer's fault, but the effect is the
  same: that connection closes with ``reason`` and the node goes on.
- ``UserError``: a person gave bad input (a missing file, a wrong password). The CLI
  prints ``str(err)`` on one line and exits non-zero; no traceback.
"""


class EnclaveError(Exception):
    """Root of every error Enclave raises on purpose."""


class UsageError(EnclaveError):
    """The local caller misused an API (a programming error)."""


class PeerError(EnclaveError):
    """The peer misbehaved; ``reason`` is a short code for logs and counters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class FrameTooLarge(PeerError):
    """A length prefix declared more than the connection currently allows."""

    def __init__(self, declared: int, limit: int) -> None:
        super().__init__("frame_too_large", f"declared {declared} bytes, limit {limit}")
        self.declared = declared
        self.limit = limit


class LocalFailure(PeerError):
    """Handling the peer's input failed on our side; its connection closes with ``reason``."""


class UserError(EnclaveError):
    """A person's mistake, explained in one line."""
