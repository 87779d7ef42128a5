"""numba kernels of the built-in indicators: float64 arrays in, float64 arrays filled, NaN in the warm-up.

Every kernel takes, last, the array it fills (one row per output when there are several), allocated by
the caller: numpy asks for huge pages for large arrays, where numba's own allocations fault in 4 KiB
pages, several times slower per new array.

Windowed kernels (`name_nb(inputs..., params..., out)`) compute each value from its own window with a
fixed order of operations, so the value at a bar never depends on where the array starts. Stateful
kernels (`name_nb(inputs..., params..., state, i0, out)`) run from position `i0`, read and update `state`
in place (its first slot counts the bars seen, so the warm-up follows absolute bar numbers), and fill the
positions before `i0` with NaN; a prefix run then a resumed run equal one run bit for bit.

All kernels are compiled without fastmath, so results are bit-identical from run to run, and with
numpy's error model: a division by zero gives inf or NaN (caught by the warm-up check) instead of raising
inside a loop. The TA-Lib conventions they follow, and where they depart from it, are in each docstring.

The kernels call helpers in `_window.py`, so numba's cached machine code of this package is guarded as
all compiled code of the compute library is (`compute/numba_cache.py`).
"""

from trading_assets.compute.indicators.kernels import (
    _window,
    averages,
    oscillators,
    recursions,
    returns,
    trend,
    volatility,
    volume,
)
from trading_assets.compute.indicators.kernels.averages import ema_nb, sma_nb, wma_nb
from trading_assets.compute.indicators.kernels.oscillators import cci_nb, rsi_nb, stoch_nb, willr_nb
from trading_assets.compute.indicators.kernels.recursions import recursions_nb
from trading_assets.compute.indicators.kernels.returns import logret_nb, mom_nb, roc_nb, rvol_nb
from trading_assets.compute.indicators.kernels.trend import adx_nb, macd_nb
from trading_assets.compute.indicators.kernels.volatility import (
    atr_nb,
    bbands_nb,
    close_windows_nb,
    zscore_nb,
)
from trading_assets.compute.indicators.kernels.volume import mfi_nb, obv_nb, vwap_nb
from trading_assets.compute.numba_cache import guard

guard(_window, averages, oscillators, recursions, returns, trend, volatility, volume)

__all__ = [
    "adx_nb",
    "atr_nb",
    "bbands_nb",
    "cci_nb",
    "close_windows_nb",
    "ema_nb",
    "logret_nb",
    "macd_nb",
    "mfi_nb",
    "mom_nb",
    "obv_nb",
    "recursions_nb",
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
