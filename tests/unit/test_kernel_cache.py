"""numba's cache of the indicator kernels is dropped when any kernel source changes (helpers included)."""

from pathlib import Path

from trading_assets.compute.indicators.kernels import drop_stale_cache


def test_cached_machine_code_is_dropped_when_a_source_changes_and_kept_otherwise(tmp_path: Path):
    (tmp_path / "_window.py").write_text("def helper(): return 1\n")
    (tmp_path / "averages.py").write_text("def kernel(): return 2\n")
    cache = tmp_path / "__pycache__"
    assert drop_stale_cache(tmp_path)  # no stamp yet: whatever is cached cannot be trusted
    compiled = [cache / "averages.sma_nb-10.py311.nbi", cache / "averages.sma_nb-10.py311.1.nbc"]
    for path in compiled:
        path.write_bytes(b"machine code")
    assert not drop_stale_cache(tmp_path)
    assert all(p.exists() for p in compiled)
    (tmp_path / "_window.py").write_text("def helper(): return 3\n")  # only the helper changed
    assert drop_stale_cache(tmp_path)
    assert not any(p.exists() for p in compiled)
    assert not drop_stale_cache(tmp_path)
