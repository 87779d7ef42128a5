"""Long and short thresholds for a fold's predictions, taken from its training period only.

A fold's test predictions are compared with cut-offs that must not depend on the test window itself:
they are quantiles of the model's predictions on training-period rows. `source="validation"` takes the
rows held out for early stopping (predictions out of fit, so they are spread like test predictions);
`source="train"` takes the fitted rows (in-sample, usually too confident).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np


class ThresholdError(ValueError):
    """A threshold rule or input that cannot give thresholds; the message says which and why."""


@dataclass(frozen=True)
class ThresholdRule:
    source: Literal["validation", "train"] = "validation"
    long_quantile: float = 0.8
    short_quantile: float = 0.2

    def validate(self) -> None:
        """ThresholdError naming the first field that is out of range."""
        if self.source not in ("validation", "train"):
            raise ThresholdError(f"source must be 'validation' or 'train', got {self.source!r}")
        for name in ("long_quantile", "short_quantile"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
                raise ThresholdError(f"{name} must be a number in (0, 1), got {value!r}")
        if self.short_quantile >= self.long_quantile:
            raise ThresholdError(
                f"short_quantile {self.short_quantile} must be below long_quantile {self.long_quantile}"
            )

    def to_dict(self) -> dict:
        """The fields by name, quantiles as floats."""
        return asdict(self) | {
            "long_quantile": float(self.long_quantile),
            "short_quantile": float(self.short_quantile),
        }


def quantile_thresholds(train_period_pred: np.ndarray, rule: ThresholdRule) -> tuple[float, float]:
    """(long, short): the rule's quantiles (linear interpolation) of the finite training-period
    predictions."""
    rule.validate()
    predictions = np.asarray(train_period_pred, dtype=np.float64).ravel()
    finite = predictions[np.isfinite(predictions)]
    if finite.size == 0:
        raise ThresholdError(
            f"no finite {rule.source} prediction to take thresholds from ({predictions.size} predictions)"
        )
    long, short = np.quantile(finite, [rule.long_quantile, rule.short_quantile], method="linear")
    return float(long), float(short)
