"""Short-lived DuckDB connections to a file shared by several processes.

DuckDB lets one process at a time open a database file for writing, and runs (and, under the multiprocess
executor, each step of a run) work in processes of their own. So every access opens the file for the
duration of one operation, under an OS file lock beside it: shared for readers, exclusive for writers.
Steps that write at the same moment wait their turn instead of failing on DuckDB's own lock.

A small read (`small=True`: the catalog's) need not start a DuckDB database of its own: starting one
costs about 15 ms (even in memory), more than most catalog reads take. Each process keeps one in-memory
DuckDB, and such a read attaches the file to it read-only under a name of its own for the `with` block
(about 2 ms), then detaches it. Attaching one file several times at once is allowed, so readers in threads
of one process do not wait for each other. Large reads (the store's) open the file as before: they set
memory limits and spill folders, which are settings of a whole database.
"""

from __future__ import annotations

import atexit
import fcntl
import itertools
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb


class LockTimeoutError(TimeoutError):
    """The database file stayed locked by another process for longer than the timeout."""


def lock_path(path: Path) -> Path:
    """The lock file beside the database file `path`, which every process of the project takes."""
    return path.with_name(path.name + ".lock")


@contextmanager
def file_lock(lock_file: Path, exclusive: bool, timeout_s: float) -> Iterator[None]:
    """Hold the lock file `lock_file`: shared by readers, exclusive for a writer (and a backup's restore);
    LockTimeoutError after `timeout_s`."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
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
                        f"{lock_file}: still locked by another process after {timeout_s:.0f}s"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# The process's in-memory DuckDB that readers attach files to, with the pid that made it: a forked child
# makes its own rather than share its parent's.
_readers: tuple[int, duckdb.DuckDBPyConnection] | None = None
_readers_lock = threading.Lock()
_aliases = itertools.count()


def _reader_database() -> duckdb.DuckDBPyConnection:
    global _readers
    with _readers_lock:
        if _readers is None or _readers[0] != os.getpid():
            spill = Path(tempfile.gettempdir()) / f"duckdb-readers-{os.getpid()}"
            _readers = (os.getpid(), duckdb.connect(":memory:", config={"temp_directory": str(spill)}))
            # Closed before the interpreter tears DuckDB's module down (nanobind reports leaks otherwise).
            atexit.register(_readers[1].close)
        return _readers[1]


@contextmanager
def _attached(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor of the process's reader database whose default catalog is `path`, attached read-only."""
    con = _reader_database().cursor()
    alias = f"file_{next(_aliases)}"
    try:
        quoted = str(path).replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS {alias} (READ_ONLY)")
        try:
            con.execute(f"USE {alias}")
            con.execute("SET TimeZone = 'UTC'")
            yield con
        finally:
            con.execute("USE memory")
            con.execute(f"DETACH {alias}")
    finally:
        con.close()


@contextmanager
def connect(
    path: Path, *, write: bool, timeout_s: float = 300.0, small: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the DuckDB file at `path`, held under the file lock for the `with` block.

    Readers share the lock and open the file read-only; a writer holds it alone. A file that does not
    exist yet is created under the exclusive lock, so readers never race to create it. A `small` read
    attaches the file to the process's reader database; its SQL must not change database-wide settings
    or read `information_schema` unfiltered (other readers' attachments are listed there too).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    exclusive = write or not path.exists()
    with file_lock(lock_path(path), exclusive, timeout_s):
        if small and not exclusive:
            with _attached(path) as con:
                yield con
            return
        con = duckdb.connect(str(path), read_only=not exclusive)
        try:
            con.execute("SET TimeZone = 'UTC'")
            yield con
        finally:
            con.close()
