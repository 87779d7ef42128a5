"""Fault controls: each armed fault hits the next request it applies to and is then spent, so a test
knows exactly which call fails. Latency jitter comes from a seeded generator."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Literal

from trading_assets.live.venue.markets import INSUFFICIENT_BALANCE, LOT_SIZE

REJECTIONS = {"insufficient_funds": INSUFFICIENT_BALANCE, "invalid_quantity": LOT_SIZE}
PartialRest = Literal["later", "never"]
AmbiguousMode = Literal["drop", "timeout"]


@dataclass(frozen=True)
class PartialFill:
    """Fill `share` of the order's quantity at once; the rest fills from the next closed bar on (`later`)
    or is expired (`never`)."""

    share: float
    rest: PartialRest


class Faults:
    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._reject: str | None = None
        self._partial: PartialFill | None = None
        self._ambiguous: AmbiguousMode | None = None
        self._errors_left = 0
        self._error_status = 503
        self._latency_ms = 0.0
        self._jitter_ms = 0.0

    def reject_next_order(self, reason: str = "insufficient_funds") -> None:
        if reason not in REJECTIONS:
            raise ValueError(f"reason must be one of {', '.join(REJECTIONS)}, not {reason!r}")
        with self._lock:
            self._reject = reason

    def partial_fill_next_order(self, share: float = 0.5, rest: PartialRest = "later") -> None:
        if not 0 < share < 1:
            raise ValueError(f"share must be between 0 and 1 (exclusive), not {share}")
        if rest not in ("later", "never"):
            raise ValueError(f"rest must be 'later' or 'never', not {rest!r}")
        with self._lock:
            self._partial = PartialFill(float(share), rest)

    def ambiguous_next_order(self, mode: AmbiguousMode = "drop") -> None:
        if mode not in ("drop", "timeout"):
            raise ValueError(f"mode must be 'drop' or 'timeout', not {mode!r}")
        with self._lock:
            self._ambiguous = mode

    def fail_next_requests(self, count: int, status: int = 503) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        if not 500 <= status <= 599:
            raise ValueError(f"status must be a 5xx code, not {status}")
        with self._lock:
            self._errors_left, self._error_status = int(count), int(status)

    def set_latency(self, ms: float, jitter_ms: float = 0.0) -> None:
        if ms < 0 or jitter_ms < 0:
            raise ValueError("latency ms and jitter_ms must not be negative")
        with self._lock:
            self._latency_ms, self._jitter_ms = float(ms), float(jitter_ms)

    def clear(self) -> None:
        with self._lock:
            self._reject = self._partial = self._ambiguous = None
            self._errors_left, self._latency_ms, self._jitter_ms = 0, 0.0, 0.0

    def take_rejection(self) -> tuple[int, str] | None:
        with self._lock:
            reason, self._reject = self._reject, None
        return REJECTIONS[reason] if reason else None

    def take_partial(self) -> PartialFill | None:
        with self._lock:
            partial, self._partial = self._partial, None
        return partial

    def ambiguous_armed(self) -> bool:
        with self._lock:
            return self._ambiguous is not None

    def take_ambiguous(self) -> AmbiguousMode | None:
        with self._lock:
            mode, self._ambiguous = self._ambiguous, None
        return mode

    def take_error_status(self) -> int | None:
        with self._lock:
            if not self._errors_left:
                return None
            self._errors_left -= 1
            return self._error_status

    def delay_s(self) -> float:
        with self._lock:
            jitter = self._rng.uniform(0, self._jitter_ms) if self._jitter_ms else 0.0
            return (self._latency_ms + jitter) / 1000

    def pending(self) -> dict:
        with self._lock:
            return {
                "reject_next_order": self._reject,
                "partial_fill_next_order": None
                if self._partial is None
                else {"share": self._partial.share, "rest": self._partial.rest},
                "ambiguous_next_order": self._ambiguous,
                "server_errors_left": self._errors_left,
                "server_error_status": self._error_status,
                "latency_ms": self._latency_ms,
                "jitter_ms": self._jitter_ms,
            }
