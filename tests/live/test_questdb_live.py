"""QuestDBStore against a real QuestDB server (the jar `scripts/services.sh` runs; `make test` starts it).

Each test works on a table of its own, with a unique name, and drops it afterwards. Tests that stop or
reconfigure a server start one of their own (`own_server`).
"""

from __future__ import annotations

import signal
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from resources.questdb_store import QuestDBStore
from resources.timeseries import TS_TYPE, StoreError, TableSchema
from trading_assets.naming import InvalidNameError

pytestmark = pytest.mark.live

SCHEMA = TableSchema(
    columns=(
        ("sym", "symbol"),
        ("close", "double"),
        ("volume", "long"),
        ("note", "string"),
        ("live", "boolean"),
        ("opened", "timestamp"),
    ),
    dedup_keys=("sym",),
    partition_by="DAY",
)
PRICES = TableSchema(columns=(("close", "double"),), partition_by="DAY")
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def bars(n: int, start: int = 0, close_offset: float = 0.0, **overrides: pa.Array) -> pa.Table:
    """n one-minute BTC bars from T0 + start minutes, with a null in every nullable type on row 1."""
    minutes = range(start, start + n)
    columns = {
        "ts": pa.array([T0 + timedelta(minutes=m) for m in minutes], TS_TYPE),
        "sym": pa.array(["BTC"] * n),
        "close": pa.array([None if m == 1 else 100.5 + m + close_offset for m in minutes]),
        "volume": pa.array([None if m == 1 else 10 + m for m in minutes], pa.int64()),
        "note": pa.array([None if m == 1 else f'bar "{m}", é' if m else "" for m in minutes]),
        "live": pa.array([m % 2 == 0 for m in minutes]),
        "opened": pa.array([T0 + timedelta(minutes=m, microseconds=7) for m in minutes], TS_TYPE),
    }
    return pa.table(columns | overrides)


def prices(n: int, seed: int = 0, start: int = 0) -> pa.Table:
    ts = (np.arange(start, start + n, dtype=np.int64) * 60_000_000 + 1_704_067_200_000_000).astype("M8[us]")
    close = np.random.default_rng(seed).standard_normal(n) * 1e3
    return pa.table({"ts": pa.array(ts, TS_TYPE), "close": close})


def committed_txns(store: QuestDBStore, name: str) -> int:
    return store._rows(f"SELECT sequencerTxn FROM wal_tables() WHERE name = '{name}';")[0][0]


# --- DDL, writes, reads ---


def test_tables_are_created_with_designated_ts_partitioning_wal_and_dedup_keys(store, table):
    store.ensure_table(table, SCHEMA)

    columns = "designatedTimestamp, partitionBy, walEnabled, dedup"
    info = store._rows(f"SELECT {columns} FROM tables() WHERE table_name = '{table}';")
    assert info == [["ts", "DAY", True, True]]
    assert store._rows(f'SELECT "column", "type", "upsertKey" FROM table_columns(\'{table}\');') == [
        ["ts", "TIMESTAMP", True],
        ["sym", "SYMBOL", True],
        ["close", "DOUBLE", False],
        ["volume", "LONG", False],
        ["note", "VARCHAR", False],
        ["live", "BOOLEAN", False],
        ["opened", "TIMESTAMP", False],
    ]


def test_write_then_read_round_trips_every_type_and_null(store, table):
    data = bars(5)

    assert store.write(table, data, SCHEMA) == 5

    # The write returned after QuestDB applied it: the rows are there at once.
    read = store.read(table)
    assert read.schema == data.schema
    assert read.to_pylist() == data.to_pylist()


def test_doubles_are_stored_bit_for_bit(store, table):
    bits = [0x0000000000000001, 0x8000000000000000, 0x7FEFFFFFFFFFFFFF, 0x3FB999999999999A]
    special = [struct.unpack("<d", struct.pack("<Q", b))[0] for b in bits]  # subnormal, -0.0, max, 0.1
    scaled = np.random.default_rng(1).standard_normal(996) * 10.0 ** np.linspace(-8, 8, 996)
    values = np.concatenate([special, scaled])
    data = pa.table({"ts": prices(1000)["ts"], "close": values})

    store.write(table, data, PRICES)

    stored = store.read(table)["close"].to_numpy()
    assert stored.view(np.uint64).tolist() == values.view(np.uint64).tolist()


def test_three_identical_rematerialisations_leave_no_duplicate(store, table):
    for _ in range(3):
        store.write(table, bars(50), SCHEMA)

    assert store._rows(f'SELECT count() FROM "{table}";') == [[50]]
    duplicates = store._rows(f'SELECT * FROM (SELECT ts, sym, count() n FROM "{table}") WHERE n > 1;')
    assert duplicates == []


def test_writing_the_same_range_again_keeps_one_copy_with_the_new_values(store, table):
    store.write(table, bars(5), SCHEMA)
    store.write(table, bars(5, close_offset=1000.0), SCHEMA)

    assert store.read(table).to_pylist() == bars(5, close_offset=1000.0).to_pylist()


def test_a_write_larger_than_one_request_is_one_transaction(store, table):
    store.write(table, prices(10), PRICES)
    before = committed_txns(store, table)
    small = store.model_copy(update={"max_request_bytes": 2_000})

    assert small.write(table, prices(5_000, seed=2), PRICES) == 5_000

    assert committed_txns(store, table) == before + 1
    assert store.read(table).equals(prices(5_000, seed=2))
    assert f"{table}__staging" not in store._rows("SELECT table_name FROM tables();")


def test_many_small_writes_in_a_row_are_no_warning(store, table):
    # The client advises reusing senders after a burst of connections; the store opens one per write on
    # purpose, and warnings are errors here.
    for minute in range(40):
        store.write(table, prices(1, start=minute), PRICES)

    assert store.read(table).num_rows == 40


def test_read_bounds_are_half_open_and_columns_are_selected(store, table):
    store.write(table, bars(5), SCHEMA)

    window = store.read(
        table, start=T0 + timedelta(minutes=2), end=T0 + timedelta(minutes=4), columns=["close"]
    )

    assert window.to_pydict() == {"close": [102.5, 103.5]}


def test_iter_batches_streams_the_same_rows_in_bounded_batches(store, table):
    store.write(table, bars(7), SCHEMA)

    batches = list(store.iter_batches(table, batch_rows=3, columns=["note", "ts"]))

    assert [b.num_rows for b in batches] == [3, 3, 1]
    assert pa.Table.from_batches(batches).to_pylist() == bars(7).select(["note", "ts"]).to_pylist()


def test_an_empty_window_reads_as_an_empty_table_of_the_schema(store, table):
    store.write(table, bars(3), SCHEMA)

    empty = store.read(table, start=T0 + timedelta(days=1))

    assert empty.num_rows == 0
    assert empty.schema == bars(1).schema


def test_unknown_tables_and_columns_are_clear_errors(store, table):
    store.write(table, bars(1), SCHEMA)

    with pytest.raises(StoreError, match="no columns \\['nope'\\]"):
        store.read(table, columns=["nope"])
    with pytest.raises(StoreError, match=r"table does not exist \[table=live_\w+x\]"):
        store.read(f"{table}x")


def test_replace_leaves_exactly_the_new_rows(store, table):
    store.write(table, bars(5), SCHEMA)

    assert store.replace(table, bars(2, start=10), SCHEMA) == 2

    assert store.read(table).to_pylist() == bars(2, start=10).to_pylist()
    assert table in store.list_tables()
    assert f"{table}__staging" not in store._rows("SELECT table_name FROM tables();")


@pytest.mark.parametrize(
    ("name", "data", "error"),
    [
        ("t", bars(2, close=pa.array([1.0, float("nan")])), StoreError),
        ("t", bars(2).append_column("extra", pa.array([1, 2])), StoreError),
        ("t", bars(2, ts=pa.array([0, 1], pa.timestamp("us"))), StoreError),
        ("t", bars(2, live=pa.array([True, None])), StoreError),
        ("x; DROP TABLE y", bars(2), InvalidNameError),
        ('bars" (', bars(2), InvalidNameError),
    ],
    ids=["nan", "unknown-column", "naive-ts", "null-boolean", "sql-in-name", "quote-in-name"],
)
@pytest.mark.parametrize("method", ["write", "replace"])
def test_invalid_input_is_refused_and_the_stored_table_is_untouched(store, table, method, name, data, error):
    store.write(table, bars(3), SCHEMA)
    target = table if name == "t" else name

    with pytest.raises(error):
        getattr(store, method)(target, data, SCHEMA)

    assert store.read(table).to_pylist() == bars(3).to_pylist()
    assert f"{table}__staging" not in store._rows("SELECT table_name FROM tables();")


def test_ensure_table_refuses_an_existing_table_with_other_columns(store, table):
    store.ensure_table(table, SCHEMA)

    with pytest.raises(StoreError, match="table exists with columns"):
        store.ensure_table(table, TableSchema(columns=(("close", "double"),)))


def test_list_tables_leaves_out_staging_and_system_tables(store, table):
    store.write(table, bars(1), SCHEMA)
    store._exec(f'CREATE TABLE "{table}__staging" (ts TIMESTAMP) TIMESTAMP(ts) PARTITION BY DAY WAL;')
    try:
        listed = store.list_tables()
    finally:
        store._exec(f'DROP TABLE "{table}__staging";')

    assert table in listed
    assert not [name for name in listed if "__" in name or name.startswith("sys.")]


def test_drop_removes_the_table_and_is_idempotent(store, table):
    store.ensure_table(table, SCHEMA)
    assert table in store.list_tables()

    store.drop(table)
    store.drop(table)

    assert table not in store.list_tables()


# --- Faults, on servers of the tests' own ---


def kill_after_requests(monkeypatch, server, requests: int, then=None) -> None:
    """Make the store's send stop the server (SIGKILL) after `requests` ILP requests went through."""
    send = QuestDBStore._send

    def send_then_kill(self, sender, name, parts, schema):
        send(self, sender, name, parts[:requests], schema)
        server.stop(signal.SIGKILL)
        if then is not None:
            then()
        send(self, sender, name, parts[requests:], schema)

    monkeypatch.setattr(QuestDBStore, "_send", send_then_kill)


@pytest.mark.parametrize("method", ["write", "replace"])
def test_a_server_killed_mid_write_gives_a_clear_error_after_a_bounded_retry_and_no_half_window(
    own_server, monkeypatch, method
):
    server = own_server()
    store = server.store(max_request_bytes=2_000, retry_timeout_s=2.0)
    store.write("bars", prices(100), PRICES)
    kill_after_requests(monkeypatch, server, requests=2)

    began = time.monotonic()
    with pytest.raises(StoreError, match=r"bars__staging: ILP write failed .* Connection refused"):
        getattr(store, method)("bars", prices(5_000, seed=3), PRICES)
    assert 2.0 <= time.monotonic() - began < 30.0

    monkeypatch.undo()
    server.start()
    assert store.read("bars").equals(prices(100))
    # The next write finds the stale staging table and starts afresh.
    assert store.write("bars", prices(5_000, seed=3), PRICES) == 5_000
    assert store.read("bars").num_rows == 5_000


def test_a_server_back_within_the_retry_window_completes_the_write(own_server, monkeypatch):
    server = own_server()
    store = server.store(max_request_bytes=2_000, retry_timeout_s=60.0)
    kill_after_requests(monkeypatch, server, requests=1, then=server.start)

    assert store.write("bars", prices(5_000, seed=4), PRICES) == 5_000

    monkeypatch.undo()
    assert store.read("bars").equals(prices(5_000, seed=4))


def test_sql_to_a_stopped_server_is_retried_for_retry_timeout_then_fails(own_server):
    server = own_server()
    store = server.store(retry_timeout_s=1.0)
    server.stop()

    began = time.monotonic()
    with pytest.raises(StoreError, match="is unreachable"):
        store.list_tables()
    assert 0.9 <= time.monotonic() - began < 10.0


def test_reads_turned_away_at_the_export_connection_limit_are_asked_again(own_server):
    # One export at a time: the others get 429 before anything runs, and are sent again after a pause.
    store = own_server(QDB_HTTP_EXPORT_CONNECTION_LIMIT="1", QDB_HTTP_WORKER_COUNT="2").store(
        batch_rows=50, retry_timeout_s=30.0
    )
    store.write("bars", prices(2_000, seed=5), PRICES)

    with ThreadPoolExecutor(max_workers=6) as pool:
        reads = list(pool.map(lambda _: store.read("bars"), range(12)))

    assert all(read.equals(prices(2_000, seed=5)) for read in reads)


def test_a_write_to_a_table_questdb_suspended_fails_instead_of_losing_rows(own_server):
    store = own_server(QDB_DEV_MODE_ENABLED="true").store()
    store.write("bars", prices(10), PRICES)
    store._exec('ALTER TABLE "bars" SUSPEND WAL;')

    with pytest.raises(StoreError, match="suspended"):
        store.write("bars", prices(10, start=10), PRICES)


def test_basic_auth_goes_with_sql_and_ilp(own_server):
    server = own_server(QDB_HTTP_USER="trader", QDB_HTTP_PASSWORD="s;cr=t")
    store = server.store(username="trader", password="s;cr=t")

    store.write("bars", prices(10), PRICES)

    assert store.read("bars").equals(prices(10))
    with pytest.raises(StoreError, match=r"401|nauthori"):
        server.store().list_tables()
    with pytest.raises(StoreError):
        server.store(username="trader", password="wrong").write("bars", prices(10), PRICES)


def test_last_ts_is_the_latest_bar_or_none(store, table):
    assert store.last_ts(table) is None
    store.write(table, bars(7), SCHEMA)
    store.write(table, bars(3), SCHEMA)  # an earlier window again: the latest stays
    assert store.last_ts(table) == T0 + timedelta(minutes=6)


def test_a_row_whose_every_value_is_null_is_stored_and_reads_back_null(store, table):
    # An indicator set's first bar: every column still in its warm-up.
    schema = TableSchema(columns=(("a", "double"), ("b", "double")))
    ts = pa.array([T0, T0 + timedelta(minutes=1)], TS_TYPE)
    data = pa.table({"ts": ts, "a": pa.array([None, 1.5]), "b": pa.array([None, None], pa.float64())})
    store.write(table, data, schema)
    assert store.read(table).to_pylist() == data.to_pylist()
