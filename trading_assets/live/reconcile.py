"""What Dagster checks of live trading, between compute and storage: how far each recorded symbol lags, and
a UTC day reconciled against independent sources.

- `bars_health`: per recorded table of the strategies, its last bar and how many closed bars it is behind
  `now` (one `last_ts` per table: cheap enough for a sensor's tick).
- `compare_signals`: the day's recorded signals of each strategy against `replay_signals` over the bars
  table from its first row to the day's end (the runner computes from the first recorded bar, so the
  replay starts at the same row): prediction bits and target must be equal.
- `compare_fills`: the day's fills in the orders repository against the venue's, per venue account that
  traded, through a broker `LiveAccounts` builds (read only: `fills_since`, nothing is ever sent).
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

import dagster as dg
import numpy as np
import pyarrow as pa
from pydantic import Field

from resources.brokers.base import Broker, BrokerError, VenueFill
from resources.catalog import Catalog
from resources.timeseries import TIMESTAMP_COLUMN, StoreError, TimeSeriesStore, utc_datetime
from trading_assets import naming
from trading_assets.compute.indicators.registry import BAR_INPUTS
from trading_assets.compute.live_signals import LiveSignalError, replay_signals
from trading_assets.live.service import PromotionError, load_signal_model, timeframe
from trading_assets.records import FillRecord

# The fields of a fill compared with the venue's, after its trade id.
FILL_FIELDS = ("client_order_id", "symbol", "side", "quantity", "price", "fee", "fee_currency", "ts")


class ReconcileError(ValueError):
    """A venue account that cannot be asked about; the message names the account and the setting."""


@dataclass(frozen=True)
class RecordedTable:
    """A live bars table the strategies trade on, where it stands at `now`."""

    table: str
    venue: str
    symbol: str
    bar_interval_s: int
    strategies: tuple[str, ...]
    running: tuple[str, ...]
    last_bar: datetime | None
    bars_behind: int | None
    error: str | None = None


def bars_health(catalog: Catalog, store: TimeSeriesStore, now: datetime) -> list[RecordedTable]:
    """Each strategy's recorded table (one row per table, its strategies named), with its last bar and the
    closed bars after it not stored by `now` (the bar forming at `now` does not count)."""
    intervals: dict[str, int | None] = {}
    by_table: dict[str, tuple[str, str, int, list[str], list[str]]] = {}
    for strategy in catalog.list_strategies():
        if strategy.dataset not in intervals:
            dataset = catalog.get_dataset(strategy.dataset)
            intervals[strategy.dataset] = None if dataset is None else dataset.bar_interval_s
        interval = intervals[strategy.dataset]
        if interval is None:
            continue
        table = naming.live_bars_table(strategy.venue, strategy.symbol, timeframe(interval))
        entry = by_table.setdefault(table, (strategy.venue, strategy.symbol, interval, [], []))
        entry[3].append(strategy.name)
        if strategy.desired_state == "running":
            entry[4].append(strategy.name)
    now_s = int(now.timestamp())
    out = []
    for table, (venue, symbol, interval, names, running) in sorted(by_table.items()):
        last, behind, error = None, None, None
        try:
            last = store.last_ts(table)
        except StoreError as err:
            error = str(err)
        if last is not None:
            forming = now_s - now_s % interval
            behind = max(0, (forming - int(last.timestamp())) // interval - 1)
        out.append(
            RecordedTable(table, venue, symbol, interval, tuple(names), tuple(running), last, behind, error)
        )
    return out


@dataclass(frozen=True)
class Difference:
    """One thing that differs: of `subject` (a strategy, or venue/account), at `item` (a bar or a trade id),
    its `field` as we hold it and as the independent source has it."""

    subject: str
    item: str
    field: str
    ours: str
    theirs: str

    def __str__(self) -> str:
        return f"{self.subject} {self.item}: {self.field} ours {self.ours}, theirs {self.theirs}"


@dataclass(frozen=True)
class SignalComparison:
    strategy: str
    signals: int
    differences: tuple[Difference, ...]


@dataclass(frozen=True)
class FillComparison:
    venue: str
    account: str
    ours: int
    theirs: int
    differences: tuple[Difference, ...]


def day_window(day: str) -> tuple[datetime, datetime]:
    """[start, end) of a UTC day given as YYYY-MM-DD (a daily partition key)."""
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    return start, start + timedelta(days=1)


def _bits(value: float) -> str:
    return "NaN" if math.isnan(value) else f"{value!r} (0x{struct.pack('>d', value).hex()})"


def _same(ours: float, theirs: float) -> bool:
    # NaN (no prediction) is one value whatever its payload; everything else compares by its bits.
    if math.isnan(ours) or math.isnan(theirs):
        return math.isnan(ours) and math.isnan(theirs)
    return struct.pack("<d", ours) == struct.pack("<d", theirs)


def compare_signals(
    catalog: Catalog, store: TimeSeriesStore, start: datetime, end: datetime
) -> list[SignalComparison]:
    """Each strategy with signals on bars in [start, end): those signals against the offline replay."""
    out = []
    for strategy in catalog.list_strategies():
        signals = [s for s in catalog.list_signals(strategy.name) if start <= s.bar_ts < end]
        if not signals:
            continue
        name = strategy.name

        def differ(item: str, field: str, ours: str, theirs: str, name: str = name) -> Difference:
            return Difference(name, item, field, ours, theirs)

        try:
            loaded = load_signal_model(catalog, strategy)
            bars = store.read(loaded.bars_table, end=end)
            ts = bars.column(TIMESTAMP_COLUMN).cast(pa.int64()).to_numpy()
            columns = {k: bars.column(k).to_numpy() for k in BAR_INPUTS}
            prediction, target = replay_signals(loaded.model, loaded.booster, ts, columns)
        except (PromotionError, LiveSignalError, StoreError) as err:
            out.append(SignalComparison(name, len(signals), (differ("replay", "error", "-", str(err)),)))
            continue
        differences = []
        for signal in signals:
            bar = f"bar {signal.bar_ts:%Y-%m-%d %H:%M:%S}"
            i = int(np.searchsorted(ts, _us(signal.bar_ts)))
            if i == ts.size or int(ts[i]) != _us(signal.bar_ts):
                differences.append(differ(bar, "bar", "signalled", f"not in {loaded.bars_table}"))
                continue
            if not _same(signal.prediction, float(prediction[i])):
                differences.append(
                    differ(bar, "prediction", _bits(signal.prediction), _bits(float(prediction[i])))
                )
            if signal.target != float(target[i]):
                differences.append(differ(bar, "target", f"{signal.target:g}", f"{float(target[i]):g}"))
        out.append(SignalComparison(name, len(signals), tuple(differences)))
    return out


def _us(moment: datetime) -> int:
    return (moment - utc_datetime(0)) // timedelta(microseconds=1)


class LiveAccount(dg.Config):
    """How to ask one venue account for its fills: `paper` reads the paper broker's state file, `venue`
    asks the venue through ccxt (credentials from the environment variables named, never from config)."""

    venue: str = Field(description="The venue as orders and fills name it, e.g. binance.")
    account: str = Field(description="The account's name in the orders repository, e.g. paper.")
    broker: Literal["paper", "venue"] = Field(
        description="paper: the paper broker's state file; venue: ccxt."
    )
    state_file: str | None = Field(
        default=None, description="paper: the account's file (default <paper_dir>/paper-<account>.json)."
    )
    venue_id: str | None = Field(default=None, description="venue: the ccxt exchange id (default: venue).")
    sandbox: bool = Field(default=False, description="venue: the venue's testnet, through ccxt.")
    local_url: str | None = Field(default=None, description="venue: a local venue (trading-assets venue).")
    api_key_env: str = "TRADING_VENUE_API_KEY"
    secret_env: str = "TRADING_VENUE_SECRET"


class LiveAccounts(dg.ConfigurableResource):
    """The venue accounts the executors trade, for reconciliation: a broker per account, used read only.
    An account not listed is a paper account if `paper_dir` holds its file (where `trading-assets live
    executor` keeps it by default); any other fails its reconciliation, naming it."""

    accounts: list[LiveAccount] = Field(default=[], description="Accounts and how to reach them.")
    paper_dir: str = Field(default="data/live", description="Where paper accounts' files are by default.")

    def account(self, venue: str, account: str) -> LiveAccount:
        for listed in self.accounts:
            if (listed.venue, listed.account) == (venue, account):
                return listed
        if self._paper_file(account).exists():
            return LiveAccount(venue=venue, account=account, broker="paper")
        raise ReconcileError(
            f"{venue}/{account}: no broker; list it in the live_accounts resource (or keep its paper file "
            f"at {self._paper_file(account)})"
        )

    def _paper_file(self, account: str) -> Path:
        return Path(self.paper_dir) / f"paper-{account}.json"

    @asynccontextmanager
    async def broker(
        self, venue: str, account: str, symbols: tuple[str, ...], store: TimeSeriesStore
    ) -> AsyncIterator[Broker]:
        """A broker of the account trading `symbols`, closed on exit. ReconcileError if it cannot be made."""
        spec = self.account(venue, account)
        try:
            made = self._paper(spec, symbols, store) if spec.broker == "paper" else self._venue(spec, symbols)
        except (ValueError, OSError) as err:
            raise ReconcileError(f"{venue}/{account}: {err}") from None
        try:
            yield made
        finally:
            await made.close()

    def _paper(self, spec: LiveAccount, symbols: tuple[str, ...], store: TimeSeriesStore) -> Broker:
        from resources.brokers.paper import PaperBroker, PaperConfig
        from trading_assets.compute.fill_model import Instrument

        path = Path(spec.state_file) if spec.state_file else self._paper_file(spec.account)
        if not path.exists():
            raise ReconcileError(f"{spec.venue}/{spec.account}: state_file {path} does not exist")
        # Quantity rules only matter to orders received; this broker is only asked for its fills.
        rules = Instrument(step=Decimal("1e-8"), min_quantity=Decimal("1e-8"))
        config = PaperConfig(
            data_venue=spec.venue,
            venue=spec.venue,
            symbols=symbols,
            instruments={s: rules for s in symbols},
            balances={},
            state_file=path,
        )
        return PaperBroker(config, store)

    def _venue(self, spec: LiveAccount, symbols: tuple[str, ...]) -> Broker:
        from resources.brokers.ccxt_broker import CcxtBroker, CcxtBrokerConfig
        from resources.venues import CcxtVenue

        client = CcxtVenue(
            venue_id=spec.venue_id or spec.venue,
            sandbox=spec.sandbox,
            local_url=spec.local_url,
            api_key_env=spec.api_key_env,
            secret_env=spec.secret_env,
        )
        return CcxtBroker(CcxtBrokerConfig(venue=spec.venue, client=client, symbols=symbols))


def compare_fills(
    catalog: Catalog, store: TimeSeriesStore, accounts: LiveAccounts, start: datetime, end: datetime
) -> list[FillComparison]:
    """Per venue account with orders or fills in [start, end): the repository's fills of the day against
    the venue's, by trade id, field by field."""
    orders = {o.client_order_id: o for o in catalog.list_orders()}
    ours: dict[tuple[str, str], list[FillRecord]] = {}
    symbols: dict[tuple[str, str], set[str]] = {}
    for order in orders.values():
        if start <= order.bar_ts < end:
            symbols.setdefault((order.venue, order.account), set()).add(order.symbol)
    for fill in catalog.list_fills():
        if start <= fill.ts < end:
            order = orders[fill.client_order_id]
            ours.setdefault((order.venue, order.account), []).append(fill)
            symbols.setdefault((order.venue, order.account), set()).add(fill.symbol)
    return [
        _compare_account(
            venue, account, ours.get((venue, account), []), tuple(sorted(names)), accounts, store, start, end
        )
        for (venue, account), names in sorted(symbols.items())
    ]


def _compare_account(
    venue: str,
    account: str,
    ours: list[FillRecord],
    symbols: tuple[str, ...],
    accounts: LiveAccounts,
    store: TimeSeriesStore,
    start: datetime,
    end: datetime,
) -> FillComparison:
    subject = f"{venue}/{account}"

    async def venue_fills() -> list[VenueFill]:
        async with accounts.broker(venue, account, symbols, store) as broker:
            fills = []
            for symbol in symbols:
                fills += [f for f in await broker.fills_since(symbol, start) if f.ts < end]
            return fills

    try:
        theirs = asyncio.run(venue_fills())
    except (ReconcileError, BrokerError) as err:
        failed = Difference(subject, "venue", "fills", f"{len(ours)} fills", f"cannot be read: {err}")
        return FillComparison(venue, account, len(ours), 0, (failed,))
    by_id = {f.trade_id: f for f in theirs}
    differences = []
    for fill in ours:
        trade = f"trade {fill.trade_id}"
        other = by_id.pop(fill.trade_id, None)
        if other is None:
            differences.append(Difference(subject, trade, "trade", "recorded", "not at the venue"))
            continue
        for name in FILL_FIELDS:
            mine, venue_value = getattr(fill, name), getattr(other, name)
            if name == "client_order_id" and venue_value is None:
                continue  # the venue does not always echo it; the trade id is the key
            if mine != venue_value:
                differences.append(Difference(subject, trade, name, str(mine), str(venue_value)))
    for trade_id in sorted(by_id):
        differences.append(Difference(subject, f"trade {trade_id}", "trade", "not recorded", "at the venue"))
    return FillComparison(venue, account, len(ours), len(theirs), tuple(differences))
