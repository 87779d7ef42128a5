"""The indicator library: numba kernels, their declarations, indicator sets and the engine that runs them.

    from trading_assets.compute.indicators import REGISTRY, compute_set, parse_spec
    spec = parse_spec({"name": "mine", "indicators": [{"indicator": "rsi", "params": {"n": 14}}]})
    columns = compute_set(spec, {"close": close}).values

No Dagster or storage import here: a notebook or a desktop app uses it exactly as the assets do.
Users add their own indicators with the `indicator` decorator (docs/indicators.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

from trading_assets.compute.indicators import builtin as _builtin  # noqa: F401  (registers the built-ins)
from trading_assets.compute.indicators.engine import (
    SetResult,
    SetState,
    Violation,
    bars_sha256,
    code_version,
    compute_set,
    extend_set,
    history_bars,
    lookahead_cuts,
    lookahead_violations,
    warmup_violations,
)
from trading_assets.compute.indicators.registry import (
    BAR_INPUTS,
    REGISTRY,
    Indicator,
    IndicatorError,
    Param,
    Registry,
    indicator,
)
from trading_assets.compute.indicators.spec import (
    Column,
    Entry,
    SetFile,
    SetSpec,
    SpecError,
    load_set_file,
    parse_spec,
    spec_from_json,
)

# The set the demo computes and the launchpad suggests.
DEFAULT_SET_FILE = Path(__file__).parent / "sets" / "default.yaml"


def default_spec() -> SetSpec:
    """The default indicator set (sets/default.yaml)."""
    return load_set_file(DEFAULT_SET_FILE, need_datasets=False).spec


def load_modules(modules: Iterable[str]) -> list[str]:
    """Import modules that register users' own indicators (e.g. from TRADING_INDICATOR_MODULES)."""
    loaded = []
    for name in modules:
        name = name.strip()
        if name:
            try:
                importlib.import_module(name)
            except ImportError as err:
                raise IndicatorError(f"cannot import indicator module {name!r}: {err}") from None
            loaded.append(name)
    return loaded


__all__ = [
    "BAR_INPUTS",
    "DEFAULT_SET_FILE",
    "REGISTRY",
    "Column",
    "Entry",
    "Indicator",
    "IndicatorError",
    "Param",
    "Registry",
    "SetFile",
    "SetResult",
    "SetSpec",
    "SetState",
    "SpecError",
    "Violation",
    "bars_sha256",
    "code_version",
    "compute_set",
    "default_spec",
    "extend_set",
    "history_bars",
    "indicator",
    "load_modules",
    "load_set_file",
    "lookahead_cuts",
    "lookahead_violations",
    "parse_spec",
    "spec_from_json",
    "warmup_violations",
]
