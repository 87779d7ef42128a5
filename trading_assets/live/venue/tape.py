"""The replayed bars: per symbol, arrays of open times (ms) and OHLCV, and what of them the venue's clock
lets exist: closed bars, and the one in progress with its partial OHLCV so far."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

# Binance's kline intervals, in milliseconds (1M, a calendar month, has no fixed length and is left out).
INTERVALS = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}
COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Bar:
    open_ms: int
    close_ms: int  # the first millisecond after the bar; Binance's closeTime is one less
    open: float
    high: float
    low: float
    close: float
    volume: float
    final: bool  # False for the bar in progress, whose values are partial


@dataclass(frozen=True)
class SymbolBars:
    open_ms: np.ndarray  # int64, strictly increasing
    values: np.ndarray  # float64, shape (n, 5): open, high, low, close, volume

    @classmethod
    def from_table(cls, symbol: str, table: pa.Table) -> SymbolBars:
        missing = [c for c in ("ts", *COLUMNS) if c not in table.column_names]
        if missing:
            raise ValueError(f"bars for {symbol} lack column {missing[0]!r}")
        ts = table.column("ts")
        if not pa.types.is_timestamp(ts.type):
            raise ValueError(f"bars for {symbol}: column 'ts' must be a timestamp, not {ts.type}")
        micros = ts.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
        open_ms = micros // 1000
        if len(open_ms) and np.any(np.diff(open_ms) <= 0):
            raise ValueError(f"bars for {symbol}: column 'ts' is not strictly increasing")
        values = (
            np.column_stack(
                [table.column(c).cast(pa.float64()).to_numpy(zero_copy_only=False) for c in COLUMNS]
            )
            if len(open_ms)
            else np.empty((0, 5))
        )
        return cls(open_ms=open_ms.astype(np.int64), values=values.astype(np.float64))


class Tape:
    """The bars of every symbol (venue ids such as BTCUSDT), one interval for all."""

    def __init__(self, bars: Mapping[str, SymbolBars], interval: str | None = None) -> None:
        if not bars:
            raise ValueError("the venue needs bars for at least one symbol")
        self.bars = dict(bars)
        self.interval = interval or self._inferred_interval()
        if self.interval not in INTERVALS:
            raise ValueError(
                f"interval {self.interval!r} is not a Binance kline interval ({', '.join(INTERVALS)})"
            )
        self.interval_ms = INTERVALS[self.interval]
        for symbol, b in self.bars.items():
            if len(b.open_ms) and np.any(b.open_ms % self.interval_ms):
                raise ValueError(f"bars for {symbol} do not open on {self.interval} boundaries (UTC)")

    def _inferred_interval(self) -> str:
        steps = [int(np.diff(b.open_ms).min()) for b in self.bars.values() if len(b.open_ms) > 1]
        if not steps:
            raise ValueError("cannot infer the bars' interval from fewer than two bars; pass interval")
        step = min(steps)
        names = [name for name, ms in INTERVALS.items() if ms == step]
        if not names:
            raise ValueError(f"the bars' interval of {step} ms is not a Binance kline interval")
        return names[0]

    def first_open_ms(self) -> int:
        return min(int(b.open_ms[0]) for b in self.bars.values() if len(b.open_ms))

    def n_closed(self, symbol: str, now_ms: int) -> int:
        """How many of the symbol's bars have closed at `now_ms` (a bar closes at open + interval)."""
        b = self.bars[symbol]
        return int(np.searchsorted(b.open_ms, now_ms - self.interval_ms, side="right"))

    def bar(self, symbol: str, i: int) -> Bar:
        b = self.bars[symbol]
        o, h, lo, c, v = (float(x) for x in b.values[i])
        t = int(b.open_ms[i])
        return Bar(t, t + self.interval_ms, o, h, lo, c, v, final=True)

    def last_closed(self, symbol: str, now_ms: int) -> Bar | None:
        n = self.n_closed(symbol, now_ms)
        return self.bar(symbol, n - 1) if n else None

    def in_progress(self, symbol: str, now_ms: int) -> Bar | None:
        """The bar that has opened and not closed at `now_ms`, with its values so far: the price moves in a
        straight line from the open to the close over the interval, the volume grows in proportion to the
        time elapsed (the dataset has no finer grain); high and low hold that path's extremes."""
        n = self.n_closed(symbol, now_ms)
        b = self.bars[symbol]
        if n >= len(b.open_ms) or b.open_ms[n] > now_ms:
            return None
        full = self.bar(symbol, n)
        share = (now_ms - full.open_ms) / self.interval_ms
        close = full.open + (full.close - full.open) * share
        return Bar(
            full.open_ms,
            full.close_ms,
            full.open,
            max(full.open, close),
            min(full.open, close),
            close,
            full.volume * share,
            final=False,
        )

    def klines(
        self, symbol: str, now_ms: int, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[Bar]:
        """Binance's /klines selection among the bars that exist at `now_ms` (the closed ones and the one in
        progress): open time within [start, end]; the first `limit` from start, else the last `limit`."""
        bars = [self.bar(symbol, i) for i in self._window(symbol, now_ms, start_ms, end_ms, limit)]
        live = self.in_progress(symbol, now_ms)
        if (
            live is not None
            and (start_ms is None or live.open_ms >= start_ms)
            and (end_ms is None or live.open_ms <= end_ms)
        ):
            bars.append(live)
        if start_ms is not None:
            return bars[:limit]
        return bars[-limit:]

    def _window(
        self, symbol: str, now_ms: int, start_ms: int | None, end_ms: int | None, limit: int
    ) -> range:
        b = self.bars[symbol].open_ms
        hi = self.n_closed(symbol, now_ms)
        if end_ms is not None:
            hi = min(hi, int(np.searchsorted(b, end_ms, side="right")))
        lo = 0 if start_ms is None else int(np.searchsorted(b, start_ms, side="left"))
        if start_ms is not None:
            return range(lo, min(hi, lo + limit))
        return range(max(lo, hi - limit), hi)

    def closed_between(self, after_ms: int, until_ms: int) -> list[tuple[str, int]]:
        """(symbol, index) of every bar that closed in (after_ms, until_ms], in closing order (symbols in
        name order within one instant), so matching replays the market the same way every time."""
        out = []
        for symbol in sorted(self.bars):
            for i in range(self.n_closed(symbol, after_ms), self.n_closed(symbol, until_ms)):
                out.append((int(self.bars[symbol].open_ms[i]), symbol, i))
        return [(symbol, i) for _, symbol, i in sorted(out)]
