"""What every live service process shares: running until SIGTERM/SIGINT with its health endpoints, and the
venue's clock (which an accelerated local venue runs faster than the wall's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from trading_assets.live.health import Health, serving

log = logging.getLogger(__name__)


class VenueTime:
    """The venue's time, read from the venue (`fetch_time`) every `every_s` and extrapolated in between at
    the rate it was seen to advance: a paper account and the executor's fill lookback follow the venue's
    clock, not the wall's, when the local venue replays faster than real time."""

    def __init__(self, exchange: Any, every_s: float = 1.0) -> None:
        self.exchange = exchange
        self.every_s = every_s
        self._venue_ms: float | None = None
        self._at = time.monotonic()
        self._rate = 1.0

    async def sync(self) -> None:
        venue_ms = float(await self.exchange.fetch_time())
        now = time.monotonic()
        if self._venue_ms is not None and now > self._at:
            self._rate = max(0.0, (venue_ms - self._venue_ms) / ((now - self._at) * 1000))
        self._venue_ms, self._at = venue_ms, now

    async def follow(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sync()
            except Exception as err:  # any failure: keep extrapolating, and try again
                log.warning("venue time: %s", err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every_s)

    def __call__(self) -> datetime:
        if self._venue_ms is None:
            raise RuntimeError("the venue's time has not been read yet (sync first)")
        ms = self._venue_ms + (time.monotonic() - self._at) * 1000 * self._rate
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


async def run_service(
    name: str,
    health: Health,
    host: str,
    port: int,
    main: Callable[[asyncio.Event], Awaitable[None]],
) -> None:
    """Serve `health` on host:port and run `main(stop)` until SIGTERM or SIGINT sets `stop`; then let it
    finish what it was doing (it returns once `stop` is set) and exit."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(message)s")
    for noisy in ("httpx", "uvicorn", "uvicorn.access", "ccxt"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with serving(health, host, port) as bound:
        print(f"{name}: health on http://{host}:{bound}/healthz, /readyz, /metrics", flush=True)
        await main(stop)
    print(f"{name}: stopped", flush=True)
