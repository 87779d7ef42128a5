"""Live trading between compute and storage: promote a research model to a strategy, and load what a
strategy needs to compute its signals (the same indicator set, model and signal rule as research).

`promote` checks the fold's model file against its recorded SHA-256 before the strategy is stored, and
the catalog checks the rest of the lineage (a completed run, the run's set and dataset, the bars file's
hash). `load_signal_model` checks the model file's hash again each time a strategy starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

from resources.catalog import Catalog
from trading_assets import naming
from trading_assets.compute import training
from trading_assets.compute.indicators.spec import spec_from_json
from trading_assets.compute.live_signals import SignalModel
from trading_assets.live.config import PromoteConfig, StrategyConfigError, StrategyRules
from trading_assets.records import CatalogError, StrategyRecord

if TYPE_CHECKING:
    import xgboost

# ccxt's timeframes by bar length, longest first: a dataset's bars are recorded live at its own interval.
_TIMEFRAMES = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


class PromotionError(ValueError):
    """A strategy that cannot be promoted or started; the message says which part and why."""


def timeframe(interval_s: int) -> str:
    """The ccxt timeframe of bars `interval_s` seconds long (60 -> "1m", 14400 -> "4h")."""
    for unit, seconds in _TIMEFRAMES:
        if interval_s >= seconds and interval_s % seconds == 0:
            return f"{interval_s // seconds}{unit}"
    raise PromotionError(f"bars of {interval_s} s have no ccxt timeframe")


def promote(catalog: Catalog, config: PromoteConfig) -> StrategyRecord:
    """Store (or update the settings of) the strategy `config` describes; it starts stopped."""
    try:
        name = naming.strategy_name(config.name)
        rules = config.rules()
        limits = {k: _positive(k, getattr(config, k)) for k in ("max_position", "max_order_notional")}
    except (naming.InvalidNameError, StrategyConfigError) as err:
        raise PromotionError(str(err)) from None
    if ":" not in config.symbol and rules.direction != "long":
        raise PromotionError(
            f"direction: {rules.direction!r} on the spot market {config.symbol}: a spot account cannot sell "
            "what it does not hold; promote with direction 'long', or trade a swap (e.g. BTC/USDT:USDT)"
        )
    run = catalog.get_walkforward_run(config.run)
    if run is None:
        raise PromotionError(f"run: {config.run!r} is not in the catalog")
    if run.status != "completed":
        raise PromotionError(f"run: {run.name} is {run.status}; promote a completed run")
    folds = {f.window.fold: f for f in catalog.list_walkforward_folds(run.name)}
    number = max(folds) if config.fold is None else config.fold
    fold = folds.get(number)
    if fold is None or fold.status != "succeeded" or fold.result is None or not fold.result.model_path:
        raise PromotionError(f"fold: {run.name} has no succeeded fold {number} with a model")
    sha = fold.result.model_sha256 or ""
    try:
        training.load_model(Path(fold.result.model_path), sha)
    except (OSError, training.TrainingError) as err:
        raise PromotionError(f"fold {number}: its model cannot be used: {err}") from None
    long, short = _thresholds(catalog, run.name, number, config)
    sharing = [
        s.name
        for s in catalog.list_strategies()
        if (s.venue, s.account, s.symbol) == (config.venue, config.account, config.symbol) and s.name != name
    ]
    if sharing:
        # The executor sizes each strategy against the account's position in its symbol: two strategies on
        # one would trade against each other.
        raise PromotionError(
            f"symbol: {config.symbol} on {config.venue}/{config.account} is traded by strategy {sharing[0]}; "
            "use another account"
        )
    dataset = catalog.get_dataset(run.dataset)
    if dataset is None:
        raise PromotionError(f"run: its dataset {run.dataset!r} is not in the catalog")
    try:
        naming.live_bars_table(config.venue, config.symbol, timeframe(dataset.bar_interval_s))
    except naming.InvalidNameError as err:
        raise PromotionError(str(err)) from None
    record = StrategyRecord(
        name=name,
        walkforward_run=run.name,
        fold=number,
        model_path=fold.result.model_path,
        model_sha256=sha,
        measurement=run.measurement,
        indicator_version=run.indicator_version,
        dataset=run.dataset,
        bars_sha256=dataset.source_sha256,
        long_threshold=long,
        short_threshold=short,
        sizing=rules.to_json(),
        symbol=config.symbol,
        venue=config.venue,
        account=config.account,
        max_position=limits["max_position"],
        max_order_notional=limits["max_order_notional"],
        max_orders_per_minute=config.max_orders_per_minute,
    )
    try:
        return catalog.upsert_strategy(record)
    except CatalogError as err:
        raise PromotionError(str(err)) from None


def _positive(name: str, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise StrategyConfigError(f"{name}: {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise StrategyConfigError(f"{name}: {text!r} must be a positive number")
    return value


def _thresholds(catalog: Catalog, run: str, fold: int, config: PromoteConfig) -> tuple[float, float]:
    stored = {t.fold: t for t in catalog.list_walkforward_thresholds(run)}.get(fold)
    long = (
        config.long_threshold
        if config.long_threshold is not None
        else getattr(stored, "long_threshold", None)
    )
    short = (
        config.short_threshold
        if config.short_threshold is not None
        else getattr(stored, "short_threshold", None)
    )
    if long is None or short is None:
        raise PromotionError(
            f"thresholds: fold {fold} of {run} has none; give long_threshold and short_threshold"
        )
    if short > long:
        raise PromotionError(f"thresholds: short_threshold {short} is above long_threshold {long}")
    return float(long), float(short)


@dataclass(frozen=True)
class StrategyModel:
    """What a strategy computes its signals with, and where its bars are recorded."""

    strategy: StrategyRecord
    rules: StrategyRules
    model: SignalModel
    booster: xgboost.Booster
    timeframe: str
    bars_table: str


def load_signal_model(catalog: Catalog, strategy: StrategyRecord) -> StrategyModel:
    """The strategy's indicator set, fold model (its file's hash checked), features, kind and rules."""
    run = catalog.get_walkforward_run(strategy.walkforward_run)
    indicator_set = catalog.get_indicator_set(strategy.dataset, strategy.indicator_version)
    dataset = catalog.get_dataset(strategy.dataset)
    if run is None or indicator_set is None or dataset is None:
        raise PromotionError(f"strategy {strategy.name}: its run, indicator set or dataset left the catalog")
    try:
        booster = training.load_model(Path(strategy.model_path), strategy.model_sha256)
        rules = StrategyRules.from_json(strategy.sizing)
    except (OSError, training.TrainingError, StrategyConfigError) as err:
        raise PromotionError(f"strategy {strategy.name}: {err}") from None
    lookbacks = dict(zip(indicator_set.columns, indicator_set.lookbacks, strict=True))
    model = SignalModel(
        set_spec=spec_from_json(indicator_set.spec),
        features=run.features,
        warmup=max(lookbacks[name] for name in run.features),
        kind=json.loads(run.target)["kind"],
        long_threshold=strategy.long_threshold,
        short_threshold=strategy.short_threshold,
        dead_zone=rules.dead_zone,
    )
    frame = timeframe(dataset.bar_interval_s)
    table = naming.live_bars_table(strategy.venue, strategy.symbol, frame)
    return StrategyModel(strategy, rules, model, booster, frame, table)
