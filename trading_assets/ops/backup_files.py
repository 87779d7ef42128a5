"""Files of a backup: copies that hash what they write, the hashes of a folder, table checksums compared,
and the progress of long work (a bar on a terminal, log lines elsewhere).

Every component of a backup describes its tables the same way, `{"rows": N, "sha256": HEX}`: the SHA-256
of the table's rows as its own database renders them as text, in an order fixed by the database, computed
by the same function on the original and on the restored copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

CHUNK = 1 << 20

# `files` entries of a manifest: a path relative to the backup folder -> {"sha256": hex, "bytes": n}.
FileHashes = dict[str, dict[str, Any]]
# A component's tables: name -> {"rows": n, "sha256": hex}.
TableSums = dict[str, dict[str, Any]]


class BackupError(RuntimeError):
    """A backup, restore or verification that cannot go on; the message is one line naming what."""


@dataclass
class Progress:
    """Reports long work: a line per step through `log`, and on a terminal a bar while bytes are copied."""

    log: Callable[[str], None]
    bar: bool = False

    @classmethod
    def console(cls) -> Progress:
        return cls(log=lambda line: print(line, file=sys.stderr, flush=True), bar=sys.stderr.isatty())

    @contextmanager
    def step(self, label: str, total_bytes: int | None = None) -> Iterator[Callable[[int], object]]:
        """A step of the work; yields `advance(n)` for the bytes done. Logs its end with its duration."""
        started = time.perf_counter()
        size = f" ({human_bytes(total_bytes)})" if total_bytes else ""
        self.log(f"{label}{size} ...")
        with tqdm(
            total=total_bytes, desc=label, unit="B", unit_scale=True, leave=False, disable=not self.bar
        ) as bar:
            yield bar.update
        self.log(f"{label}: done in {time.perf_counter() - started:.1f} s")


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def sha256_file(path: Path, advance: Callable[[int], object] = lambda _: None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while block := src.read(CHUNK):
            digest.update(block)
            advance(len(block))
    return digest.hexdigest()


def tree_files(root: Path) -> list[Path]:
    """The regular files under `root`, sorted; anything else (a socket, a device) is refused."""
    found = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder, name)
            if not path.is_file() or path.is_symlink():
                raise BackupError(f"{path}: not a regular file; a backup copies only files and folders")
            found.append(path)
    return found


def copy_file(src: Path, dst: Path, advance: Callable[[int], object] = lambda _: None) -> dict[str, Any]:
    """Copy one file, hashing the bytes written; its `files` entry."""
    digest = hashlib.sha256()
    size = 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as source, dst.open("wb") as target:
        while block := source.read(CHUNK):
            target.write(block)
            digest.update(block)
            size += len(block)
            advance(len(block))
    shutil.copystat(src, dst)
    return {"sha256": digest.hexdigest(), "bytes": size}


def tree_bytes(files: Iterable[Path]) -> int:
    return sum(path.stat().st_size for path in files)


def copy_tree(src: Path, dst: Path, progress: Progress, label: str) -> FileHashes:
    """Copy every file under `src` to `dst`; their entries keyed by the path relative to `src`."""
    files = tree_files(src)
    copied: FileHashes = {}
    with progress.step(label, tree_bytes(files)) as advance:
        for path in files:
            rel = path.relative_to(src)
            try:
                copied[rel.as_posix()] = copy_file(path, dst / rel, advance)
            except OSError as err:  # a full disk, a file that vanished
                raise BackupError(f"{label}: {path} -> {dst / rel}: {err.strerror or err}") from None
    return copied


def hash_tree(root: Path, progress: Progress, label: str) -> FileHashes:
    """The entries of every file under `root`, keyed by the path relative to it."""
    files = tree_files(root)
    with progress.step(label, tree_bytes(files)) as advance:
        return {
            path.relative_to(root).as_posix(): {
                "sha256": sha256_file(path, advance),
                "bytes": path.stat().st_size,
            }
            for path in files
        }


def rows_digest(blocks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for block in blocks:
        digest.update(block)
    return digest.hexdigest()


def compare_files(expected: FileHashes, actual: FileHashes, where: str) -> list[str]:
    """One line per file that is missing, unexpected, or differs in size or SHA-256."""
    differences = []
    for rel in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(rel), actual.get(rel)
        if got is None:
            differences.append(f"{where}{rel}: missing")
        elif want is None:
            differences.append(f"{where}{rel}: not in the manifest")
        elif want["bytes"] != got["bytes"]:
            differences.append(f"{where}{rel}: {got['bytes']} bytes, the manifest says {want['bytes']}")
        elif want["sha256"] != got["sha256"]:
            differences.append(f"{where}{rel}: SHA-256 differs from the manifest")
    return differences


def compare_tables(expected: TableSums, actual: TableSums, where: str) -> list[str]:
    """One line per table of `expected` that is missing or whose row count or checksum differs. A table
    the manifest could not checksum (written while the backup ran: `sha256` None) is compared by nothing."""
    differences = []
    for name, want in sorted(expected.items()):
        got = actual.get(name)
        if want["sha256"] is None:
            continue
        if got is None:
            differences.append(f"{where} table {name}: missing")
        elif got["rows"] != want["rows"]:
            differences.append(f"{where} table {name}: {got['rows']} rows, the manifest says {want['rows']}")
        elif got["sha256"] != want["sha256"]:
            differences.append(f"{where} table {name}: checksum differs from the manifest")
    return differences


def is_empty_dir(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))
