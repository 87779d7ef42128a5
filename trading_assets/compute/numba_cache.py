"""The one answer to numba's on-disk cache going stale, for every compiled module of the compute library.

numba's cache (`cache=True`) keys a kernel's machine code on the source file of that kernel only: a kernel
that calls a helper in another file would keep running the helper's old code after the helper changed.
Rather than a rule on where kernels may live (all of a kernel's helpers in its own file), which a new
kernel breaks silently, every package of compiled modules calls `guard` with all of them, once, right
after they are defined and before any kernel is called (numba loads cached code at the first call): it
deletes their cached machine code whenever any of their sources changed, in whichever folder numba caches
them (`__pycache__` beside the sources, or under NUMBA_CACHE_DIR). The price is one recompile after an
edit; a stale kernel is never run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from numba.core.registry import CPUDispatcher

_STAMP = "kernels_source.sha256"


def drop_stale_cache(sources: Iterable[Path], cache: Path) -> bool:
    """Delete numba's cache files (.nbi/.nbc) in `cache` if `sources` changed since they were written;
    return True if it did. A read-only install keeps no cache, so errors are ignored."""
    digest = hashlib.sha256()
    for source in sorted(sources, key=lambda path: path.name):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    stamp = cache / _STAMP
    try:
        if stamp.read_text() == digest.hexdigest():
            return False
    except OSError:
        pass
    try:
        for stale in (*cache.glob("*.nbi"), *cache.glob("*.nbc")):
            stale.unlink(missing_ok=True)
        cache.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest.hexdigest())
    except OSError:
        pass
    return True


def cache_folders(modules: Iterable[ModuleType]) -> set[Path]:
    """Where numba keeps the cached machine code of the kernels of `modules` (private numba attribute,
    checked against the numba pinned in requirements.lock)."""
    folders = set()
    for module in modules:
        for value in vars(module).values():
            path = getattr(getattr(value, "_cache", None), "_cache_path", None)
            if isinstance(value, CPUDispatcher) and path:
                folders.add(Path(path))
    return folders


def guard(*modules: ModuleType) -> None:
    """Drop the cached machine code of the kernels of `modules` if any of their sources changed."""
    sources = [Path(module.__file__ or "") for module in modules]
    for folder in cache_folders(modules):
        drop_stale_cache(sources, folder)
