"""RSA private work handed to the connection's owner (``CryptoNeeded(job)``).

The connection never runs a ``Job`` itself: the owner runs it (on any thread) and
calls ``Connection.resume(job, now)`` with it.
"""

from ..errors import LocalFailure, PeerError


class Job:
    """RSA private work, runnable on any thread; it touches no connection state.

    ``admitted`` is True when the work holds one of the owner's private-op slots
    (responder work admitted by ``Policy.admit_private_op``): the owner releases the
    slot when ``run`` returns, whatever happened to the connection meanwhile. A job
    whose connection closed first is ``cancelled`` and does nothing when run.
    """

    __slots__ = ("_fn", "result", "error", "admitted", "cancelled", "finished")

    def __init__(self, fn) -> None:
        self._fn = fn
        self.result = None
        self.error: PeerError | None = None
        self.admitted = False
        self.cancelled = False
        self.finished = False

    def run(self) -> None:
        try:
            if not self.cancelled:
                self.result = self._fn()
        except PeerError as err:
            self.error = err
        except Exception as err:  # noqa: BLE001 - our own failure: the connection closes
            self.error = LocalFailure("job_failed", f"{type(err).__name__}: {err}")
        finally:
            self._fn = None  # drop the captured inputs (wrapped secrets among them)
            self.finished = True

    def take(self):
        """The result, handed over once (so the job object keeps no secret)."""
        result, self.result = self.result, None
        return result
