"""The recorder's disk spool: bars come back in timestamp order with duplicates collapsed, survive a new
process (a new `Spool` on the same directory), a torn last record is ignored with a warning and cut off,
what the store took is dropped, and replaying a spool into a real store twice stores each bar once."""

from __future__ import annotations

import logging
import struct
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from resources.duckdb_store import DuckDBStore
from resources.timeseries import TS_TYPE
from trading_assets import naming
from trading_assets.bars.service import BARS_SCHEMA
from trading_assets.live.spool import RECORD_BYTES, Spool, SpoolError

TABLE = naming.live_bars_table("binance", "ETH/USDT", "1m")
T0 = 1_735_689_600_000  # 2025-01-01 00:00 UTC, ms
MINUTE = 60_000


def bar(i: int, close: float | None = None) -> tuple[int, float, float, float, float, float]:
    """Bar i opens at T0 + i minutes; its prices have digits no decimal shortcut keeps."""
    c = 3000.1234567891 + i / 7 if close is None else close
    return T0 + i * MINUTE, c - 0.5, c + 1 / 3, c - 1 / 3 - 0.5, c, 0.1 + i / 11


def test_bars_come_back_in_timestamp_order_one_per_timestamp_from_a_new_process(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(TABLE, [bar(2), bar(0)])
    spool.append(TABLE, [bar(1), bar(2, close=3100.0)])  # bar 2 again: the later copy wins
    expected = [bar(0), bar(1), bar(2, close=3100.0)]
    assert spool.read(TABLE) == expected
    assert (spool.count(TABLE), spool.last_ms(TABLE)) == (3, T0 + 2 * MINUTE)
    # What a restarted process finds on disk is the same, bit for bit.
    again = Spool(tmp_path)
    assert again.read(TABLE) == expected
    assert again.count(TABLE) == 3


def test_an_empty_spool_has_no_file_and_nothing_to_read(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "not-yet")
    assert (spool.read(TABLE), spool.count(TABLE), spool.last_ms(TABLE)) == ([], 0, None)
    assert not (tmp_path / "not-yet").exists()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_torn_last_record_is_ignored_with_a_warning_and_appends_go_on(tmp_path: Path) -> None:
    Spool(tmp_path).append(TABLE, [bar(0), bar(1), bar(2)])
    path = Spool(tmp_path).path(TABLE)
    # A kill -9 in the middle of appending bar 2: only part of its record reached the file.
    path.write_bytes(path.read_bytes()[: 2 * RECORD_BYTES + 20])
    spool = Spool(tmp_path)
    warnings = _Records()
    logger = logging.getLogger("trading_assets.live.spool")
    logger.addHandler(warnings)
    try:
        assert spool.read(TABLE) == [bar(0), bar(1)]
    finally:
        logger.removeHandler(warnings)
    assert len(warnings.lines) == 1 and "torn record" in warnings.lines[0] and str(path) in warnings.lines[0]
    assert path.stat().st_size == 2 * RECORD_BYTES  # cut off: the next append starts on a boundary
    spool.append(TABLE, [bar(2), bar(3)])
    assert Spool(tmp_path).read(TABLE) == [bar(0), bar(1), bar(2), bar(3)]


def test_a_last_record_of_full_length_with_a_bad_checksum_counts_as_torn(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(TABLE, [bar(0), bar(1)])
    path = spool.path(TABLE)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    assert Spool(tmp_path).read(TABLE) == [bar(0)]


def test_a_damaged_record_before_the_last_is_an_error_naming_the_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(TABLE, [bar(0), bar(1), bar(2)])
    path = spool.path(TABLE)
    data = bytearray(path.read_bytes())
    data[RECORD_BYTES + 3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SpoolError, match=r"record 1 has a bad checksum") as err:
        Spool(tmp_path).read(TABLE)
    assert str(path) in str(err.value)


def test_drop_through_removes_what_the_store_took_and_deletes_an_empty_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(TABLE, [bar(i) for i in range(5)])
    assert spool.drop_through(TABLE, T0 + 2 * MINUTE) == 3
    assert Spool(tmp_path).read(TABLE) == [bar(3), bar(4)]
    assert spool.drop_through(TABLE, T0 + 2 * MINUTE) == 0
    assert spool.drop_through(TABLE, T0 + 4 * MINUTE) == 2
    assert not spool.path(TABLE).exists()
    assert Spool(tmp_path).count(TABLE) == 0


def test_a_drop_killed_before_its_rename_leaves_every_bar_spooled(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(TABLE, [bar(0), bar(1)])
    path = spool.path(TABLE)
    # The remainder written to `.new`, the process killed before the rename: the old file is the truth.
    path.with_name(path.name + ".new").write_bytes(path.read_bytes()[RECORD_BYTES:])
    assert Spool(tmp_path).read(TABLE) == [bar(0), bar(1)]
    assert not path.with_name(path.name + ".new").exists()


def test_tables_are_separate_and_other_files_are_left_alone(tmp_path: Path) -> None:
    other = naming.live_bars_table("binance", "BTC/USDT", "1m")
    stranger = tmp_path / f"{naming.live_bars_table('kraken', 'BTC/USD', '1m')}.bars"
    tmp_path.mkdir(exist_ok=True)
    stranger.write_bytes(b"not ours")
    spool = Spool(tmp_path)
    spool.append(TABLE, [bar(0)])
    spool.append(other, [bar(5)])
    spool.drop_through(TABLE, T0)
    assert (spool.read(TABLE), spool.read(other)) == ([], [bar(5)])
    assert stranger.read_bytes() == b"not ours"


def test_a_table_name_that_naming_refuses_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="table"):
        Spool(tmp_path).append("../escape", [bar(0)])
    assert list(tmp_path.iterdir()) == []


def test_replaying_the_spool_twice_stores_each_bar_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append(TABLE, [bar(i) for i in range(4)])
    store = DuckDBStore(path=str(tmp_path / "ts.duckdb"))

    def replay() -> None:
        rows = spool.read(TABLE)
        columns = list(zip(*rows, strict=True))
        data = {"ts": pa.array([datetime.fromtimestamp(t / 1000, UTC) for t in columns[0]], TS_TYPE)}
        for i, name in enumerate(("open", "high", "low", "close", "volume"), 1):
            data[name] = pa.array(columns[i], pa.float64())
        store.write(TABLE, pa.table(data), BARS_SCHEMA)

    # A kill between the store's write and the drop: the same bars are written again after the restart.
    replay()
    replay()
    spool.drop_through(TABLE, spool.last_ms(TABLE) or 0)
    stored = store.read(TABLE)
    assert stored.num_rows == 4
    ts_ms = [int(t.timestamp() * 1000) for t in stored.column("ts").to_pylist()]
    assert ts_ms == [T0 + i * MINUTE for i in range(4)]
    assert stored.column("close").to_pylist() == [bar(i)[4] for i in range(4)]
    assert Spool(tmp_path / "spool").count(TABLE) == 0


def test_the_record_layout_is_the_documented_one(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(TABLE, [bar(0)])
    data = spool.path(TABLE).read_bytes()
    assert len(data) == RECORD_BYTES == 52
    assert struct.unpack("<q5d", data[:48]) == bar(0)
