"""duckdb_file: small reads attach the file to the process's reader database, see every committed write,
and leave nothing attached behind, even when the read fails."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pytest

from resources import duckdb_file


def _attached_names() -> set[str]:
    rows = duckdb_file._reader_database().execute("SELECT database_name FROM duckdb_databases()").fetchall()
    return {r[0] for r in rows if not r[0].startswith(("system", "temp", "memory"))}


def _write(path: Path, value: int) -> None:
    with duckdb_file.connect(path, write=True) as con:
        con.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
        con.execute("INSERT INTO t VALUES (?)", [value])


def _read(path: Path) -> list[int]:
    with duckdb_file.connect(path, write=False, small=True) as con:
        return [r[0] for r in con.execute("SELECT v FROM t ORDER BY v").fetchall()]


def test_a_small_read_sees_each_committed_write_and_detaches(tmp_path: Path) -> None:
    path = tmp_path / "c.duckdb"
    _write(path, 1)
    assert _read(path) == [1]
    _write(path, 2)  # the writer opens the file for itself: the reader let go of it
    assert _read(path) == [1, 2]
    assert _attached_names() == set()


def test_a_failed_small_read_leaves_nothing_attached(tmp_path: Path) -> None:
    path = tmp_path / "c.duckdb"
    _write(path, 1)
    with pytest.raises(duckdb.CatalogException), duckdb_file.connect(path, write=False, small=True) as con:
        con.execute("SELECT * FROM missing")
    assert _attached_names() == set()
    _write(path, 2)
    assert _read(path) == [1, 2]


def test_small_reads_in_threads_of_one_process_run_side_by_side(tmp_path: Path) -> None:
    path = tmp_path / "c.duckdb"
    _write(path, 7)
    inside = threading.Barrier(4, timeout=10)
    seen: list[list[int]] = []

    def reader() -> None:
        with duckdb_file.connect(path, write=False, small=True) as con:
            inside.wait()  # all four hold the file attached at once
            seen.append([r[0] for r in con.execute("SELECT v FROM t").fetchall()])

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [[7]] * 4
    assert _attached_names() == set()


def test_a_small_read_of_a_file_not_yet_made_creates_it_under_the_writers_lock(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    with duckdb_file.connect(path, write=False, small=True) as con:
        assert con.execute("SELECT 42").fetchone() == (42,)
    assert path.exists()
