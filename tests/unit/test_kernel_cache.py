"""numba's cache of the indicator kernels is dropped when any kernel source changes (helpers included)."""

import subprocess
import sys
from pathlib import Path

from trading_assets.compute.indicators.kernels import cache_folders, drop_stale_cache


def test_cached_machine_code_is_dropped_when_a_source_changes_and_kept_otherwise(tmp_path: Path):
    package, cache = tmp_path / "kernels", tmp_path / "cache"
    package.mkdir()
    (package / "_window.py").write_text("def helper(): return 1\n")
    (package / "averages.py").write_text("def kernel(): return 2\n")
    assert drop_stale_cache(package, cache)  # no stamp yet: whatever is cached cannot be trusted
    compiled = [cache / "averages.sma_nb-10.py311.nbi", cache / "averages.sma_nb-10.py311.1.nbc"]
    for path in compiled:
        path.write_bytes(b"machine code")
    assert not drop_stale_cache(package, cache)
    assert all(p.exists() for p in compiled)
    (package / "_window.py").write_text("def helper(): return 3\n")  # only the helper changed
    assert drop_stale_cache(package, cache)
    assert not any(p.exists() for p in compiled)
    assert not drop_stale_cache(package, cache)


def test_the_guard_covers_the_folder_numba_really_caches_in(tmp_path: Path):
    assert cache_folders() == {
        Path(__file__).parents[2] / "trading_assets/compute/indicators/kernels/__pycache__"
    }
    code = "from trading_assets.compute.indicators.kernels import cache_folders; print(*cache_folders())"
    env = {"NUMBA_CACHE_DIR": str(tmp_path), "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    folder = Path(out.stdout.strip())
    assert folder.parent == tmp_path
    assert (folder / "kernels_source.sha256").exists()
