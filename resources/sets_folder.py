"""`SetsFolder`: the folder where indicator-set files (YAML or JSON) are dropped to be applied to datasets."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

SET_SUFFIXES = frozenset({".yaml", ".yml", ".json"})


class SetsFolder(dg.ConfigurableResource):
    """Indicator-set files, one set per file (docs/indicators.md shows the format). A missing folder is
    an empty one: nobody has dropped a set yet."""

    path: str = Field(description="The folder, e.g. data/indicator_sets.")

    def files(self) -> list[Path]:
        """Set files in name order; hidden and temporary files (still being written) are skipped."""
        folder = Path(self.path)
        if not folder.is_dir():
            return []
        return sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in SET_SUFFIXES and not p.name.startswith((".", "~"))
        )
