"""numba's cached machine code never outlives a change to the sources it was compiled from, helpers in other
files included, for every compiled module of the compute library."""

import subprocess
import sys
import textwrap
from pathlib import Path

from trading_assets.compute.numba_cache import drop_stale_cache

REPO = Path(__file__).parents[2]


def python(code: str, **env: str) -> str:
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return run.stdout.strip()


def test_cached_machine_code_is_dropped_when_a_source_changes_and_kept_otherwise(tmp_path: Path):
    helper, kernel, cache = tmp_path / "_window.py", tmp_path / "averages.py", tmp_path / "cache"
    helper.write_text("def helper(): return 1\n")
    kernel.write_text("def kernel(): return 2\n")
    assert drop_stale_cache([helper, kernel], cache)  # no stamp yet: whatever is cached cannot be trusted
    compiled = [cache / "averages.sma_nb-10.py311.nbi", cache / "averages.sma_nb-10.py311.1.nbc"]
    for path in compiled:
        path.write_bytes(b"machine code")
    assert not drop_stale_cache([helper, kernel], cache)
    assert all(p.exists() for p in compiled)
    helper.write_text("def helper(): return 3\n")  # only the helper changed
    assert drop_stale_cache([helper, kernel], cache)
    assert not any(p.exists() for p in compiled)
    assert not drop_stale_cache([helper, kernel], cache)


def test_a_cached_kernel_runs_its_helpers_new_code_after_the_helper_changed(tmp_path: Path):
    package = tmp_path / "kernels"
    package.mkdir()
    compiled = "from numba import njit\n\n@njit(cache=True)\n"
    (package / "helper.py").write_text(compiled + "def h():\n    return 1\n")
    (package / "kernel.py").write_text(f"from kernels.helper import h\n{compiled}def k():\n    return h()\n")
    (package / "__init__.py").write_text(
        "from trading_assets.compute.numba_cache import guard\nfrom kernels import helper, kernel\n\n"
        "guard(helper, kernel)\n"
    )
    env = {"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": ""}
    assert python("from kernels.kernel import k; print(k())", **env) == "1"
    (package / "helper.py").write_text(compiled + "def h():\n    return 2\n")
    # Without the guard numba would load k's machine code compiled with the old h, and print 1.
    assert python("from kernels.kernel import k; print(k())", **env) == "2"


def test_every_compiled_module_of_the_compute_library_is_guarded_wherever_numba_caches(tmp_path: Path):
    code = textwrap.dedent(
        """
        import importlib, pkgutil
        import trading_assets.compute as compute
        from trading_assets.compute.numba_cache import cache_folders
        prefix = compute.__name__ + "."
        modules = [importlib.import_module(m.name) for m in pkgutil.walk_packages(compute.__path__, prefix)]
        print(*sorted(cache_folders(modules)), sep="\\n")
        """
    )
    folders = [Path(line) for line in python(code, NUMBA_CACHE_DIR=str(tmp_path), PATH="").splitlines()]
    assert len(folders) == 4  # the indicator kernels, the simulator's, demo_data's, bar_format's
    for folder in folders:
        assert folder.parent == tmp_path
        assert (folder / "kernels_source.sha256").exists()
