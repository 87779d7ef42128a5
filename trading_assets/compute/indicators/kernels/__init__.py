"""numba kernels of the built-in indicators: float64 arrays in, float64 arrays out, NaN in the warm-up.

Windowed kernels (`name_nb(inputs..., params...)`) compute each value from its own window with a fixed
order of operations, so the value at a bar never depends on where the array starts. Stateful kernels
(`name_nb(inputs..., params..., state, i0)`) run from position `i0`, read and update `state` in place
(its first slot counts the bars seen, so the warm-up follows absolute bar numbers), and leave the
positions before `i0` NaN; a prefix run then a resumed run equal one run bit for bit.

All kernels are compiled without fastmath, so results are bit-identical from run to run, and with
numpy's error model: a division by zero gives inf or NaN (caught by the warm-up check) instead of raising
inside a loop. The TA-Lib conventions they follow, and where they depart from it, are in each docstring.

numba's on-disk cache (`cache=True`) checks only the file of the kernel it loads, not the helpers it calls
in `_window.py`: `drop_stale_cache` clears this package's cached machine code whenever any of its sources
changed. It runs right after the kernels are defined and before any is called (numba loads cached code at
the first call), in whichever folder numba caches them (`__pycache__` here, or under NUMBA_CACHE_DIR).
"""

import hashlib
from pathlib import Path

from numba.core.registry import CPUDispatcher

from trading_assets.compute.indicators.kernels import (
    _window,
    averages,
    oscillators,
    returns,
    trend,
    volatility,
    volume,
)
from trading_assets.compute.indicators.kernels.averages import ema_nb, sma_nb, wma_nb
from trading_assets.compute.indicators.kernels.oscillators import cci_nb, rsi_nb, stoch_nb, willr_nb
from trading_assets.compute.indicators.kernels.returns import logret_nb, mom_nb, roc_nb, rvol_nb, zscore_nb
from trading_assets.compute.indicators.kernels.trend import adx_nb, macd_nb
from trading_assets.compute.indicators.kernels.volatility import atr_nb, bbands_nb
from trading_assets.compute.indicators.kernels.volume import mfi_nb, obv_nb, vwap_nb

_STAMP = "kernels_source.sha256"


def drop_stale_cache(package: Path, cache: Path) -> bool:
    """Delete numba's cache files (.nbi/.nbc) in `cache` if the sources of `package` changed since they were
    written; return True if it did. A read-only install keeps no cache, so errors are ignored."""
    digest = hashlib.sha256()
    for source in sorted(package.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    stamp = cache / _STAMP
    try:
        if stamp.read_text() == digest.hexdigest():
            return False
    except OSError:
        pass
    try:
        for stale in (*cache.glob("*.nbi"), *cache.glob("*.nbc")):
            stale.unlink(missing_ok=True)
        cache.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest.hexdigest())
    except OSError:
        pass
    return True


def cache_folders() -> set[Path]:
    """Where numba keeps the cached machine code of this package's kernels (private numba attribute,
    checked against the numba pinned in requirements.lock)."""
    folders = set()
    for module in (_window, averages, oscillators, returns, trend, volatility, volume):
        for value in vars(module).values():
            path = getattr(getattr(value, "_cache", None), "_cache_path", None)
            if isinstance(value, CPUDispatcher) and path:
                folders.add(Path(path))
    return folders


for _folder in cache_folders():
    drop_stale_cache(Path(__file__).parent, _folder)

__all__ = [
    "adx_nb",
    "atr_nb",
    "bbands_nb",
    "cache_folders",
    "cci_nb",
    "drop_stale_cache",
    "ema_nb",
    "logret_nb",
    "macd_nb",
    "mfi_nb",
    "mom_nb",
    "obv_nb",
    "roc_nb",
    "rsi_nb",
    "rvol_nb",
    "sma_nb",
    "stoch_nb",
    "vwap_nb",
    "willr_nb",
    "wma_nb",
    "zscore_nb",
]
