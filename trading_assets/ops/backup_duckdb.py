"""DuckDB files in a backup: the embedded catalog and time-series store, copied under the project's own
file lock (resources/duckdb_file.py: shared while the copy reads, so no writer is half-way through), with
their write-ahead log where one was left.

A table's checksum is the SHA-256 of its CSV rendering (UTC timestamps) with its rows in `ORDER BY ALL`
order, computed by DuckDB on the backup's copy and again on the restored file.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from resources import duckdb_file
from resources.migrations import DUCKDB, schema_status
from trading_assets.ops.backup_files import FileHashes, Progress, TableSums, copy_file, sha256_file

# The embedded files of settings.py, by their role in a backup.
FILES = {"catalog": "catalog.duckdb", "timeseries": "timeseries.duckdb"}
# As long as the store's own operations wait for the lock.
LOCK_TIMEOUT_S = 300.0


def companions(path: Path) -> list[Path]:
    """The database file and, if DuckDB left one, its write-ahead log."""
    wal = path.with_name(path.name + ".wal")
    return [path, wal] if wal.exists() else [path]


def copy_locked(src: Path, dest: Path, progress: Progress) -> FileHashes:
    """Copy the file (and its WAL) into the folder `dest` under the file's shared lock: writers wait."""
    with duckdb_file.file_lock(duckdb_file.lock_path(src), exclusive=False, timeout_s=LOCK_TIMEOUT_S):
        files = companions(src)
        with progress.step(f"duckdb: copying {src.name}", sum(p.stat().st_size for p in files)) as advance:
            return {p.name: copy_file(p, dest / p.name, advance) for p in files}


def restore_locked(files: list[Path], target: Path, progress: Progress) -> None:
    """Put a backup's copy of a file (and its WAL) in place at `target`, under the file's exclusive lock;
    a WAL of the file it replaces goes."""
    with duckdb_file.file_lock(duckdb_file.lock_path(target), exclusive=True, timeout_s=LOCK_TIMEOUT_S):
        target.with_name(target.name + ".wal").unlink(missing_ok=True)
        with progress.step(
            f"duckdb: restoring {target.name}", sum(p.stat().st_size for p in files)
        ) as advance:
            for src in files:  # named as the files they were copied from: catalog.duckdb(.wal)
                copy_file(src, target.parent / src.name, advance)


@contextmanager
def read_only(path: Path, locked: bool) -> Iterator[duckdb.DuckDBPyConnection]:
    """The file opened read-only with timestamps in UTC; `locked` takes the project's shared lock (a live
    file), a backup's own copy needs none (and gets no lock file beside it)."""
    with contextlib.ExitStack() as stack:
        if locked:
            stack.enter_context(
                duckdb_file.file_lock(duckdb_file.lock_path(path), exclusive=False, timeout_s=LOCK_TIMEOUT_S)
            )
        con = duckdb.connect(str(path), read_only=True)
        stack.callback(con.close)
        con.execute("SET TimeZone = 'UTC'")
        yield con


def table_sums(con: duckdb.DuckDBPyConnection) -> TableSums:
    """Rows and checksum of every table of the open DuckDB file."""
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "ORDER BY 1, 2"
    ).fetchall()
    sums: TableSums = {}
    with tempfile.TemporaryDirectory(prefix="duckdb-sums-") as scratch:
        out = Path(scratch, "rows.csv")
        for schema, table in tables:
            name = f"{_quote(schema)}.{_quote(table)}"
            rows = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
            con.execute(f"COPY (SELECT * FROM {name} ORDER BY ALL) TO '{out}' (HEADER false)")
            sums[f"{schema}.{table}"] = {"rows": rows, "sha256": sha256_file(out)}
    return sums


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def catalog_versions(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """The migrations applied to the open DuckDB catalog."""
    return schema_status(con, DUCKDB).applied
