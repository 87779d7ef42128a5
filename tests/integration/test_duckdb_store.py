import multiprocessing as mp
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from resources.duckdb_store import DuckDBStore
from resources.timeseries import StoreError, TableSchema

SCHEMA = TableSchema(columns=(("close", "double"), ("volume", "double")))
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def bars(minutes: range, close: float = 1.0) -> pa.Table:
    return pa.table(
        {
            "ts": pa.array([T0 + timedelta(minutes=m) for m in minutes], pa.timestamp("us", tz="UTC")),
            "close": [close + m for m in minutes],
            "volume": [1.0] * len(minutes),
        }
    )


@pytest.fixture
def store(tmp_path) -> DuckDBStore:
    return DuckDBStore(path=str(tmp_path / "ts.duckdb"))


def test_write_then_read_round_trips_in_utc(store):
    store.write("btc", bars(range(3)), SCHEMA)
    got = store.read("btc")
    assert got.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert got.equals(bars(range(3)))


def test_writing_the_same_range_twice_leaves_one_copy(store):
    store.write("btc", bars(range(5)), SCHEMA)
    store.write("btc", bars(range(5)), SCHEMA)
    assert store.read("btc").num_rows == 5


def test_a_write_replaces_exactly_its_time_window(store):
    store.write("btc", bars(range(10)), SCHEMA)
    store.write("btc", bars(range(3, 6), close=100.0), SCHEMA)
    got = store.read("btc").column("close").to_pylist()
    assert got == [1.0, 2.0, 3.0, 103.0, 104.0, 105.0, 7.0, 8.0, 9.0, 10.0]


def test_replace_makes_the_table_hold_exactly_the_new_rows(store):
    store.write("btc", bars(range(10)), SCHEMA)
    store.replace("btc", bars(range(20, 22)), SCHEMA)
    assert store.read("btc").equals(bars(range(20, 22)))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (bars(range(3)).set_column(1, "close", pa.array([1.0, float("nan"), 2.0])), "NaN/inf at row 1"),
        (bars(range(3)).append_column("extra", pa.array([1, 2, 3])), r"unknown \['extra'\]"),
        (bars(range(3)).drop_columns(["volume"]), r"missing \['volume'\]"),
        (
            bars(range(3)).set_column(0, "ts", pa.array([datetime(2025, 1, 1)] * 3, pa.timestamp("us"))),
            "tz-aware",
        ),
        (pa.concat_tables([bars(range(3)), bars(range(1))]), "repeat a key"),
    ],
)
def test_a_failed_write_leaves_the_table_as_it_was(store, bad, message):
    store.write("btc", bars(range(10)), SCHEMA)
    before = store.read("btc")
    for method in (store.write, store.replace):
        with pytest.raises(StoreError, match=message):
            method("btc", bad, SCHEMA)
        assert store.read("btc").equals(before)


def test_hostile_table_names_are_refused(store):
    with pytest.raises(ValueError):
        store.write('btc"; DROP TABLE x; --', bars(range(1)), SCHEMA)
    with pytest.raises(ValueError):
        store.read("../etc")


def test_existing_table_with_other_columns_is_refused(store):
    store.write("btc", bars(range(1)), SCHEMA)
    other = TableSchema(columns=(("close", "double"),))
    with pytest.raises(StoreError, match="existing table has columns"):
        store.ensure_table("btc", other)


def test_read_window_columns_and_batches(store):
    store.write("btc", bars(range(100)), SCHEMA)
    got = store.read("btc", T0 + timedelta(minutes=10), T0 + timedelta(minutes=20), columns=["ts", "close"])
    assert got.column_names == ["ts", "close"]
    assert got.column("close").to_pylist() == [float(m + 1) for m in range(10, 20)]
    batches = list(store.iter_batches("btc", batch_rows=30))
    assert sum(b.num_rows for b in batches) == 100
    assert max(b.num_rows for b in batches) <= 30
    with pytest.raises(StoreError, match="does not exist"):
        store.read("eth")


def test_list_and_drop(store):
    store.write("btc", bars(range(1)), SCHEMA)
    store.write("eth", bars(range(1)), SCHEMA)
    assert store.list_tables() == ["btc", "eth"]
    store.drop("btc")
    assert store.list_tables() == ["eth"]


def _writer(path: str, table: str, rounds: int) -> None:
    store = DuckDBStore(path=path)
    for i in range(rounds):
        store.write(table, bars(range(i * 50, (i + 1) * 50)), SCHEMA)


def test_two_processes_write_at_the_same_time(tmp_path):
    # Dagster's default executor runs steps as processes; DuckDB alone would refuse the second writer.
    path = str(tmp_path / "shared.duckdb")
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(2)
    procs = [ctx.Process(target=_start_together, args=(start, path, name, 20)) for name in ("btc", "eth")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    store = DuckDBStore(path=path)
    assert store.read("btc").num_rows == store.read("eth").num_rows == 1000


def _start_together(barrier, path: str, table: str, rounds: int) -> None:
    barrier.wait()
    _writer(path, table, rounds)


def test_last_ts_is_the_latest_bar_or_none(store):
    assert store.last_ts("btc") is None  # no file yet
    store.write("eth", bars(range(2)), SCHEMA)
    assert store.last_ts("btc") is None  # no such table
    store.write("btc", bars(range(7)), SCHEMA)
    store.write("btc", bars(range(3)), SCHEMA)  # an earlier window again: the latest stays
    assert store.last_ts("btc") == T0 + timedelta(minutes=6)
