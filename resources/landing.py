"""`LandingFolder`: the folder desktop exports are dropped into, one file per dataset."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import dagster as dg

from trading_assets import naming
from trading_assets.compute.bar_format import ReadOptions
from trading_assets.compute.calendars import trading_calendar
from trading_assets.compute.dataset_options import DatasetOptions
from trading_assets.compute.files import file_sha256

EXPORT_SUFFIXES = frozenset({".txt", ".csv", ".tsv", ".prn", ".dat", ".parquet"})
SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class LandingFile:
    """An export in the landing folder, with its optional `<stem>.json` of reading options."""

    dataset: str
    path: Path
    sidecar: Path | None

    def fingerprint(self) -> str:
        """What decides whether the file must be ingested again: its content and its reading options."""
        parts = [file_sha256(self.path)]
        if self.sidecar is not None:
            parts.append(file_sha256(self.sidecar))
        return ":".join(parts)

    def options(self) -> DatasetOptions:
        """The dataset's options from the sidecar, or the defaults without one."""
        if self.sidecar is None:
            return DatasetOptions()
        try:
            values = json.loads(self.sidecar.read_text())
            if not isinstance(values, dict):
                raise ValueError(f"expected a JSON object, got {type(values).__name__}")
            return DatasetOptions.from_dict(values)
        except (OSError, ValueError) as err:
            raise ValueError(f"{self.sidecar.name}: cannot read the dataset's options: {err}") from None

    def read_options(
        self, timezone: str | None = None, datetime_format: str | None = None, calendar: str | None = None
    ) -> ReadOptions:
        """Reading options from the sidecar (if any), overridden by explicit arguments."""
        options = self.options().read
        if calendar:
            trading_calendar(calendar)  # an unknown name is refused before the file is read
        return replace(
            options,
            timezone=timezone or options.timezone,
            datetime_format=datetime_format or options.datetime_format,
            calendar=calendar or options.calendar,
        )


def landing_file(path: Path, dataset: str | None = None) -> LandingFile:
    """The export at `path` (anywhere), named `dataset` or after its stem."""
    name = naming.dataset_name(dataset) if dataset else naming.dataset_from_path(path)
    sidecar = path.with_name(path.name.split(".", 1)[0] + SIDECAR_SUFFIX)
    return LandingFile(name, path, sidecar if sidecar.exists() else None)


class LandingFolder(dg.ConfigurableResource):
    """The folder exports land in (TRADING_LANDING_DIR). Each export's stem names its dataset."""

    path: str

    def scan(self) -> tuple[list[LandingFile], list[str]]:
        """The exports in the folder, and a reason for each file that cannot become a dataset."""
        folder = Path(self.path)
        if not folder.is_dir():
            return [], []
        files: dict[str, LandingFile] = {}
        contested: set[str] = set()
        problems: list[str] = []
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in EXPORT_SUFFIXES or not path.is_file():
                continue
            try:
                found = landing_file(path)
            except naming.InvalidNameError as err:
                problems.append(str(err))
                continue
            if found.dataset in files or found.dataset in contested:
                contested.add(found.dataset)
                problems.append(
                    f"{path.name}: dataset {found.dataset!r} also comes from "
                    "another file; keep one file per dataset"
                )
                files.pop(found.dataset, None)
                continue
            files[found.dataset] = found
        return list(files.values()), problems

    def find(self, dataset: str) -> LandingFile:
        files, problems = self.scan()
        for found in files:
            if found.dataset == dataset:
                return found
        detail = f" ({'; '.join(problems)})" if problems else ""
        raise FileNotFoundError(f"no export for dataset {dataset!r} in {self.path}{detail}")
