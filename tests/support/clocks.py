"""A clock a test moves: wall time plus an offset it advances (``Clock.jumped`` wakes
whatever waits on it, so nothing sleeps to let time pass)."""

from enclave.node.clock import Clock


class MovedClock(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.offset_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms

    def advance(self, seconds: float) -> None:
        self.offset_ms += int(seconds * 1000)
        self.jumped()
