"""The venue's clock: simulated UTC milliseconds that run `speed` times faster than the wall clock, or
only when stepped by hand (speed 0), so tests decide exactly which bars exist."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class VenueClock:
    """Simulated time in UTC milliseconds. `speed` is simulated seconds per wall second; 0 stops it between
    the steps a caller makes with `advance_to`."""

    def __init__(self, start_ms: int, speed: float = 0.0, wall: Callable[[], float] = time.monotonic) -> None:
        if speed < 0:
            raise ValueError(f"speed must be 0 (stepped by hand) or positive, not {speed}")
        self._wall = wall
        self._lock = threading.Lock()
        self._anchor_ms = int(start_ms)
        self._anchor_wall = wall()
        self.speed = float(speed)

    def now_ms(self) -> int:
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> int:
        return self._anchor_ms + int((self._wall() - self._anchor_wall) * 1000 * self.speed)

    def advance_to(self, ms: int) -> int:
        """Move the clock to `ms` (never back); a running clock goes on from there at its speed."""
        with self._lock:
            now = self._now_locked()
            if ms < now:
                raise ValueError(f"the clock cannot go back: {ms} is before its time {now}")
            self._anchor_ms, self._anchor_wall = int(ms), self._wall()
            return self._anchor_ms

    def set_speed(self, speed: float) -> None:
        if speed < 0:
            raise ValueError(f"speed must be 0 (stepped by hand) or positive, not {speed}")
        with self._lock:
            self._anchor_ms, self._anchor_wall = self._now_locked(), self._wall()
            self.speed = float(speed)
