"""What the local venue's tests share: hand-worked bars, a venue on a free loopback port, ccxt clients
built by resources.venues.CcxtVenue, and the control endpoint over plain HTTP."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from resources.venues import CcxtVenue
from trading_assets.live.venue import LocalVenue, VenueSettings

T0_MS = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
MINUTE = 60_000
KEY, SECRET = "test-key", "test-secret"
KEY_ENV, SECRET_ENV = "VENUE_TEST_API_KEY", "VENUE_TEST_SECRET"


def table(
    open_ms: list[int], o: list[float], h: list[float], lo: list[float], c: list[float], v: list[float]
):
    ts = pa.array([t * 1000 for t in open_ms], pa.timestamp("us", tz="UTC"))
    return pa.table({"ts": ts, "open": o, "high": h, "low": lo, "close": c, "volume": v})


def btc_bars(n: int = 12) -> pa.Table:
    """Bar i opens at T0 + i minutes: open 100+i, high 101.5+i, low 99.5+i, close 101+i, volume 2."""
    idx = range(n)
    return table(
        [T0_MS + i * MINUTE for i in idx],
        [100.0 + i for i in idx],
        [101.5 + i for i in idx],
        [99.5 + i for i in idx],
        [101.0 + i for i in idx],
        [2.0] * n,
    )


def eth_bars(n: int = 30, seed: int = 7) -> pa.Table:
    """A random walk with full float precision (no decimal shortcut can pass for bit-for-bit)."""
    rng = np.random.default_rng(seed)
    close = 3000 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.concatenate([[3000.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 1e-3, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 1e-3, n))
    volume = rng.lognormal(0, 1, n)
    return table(
        [T0_MS + i * MINUTE for i in range(n)],
        *(list(map(float, a)) for a in (open_, high, low, close, volume)),
    )


def settings(**overrides: Any) -> VenueSettings:
    base: dict[str, Any] = {"api_key": KEY, "api_secret": SECRET, "balances": {"USDT": "10000", "BTC": "1"}}
    return VenueSettings(**{**base, **overrides})


@contextmanager
def running_venue(bars: dict[str, pa.Table] | None = None, **overrides: Any) -> Iterator[LocalVenue]:
    venue = LocalVenue(bars or {"BTC/USDT": btc_bars(), "ETH/USDT": eth_bars()}, settings(**overrides))
    with venue:
        yield venue


def client_config(venue: LocalVenue) -> CcxtVenue:
    return CcxtVenue(
        local_url=venue.url,
        api_key_env=KEY_ENV,
        secret_env=SECRET_ENV,
        timeout_ms=5_000,
        enable_rate_limit=False,
    )


@contextmanager
def rest_client(venue: LocalVenue) -> Iterator[Any]:
    exchange = client_config(venue).exchange("rest")
    try:
        yield exchange
    finally:
        exchange.close()


@asynccontextmanager
async def pro_client(venue: LocalVenue) -> AsyncIterator[Any]:
    exchange = client_config(venue).exchange("pro")
    try:
        yield exchange
    finally:
        await exchange.close()


def control(venue: LocalVenue, method: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        venue.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


async def until(what: Callable[[], Awaitable[bool] | bool], timeout_s: float = 15.0, why: str = "") -> None:
    """Wait (polling every 50 ms) until `what` (a function, or a coroutine function) is true."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = what()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{why or 'condition'}: not within {timeout_s} s")
        await asyncio.sleep(0.05)
