"""The floors of the house import only downward: the contracts of pyproject.toml's [tool.importlinter].

They run here, in pytest, rather than as a line of the Makefile: every pytest run (`make test`, CI, a
developer's) enforces them, and the proof that each contract can fail lives beside the check itself.
"""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))
PACKAGES = ("trading_assets", "resources", "sensors")
# What every contract lets its sources import from trading_assets (the floor's own contract also forbids
# compute); everything else in trading_assets is a room or sits above the rooms.
BELOW_THE_ROOMS = {"compute", "records", "naming", "partitions", "orders"}


def lint_imports(cwd: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the packages under `cwd`, with the pyproject.toml there; it leaves no cache."""
    selection = [arg for contract in contracts for arg in ("--contract", contract)]
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--no-logo", "--config", "pyproject.toml", *selection],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_code_keeps_every_contract():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_module_above_the_floors_is_forbidden_by_every_contract():
    """A new room (or any new module of trading_assets) must be named in the contracts to be guarded."""
    above = {
        f"trading_assets.{module.name}"
        for module in pkgutil.iter_modules([str(REPO / "trading_assets")])
        if module.name not in BELOW_THE_ROOMS
    }
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    for contract in contracts:
        assert above - set(contract["forbidden_modules"]) == set(), contract["id"]


@pytest.fixture
def copy_of_the_code(tmp_path: Path) -> Path:
    """The three packages' sources and pyproject.toml, copied to change without touching the repo."""
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("contract", "module", "forbidden_import"),
    [
        ("compute-is-pure", "trading_assets/compute/folds.py", "import dagster"),
        ("compute-is-pure", "trading_assets/compute/files.py", "from resources import timeseries"),
        ("compute-is-pure", "trading_assets/compute/targets.py", "import trading_assets.bars.service"),
        ("resources-below-assets", "resources/landing.py", "from trading_assets.bars import jobs"),
        ("resources-below-assets", "resources/timeseries.py", "import sensors.landing"),
        ("floor-imports-nothing-above", "trading_assets/naming.py", "import trading_assets.compute.files"),
        ("floor-imports-nothing-above", "trading_assets/partitions.py", "import resources.catalog"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(copy_of_the_code, contract, module, forbidden_import):
    with (copy_of_the_code / module).open("a") as source:
        source.write(f"\n{forbidden_import}  # noqa\n")

    result = lint_imports(copy_of_the_code, contract)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 broken" in result.stdout
    assert module.removesuffix(".py").replace("/", ".") in result.stdout
