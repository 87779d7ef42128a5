"""Short-lived DuckDB connections to a file shared by several processes.

DuckDB lets one process at a time open a database file for writing, and runs (and, under the multiprocess
executor, each step of a run) work in processes of their own. So every access opens the file for the
duration of one operation, under an OS file lock beside it: shared for readers, exclusive for writers.
Steps that write at the same moment wait their turn instead of failing on DuckDB's own lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb


class LockTimeoutError(TimeoutError):
    """The database file stayed locked by another process for longer than the timeout."""


@contextmanager
def _file_lock(lock_path: Path, exclusive: bool, timeout_s: float) -> Iterator[None]:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = time.monotonic() + timeout_s
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(
                        f"{lock_path}: still locked by another process after {timeout_s:.0f}s"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextmanager
def connect(path: Path, *, write: bool, timeout_s: float = 300.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the DuckDB file at `path`, held under the file lock for the `with` block.

    Readers share the lock and open the file read-only; a writer holds it alone. A file that does not
    exist yet is created under the exclusive lock, so readers never race to create it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    exclusive = write or not path.exists()
    with _file_lock(path.with_name(path.name + ".lock"), exclusive, timeout_s):
        con = duckdb.connect(str(path), read_only=not exclusive)
        try:
            con.execute("SET TimeZone = 'UTC'")
            yield con
        finally:
            con.close()
