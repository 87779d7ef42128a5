"""`dg check defs` and `dg list defs` work on the project as configured by pyproject.toml's [tool.dg].

Each runs as a developer would, from the repository root, with a throwaway DAGSTER_HOME and
TRADING_DATA_DIR so that nothing is written under ./data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trading_assets.definitions import defs

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture
def dg(tmp_path: Path):
    """Runs `dg <args>` in the repository root, as from an activated virtual environment."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "VIRTUAL_ENV": sys.prefix,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DAGSTER_HOME": str(home),
        "TRADING_DATA_DIR": str(tmp_path / "data"),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "dg"), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=240
        )

    return run


def test_dg_check_defs_loads_the_code_location(dg):
    result = dg("check", "defs")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_dg_list_defs_names_every_asset_and_job(dg):
    result = dg("list", "defs", "--json")

    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert {asset["asset_key"] for asset in listing["assets"]} == {
        key.to_user_string() for key in defs.resolve_all_asset_keys()
    }
    assert {job["name"] for job in listing["jobs"]} == {
        job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")
    }
