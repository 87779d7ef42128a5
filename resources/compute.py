"""`ComputeResource`: where model training runs (CPU or CUDA) and where trained models are kept."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from trading_assets.compute.training import resolve_device


class ComputeResource(dg.ConfigurableResource):
    """The compute device for training, resolved on the machine that runs the step (so a GPU worker and a
    CPU worker given the same config each pick what they have), and the artifact folder for fold models.

    `auto` trains on CUDA when XGBoost was built with CUDA and an NVIDIA GPU is visible, else on CPU;
    `cuda` fails the step with the reason when there is none. The artifact folder must be shared by every
    machine that runs steps (a volume in multi-machine deployments): the catalog stores model paths in it.
    """

    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto | cpu | cuda.")
    nthread: int = Field(
        default=0,
        ge=0,
        description="CPU threads per training (0: all cores). CPU results do not depend on it.",
    )
    artifacts_dir: str = Field(description="Folder of fold models: <artifacts_dir>/<run>/fold_<k>.ubj.")

    def resolved_device(self) -> str:
        """ "cpu" or "cuda" on this machine; TrainingError when `cuda` is asked for and unavailable."""
        return resolve_device(self.device)

    def model_path(self, run: str, fold: int) -> Path:
        """Where fold `fold` of walkforward run `run` keeps its model (XGBoost's UBJSON format)."""
        return Path(self.artifacts_dir).resolve() / run / f"fold_{fold:03d}.ubj"
