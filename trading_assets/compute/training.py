"""Gradient-boosted tree models for one walkforward fold (XGBoost), fitted reproducibly.

- `fit` trains on rows in time order. With early stopping, the last `validation_fraction` of them are held
  out: the model never fits on them, they only decide how many trees to keep (`best_iteration`). The
  held-out part is the tail, never a shuffled sample, because a random sample would let the model stop on
  rows that sit between rows it fitted on.
- `predict` uses the trees up to `best_iteration`, which XGBoost stores in the model's attributes, so a
  model saved with `save_model` and read back with `load_model` predicts exactly the same values.
- On the CPU, the same inputs and seed give bit-identical trees, predictions and saved bytes, whatever the
  thread count (checked with 1 to 7 threads on up to a million rows).
- `cuda_available` and `resolve_device` decide where to fit; predictions always run on the CPU.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:  # XGBoost (~1 s to import) is loaded by the functions that use it
    import xgboost


class TrainingError(ValueError):
    """A model that cannot be fitted, loaded or used as asked; the message names the field and value."""


Device = Literal["auto", "cpu", "cuda"]
KINDS = ("regression", "classification")
MIN_FIT_ROWS = 2
_OBJECTIVES = {"regression": ("reg:squarederror", "rmse"), "classification": ("binary:logistic", "logloss")}
_FORMATS = {".ubj": "ubj", ".json": "json"}
_REAL_FIELDS = (
    "learning_rate",
    "subsample",
    "colsample_bytree",
    "min_child_weight",
    "reg_lambda",
    "reg_alpha",
    "validation_fraction",
)


@dataclass(frozen=True)
class Hyperparameters:
    n_estimators: int = 300
    max_depth: int = 4
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 1.0
    reg_lambda: float = 1.0
    reg_alpha: float = 0.0
    early_stopping_rounds: int | None = 30
    validation_fraction: float = 0.2

    def validate(self) -> None:
        """TrainingError naming the first field outside its range."""
        _check_int("n_estimators", self.n_estimators, 1)
        _check_int("max_depth", self.max_depth, 1, 20)
        for name in ("learning_rate", "subsample", "colsample_bytree"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 < value <= 1:
                raise TrainingError(f"{name} must be a number in (0, 1], got {value!r}")
        for name in ("min_child_weight", "reg_lambda", "reg_alpha"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise TrainingError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.early_stopping_rounds is not None:
            _check_int("early_stopping_rounds", self.early_stopping_rounds, 1)
        if not _is_number(self.validation_fraction) or not 0 <= self.validation_fraction <= 0.5:
            raise TrainingError(
                f"validation_fraction must be a number in [0, 0.5], got {self.validation_fraction!r}"
            )

    def to_dict(self) -> dict:
        """The fields by name, real-valued ones as floats, so equal settings always serialise the same."""
        values = asdict(self)
        return values | {name: float(values[name]) for name in _REAL_FIELDS}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    in_range = isinstance(value, int) and low <= value and (high is None or value <= high)
    if isinstance(value, bool) or not in_range:
        bounds = f">= {low}" if high is None else f"in {low}..{high}"
        raise TrainingError(f"{name} must be an integer {bounds}, got {value!r}")


# Run in a child process, so this process never creates a CUDA context: a worker forked from a parent that
# has one cannot use CUDA. It prints the device XGBoost really used, which is "cpu" after a silent fallback.
_CUDA_PROBE = """
import json, numpy, xgboost
data = xgboost.DMatrix(numpy.arange(16.0).reshape(8, 2), label=numpy.arange(8.0))
booster = xgboost.train({"device": "cuda", "tree_method": "hist"}, data, num_boost_round=1)
print(json.loads(booster.save_config())["learner"]["generic_param"]["device"])
"""


@functools.cache
def cuda_available() -> tuple[bool, str]:
    """(True, "") when XGBoost can fit on an NVIDIA GPU here, else (False, the reason). Asked once."""
    import xgboost

    if not xgboost.build_info().get("USE_CUDA", False):
        return False, f"XGBoost {xgboost.__version__} was built without CUDA"
    if not _nvidia_gpu_listed():
        return False, "no NVIDIA GPU visible (no /proc/driver/nvidia/gpus entries, nvidia-smi lists none)"
    return _cuda_probe()


def _cuda_probe() -> tuple[bool, str]:
    """Whether a tiny fit on cuda, in a child process, really ran on the GPU (else the reason)."""
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _CUDA_PROBE], capture_output=True, text=True, timeout=300, check=False
        )
    except subprocess.TimeoutExpired:
        return False, "a test fit on cuda did not finish within 300 s"
    messages = probe.stderr.strip().splitlines()
    if probe.returncode != 0:
        return False, f"a test fit on cuda failed: {messages[-1] if messages else probe.returncode}"
    used = probe.stdout.strip()
    if not used.startswith("cuda"):
        warned = [line.split("WARNING: ", 1)[1] for line in messages if "WARNING: " in line]
        return False, f"a test fit on cuda ran on {used!r}: {warned[-1] if warned else 'no usable GPU'}"
    return True, ""


def _nvidia_gpu_listed() -> bool:
    """Whether the NVIDIA driver lists a GPU, asked without loading CUDA into this process."""
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return False
    return any(line.startswith("GPU ") for line in listing.stdout.splitlines())


def resolve_device(requested: str) -> str:
    """The device to fit on: "cpu" or "cuda"; "auto" picks cuda when it is available."""
    if requested == "cpu":
        return "cpu"
    if requested not in ("auto", "cuda"):
        raise TrainingError(f"device must be 'auto', 'cpu' or 'cuda', got {requested!r}")
    available, reason = cuda_available()
    if requested == "cuda" and not available:
        raise TrainingError(f"device 'cuda' was requested but cannot be used: {reason}")
    return "cuda" if available else "cpu"


@dataclass(frozen=True)
class FoldModel:
    booster: xgboost.Booster
    kind: str
    best_iteration: int
    fit_rows: int
    validation_rows: int
    device: str
    seconds: float


def split_validation(n_rows: int, hp: Hyperparameters) -> int:
    """How many of the last rows are held out for early stopping: `validation_fraction` of `n_rows`,
    rounded down; 0 when early stopping is off."""
    if hp.early_stopping_rounds is None:
        return 0
    # Rounded to 9 places first, so 100 * 0.29 (28.999999999999996) counts as the 29 rows it means.
    return math.floor(round(n_rows * hp.validation_fraction, 9))


def fit(
    features: np.ndarray,
    target: np.ndarray,
    kind: str,
    hp: Hyperparameters,
    seed: int,
    device: str = "cpu",
    columns: Sequence[str] | None = None,
    nthread: int = 0,
    held_out: int | None = None,
) -> FoldModel:
    """A model of `target` on `features` (rows in time order), early-stopped on the held-out last rows:
    `held_out` of them (default `split_validation`), never fitted on.

    `nthread` 0 lets XGBoost use every core; the result does not depend on it. The model keeps only the
    trees up to the best iteration: the ones early stopping tried after it are neither used to predict
    nor counted in the feature importance.
    """
    import xgboost

    hp.validate()
    features, target = _checked_inputs(features, target, kind, columns)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise TrainingError(f"seed must be an integer in 0..2**63-1, got {seed!r}")
    _check_int("nthread", nthread, 0)
    n = target.size
    if held_out is None:
        held_out = split_validation(n, hp)
    elif isinstance(held_out, bool) or not isinstance(held_out, int) or not 0 <= held_out < n:
        raise TrainingError(f"held_out must be an integer in 0..{n - 1} rows, got {held_out!r}")
    fit_rows = n - held_out
    if fit_rows < MIN_FIT_ROWS:
        raise TrainingError(
            f"need at least {MIN_FIT_ROWS} rows to fit, got {fit_rows} ({n} rows, {held_out} held out)"
        )
    if kind == "classification" and np.unique(target[:fit_rows]).size < 2:
        raise TrainingError(
            f"classification needs both classes in the fitted rows, got only {target[0]:g} in {fit_rows} rows"
        )
    resolved = resolve_device(device)
    objective, metric = _OBJECTIVES[kind]
    params = {
        "objective": objective,
        "eval_metric": metric,
        "tree_method": "hist",
        "device": resolved,
        "seed": seed,
        "nthread": nthread,
        "max_depth": hp.max_depth,
        "learning_rate": hp.learning_rate,
        "subsample": hp.subsample,
        "colsample_bytree": hp.colsample_bytree,
        "min_child_weight": hp.min_child_weight,
        "reg_lambda": hp.reg_lambda,
        "reg_alpha": hp.reg_alpha,
    }
    names = list(columns) if columns is not None else None

    def matrix(rows: slice) -> xgboost.DMatrix:
        return xgboost.DMatrix(features[rows], label=target[rows], feature_names=names, nthread=nthread)

    evals = [(matrix(slice(fit_rows, n)), "validation")] if held_out else []
    started = time.perf_counter()
    booster = xgboost.train(
        params,
        matrix(slice(0, fit_rows)),
        num_boost_round=hp.n_estimators,
        evals=evals,
        early_stopping_rounds=hp.early_stopping_rounds if held_out else None,
        verbose_eval=False,
    )
    seconds = time.perf_counter() - started
    used = json.loads(booster.save_config())["learner"]["generic_param"]["device"]
    if not used.startswith(resolved):
        raise TrainingError(f"XGBoost fitted on {used!r} although device {resolved!r} was asked for")
    best = booster.attr("best_iteration")
    best = booster.num_boosted_rounds() - 1 if best is None else int(best)
    booster = booster[: best + 1]
    booster.set_attr(best_iteration=str(best))
    # Predictions then run on the CPU like those of a reloaded model, so both give the same bits.
    booster.set_param({"device": "cpu"})
    # The trees do not depend on the thread count, but the validation score's parallel sum does (in its
    # last digit, from about 40,000 held-out rows): without it, the saved bytes do not either.
    booster.set_attr(best_score=None)
    return FoldModel(
        booster=booster,
        kind=kind,
        best_iteration=int(booster.attr("best_iteration")),
        fit_rows=fit_rows,
        validation_rows=held_out,
        device=resolved,
        seconds=seconds,
    )


def _checked_inputs(
    features: np.ndarray, target: np.ndarray, kind: str, columns: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Features (rows x columns) and target as float64, or TrainingError saying what does not fit."""
    if kind not in KINDS:
        raise TrainingError(f"kind must be 'regression' or 'classification', got {kind!r}")
    features = np.asarray(features, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if features.ndim != 2 or target.ndim != 1 or features.shape[0] != target.size:
        raise TrainingError(
            f"features must be rows x columns and target one value per row, got shapes "
            f"{features.shape} and {target.shape}"
        )
    if columns is not None and len(columns) != features.shape[1]:
        raise TrainingError(f"columns has {len(columns)} names for {features.shape[1]} feature columns")
    if not np.isfinite(features).all():
        raise TrainingError(f"features have {int((~np.isfinite(features)).sum())} non-finite value(s)")
    if not np.isfinite(target).all():
        raise TrainingError(f"target has {int((~np.isfinite(target)).sum())} non-finite value(s)")
    if kind == "classification" and not np.isin(target, (0.0, 1.0)).all():
        raise TrainingError(f"classification target must be 0 or 1, got values {np.unique(target)[:5]}")
    return features, target


def predict(
    booster: xgboost.Booster, features: np.ndarray, kind: str, nthread: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions of the trees up to the booster's best iteration, as float64: (values, None) for
    regression, (class 0/1, probability of class 1) for classification. `nthread` limits the threads that
    build the input matrix (all by default); a live signal's one row is built faster on one thread than
    by a pool that must start, with the same values (a row's prediction does not depend on how the matrix
    was made)."""
    import xgboost

    if kind not in KINDS:
        raise TrainingError(f"kind must be 'regression' or 'classification', got {kind!r}")
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[1] != booster.num_features():
        raise TrainingError(
            f"features of shape {features.shape} do not fit a model of {booster.num_features()} columns"
        )
    if features.shape[0] == 0:
        # XGBoost warns on an empty matrix; there is nothing to predict.
        values = np.empty(0)
    else:
        best = booster.attr("best_iteration")
        last = int(best) if best is not None else booster.num_boosted_rounds() - 1
        data = xgboost.DMatrix(features, feature_names=booster.feature_names, nthread=nthread)
        values = booster.predict(data, iteration_range=(0, last + 1)).astype(np.float64)
    if kind == "regression":
        return values, None
    return (values >= 0.5).astype(np.float64), values


def save_model(booster: xgboost.Booster, path: Path) -> str:
    """Write the model in XGBoost's own format (UBJSON for ".ubj", JSON for ".json") atomically; returns
    the SHA-256 (hex) of the bytes written."""
    path = Path(path)
    raw_format = _FORMATS.get(path.suffix)
    if raw_format is None:
        raise TrainingError(f"model path {path} must end in .ubj or .json")
    raw = bytes(booster.save_raw(raw_format=raw_format))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(raw)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return hashlib.sha256(raw).hexdigest()


def load_model(path: Path, expected_sha256: str | None = None) -> xgboost.Booster:
    """The model stored at `path`; TrainingError if its bytes do not have the expected SHA-256."""
    import xgboost

    raw = Path(path).read_bytes()
    actual = hashlib.sha256(raw).hexdigest()
    if expected_sha256 is not None and actual != expected_sha256.lower():
        raise TrainingError(f"model {path} has sha256 {actual}, expected {expected_sha256}")
    booster = xgboost.Booster()
    booster.load_model(bytearray(raw))
    return booster


def feature_importance(booster: xgboost.Booster, columns: Sequence[str]) -> dict[str, float]:
    """Each column's share of the total gain of all splits (0.0 for unused columns; all 0.0 without
    splits)."""
    names = booster.feature_names or [f"f{i}" for i in range(booster.num_features())]
    if len(names) != len(columns) or (booster.feature_names and list(columns) != names):
        raise TrainingError(f"columns {list(columns)} do not match the model's features {names}")
    gains = booster.get_score(importance_type="total_gain")
    total = sum(gains.values())
    return {
        column: (gains.get(name, 0.0) / total if total > 0 else 0.0)
        for column, name in zip(columns, names, strict=True)
    }
