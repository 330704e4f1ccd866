"""The console's link to the master, as the operator should understand it."""

from __future__ import annotations

import math
from dataclasses import dataclass

CONNECTING, CONNECTED, DISCONNECTED = "connecting", "connected", "disconnected"


@dataclass
class Connection:
    """Where the console is connected, since when, and when it tries again.

    ``retry_at`` and ``lost_at`` are on the monotonic clock: the countdown is
    real time even where the console's wall clock is frozen (tests).
    """

    target: str = ""
    state: str = CONNECTING
    detail: str = ""
    """Why the last attempt failed (one line)."""
    attempt: int = 0
    retry_at: float | None = None
    lost_at: float | None = None
    """When the link broke (None while connected, or before it ever was)."""
    ever_connected: bool = False

    def connected(self) -> None:
        self.state, self.detail, self.attempt = CONNECTED, "", 0
        self.retry_at = self.lost_at = None
        self.ever_connected = True

    def failed(self, detail: str, *, attempt: int, retry_at: float, now: float) -> None:
        if self.state == CONNECTED or self.lost_at is None:
            self.lost_at = now
        self.state, self.detail, self.attempt, self.retry_at = DISCONNECTED, detail, attempt, retry_at

    @property
    def stale(self) -> bool:
        """What the console shows of the fleet may no longer be true."""
        return self.state == DISCONNECTED and self.ever_connected

    def retry_in(self, now: float) -> int | None:
        """Whole seconds until the next attempt (counting down), None when none is planned."""
        if self.state != DISCONNECTED or self.retry_at is None:
            return None
        return max(0, math.ceil(self.retry_at - now - 1e-6))
