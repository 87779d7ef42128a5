"""`CcxtVenue`: ccxt clients for any ccxt venue (sync REST, asyncio REST, or ccxt.pro streams), with the
venue's sandbox or testnet switched by ccxt's own `set_sandbox_mode`, credentials read from environment
variables, and for the local venue (trading-assets venue) the URLs that point ccxt's Binance client at it.
"""

from __future__ import annotations

import os
from typing import Any, Literal
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support
import ccxt.pro
import dagster as dg

ClientKind = Literal["rest", "async", "pro"]
_MODULES = {"rest": ccxt, "async": ccxt.async_support, "pro": ccxt.pro}

# What the local venue serves of Binance: spot markets only; no currency list nor margin pairs (SAPI paths,
# which ccxt asks for on load_markets when it holds credentials).
LOCAL_VENUE_OPTIONS = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
    "defaultType": "spot",
}


def local_venue_urls(base_url: str) -> dict[str, Any]:
    """ccxt Binance's `urls['api']` for a local venue at `base_url` (http://127.0.0.1:8765): REST under
    /api, kline streams under /stream/ws. The path holds '/stream', which ccxt.pro's Binance client reads
    as a spot stream URL."""
    parts = urlsplit(base_url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"local_url {base_url!r} is not an http(s) URL such as http://127.0.0.1:8765")
    http = f"{parts.scheme}://{parts.netloc}{parts.path}"
    ws = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}{parts.path}/stream/ws"
    return {
        "public": f"{http}/api/v3",
        "private": f"{http}/api/v3",
        "v1": f"{http}/api/v1",
        "ws": {"spot": ws, "margin": ws},
    }


class CcxtVenue(dg.ConfigurableResource):
    """A venue reached through ccxt. `venue_id` is any ccxt exchange id; `sandbox` switches to the venue's
    testnet through ccxt; `local_url` points the Binance client at a local venue instead (the two exclude
    each other). The API key and secret are read from the environment variables named by `api_key_env` and
    `secret_env` when a client is built, straight into the client, never into config or logs; unset, the
    client is public-only and ccxt refuses private calls with AuthenticationError."""

    venue_id: str = "binance"
    sandbox: bool = False
    local_url: str | None = None
    api_key_env: str = "TRADING_VENUE_API_KEY"
    secret_env: str = "TRADING_VENUE_SECRET"
    timeout_ms: int = 10_000
    # Market data only (the recorder): the client gets no credentials even when they are set.
    public_only: bool = False
    # ccxt's client-side throttle to the venue's published weights; tests of the local venue may turn it off.
    enable_rate_limit: bool = True

    def exchange(self, kind: ClientKind = "rest", options: dict[str, Any] | None = None) -> Any:
        """A new ccxt client; `kind` rest (sync), async (asyncio REST) or pro (asyncio REST + streams).
        The caller closes it (`close()`, awaited for async and pro)."""
        if kind not in _MODULES:
            raise ValueError(f"kind must be rest, async or pro, not {kind!r}")
        if self.local_url is not None and self.venue_id != "binance":
            raise ValueError(
                f"local_url needs venue_id 'binance' (the local venue speaks Binance), not {self.venue_id!r}"
            )
        if self.local_url is not None and self.sandbox:
            raise ValueError("sandbox and local_url exclude each other: the local venue is its own sandbox")
        cls = getattr(_MODULES[kind], self.venue_id, None)
        if cls is None:
            what = "a ccxt.pro streaming client" if kind == "pro" else "a ccxt exchange"
            raise ValueError(f"venue_id {self.venue_id!r} is not {what}")
        merged = {**(LOCAL_VENUE_OPTIONS if self.local_url else {}), **(options or {})}
        exchange = cls(
            {
                "enableRateLimit": self.enable_rate_limit,
                "timeout": self.timeout_ms,
                "options": merged,
                **self._credentials(),
            }
        )
        if self.sandbox:
            exchange.set_sandbox_mode(True)
        if self.local_url is not None:
            exchange.urls["api"] = local_venue_urls(self.local_url)
        return exchange

    def _credentials(self) -> dict[str, str]:
        if self.public_only:
            return {}
        key, secret = os.environ.get(self.api_key_env), os.environ.get(self.secret_env)
        return {"apiKey": key, "secret": secret} if key and secret else {}
