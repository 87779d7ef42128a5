"""QuestDBStore against a real QuestDB: set QUESTDB_ADDR=host:http_port (and QUESTDB_USER/QUESTDB_PASSWORD
for a server with auth) to run it, e.g. against `docker run -p 9000:9000 questdb/questdb`.

Each test works on a table of its own, with a unique name, and drops it afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from resources.questdb_store import QuestDBStore
from resources.timeseries import TS_TYPE, StoreError, TableSchema

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not os.environ.get("QUESTDB_ADDR"), reason="QUESTDB_ADDR not set: live QuestDB suite skipped"
    ),
]

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
T0 = datetime(2024, 1, 1, tzinfo=UTC)
# Bounded wait for what QuestDB applies asynchronously (WAL), so a broken server fails instead of hanging.
SETTLE_S = 30.0


@pytest.fixture
def store() -> QuestDBStore:
    host, port = os.environ["QUESTDB_ADDR"].rsplit(":", 1)
    return QuestDBStore(
        host=host,
        http_port=int(port),
        username=os.environ.get("QUESTDB_USER"),
        password=os.environ.get("QUESTDB_PASSWORD"),
        batch_rows=3,
    )


@pytest.fixture
def table(store: QuestDBStore) -> Iterator[str]:
    name = f"live_{uuid.uuid4().hex[:12]}"
    yield name
    store.drop(name)


def bars(n: int, start: int = 0, close_offset: float = 0.0) -> pa.Table:
    """n one-minute BTC bars from T0 + start minutes, with a null in every nullable type on row 1."""
    minutes = range(start, start + n)
    return pa.table(
        {
            "ts": pa.array([T0 + timedelta(minutes=m) for m in minutes], TS_TYPE),
            "sym": pa.array(["BTC"] * n),
            "close": pa.array([None if m == 1 else 100.5 + m + close_offset for m in minutes]),
            "volume": pa.array([None if m == 1 else 10 + m for m in minutes], pa.int64()),
            "note": pa.array([None if m == 1 else f"bar {m}" if m else "" for m in minutes]),
            "live": pa.array([m % 2 == 0 for m in minutes]),
            "opened": pa.array([T0 + timedelta(minutes=m, microseconds=7) for m in minutes], TS_TYPE),
        }
    )


def settled_read(store: QuestDBStore, name: str, rows: int) -> pa.Table:
    """The table once it holds `rows` rows (or whatever it holds after SETTLE_S)."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        table = store.read(name)
        if table.num_rows == rows or time.monotonic() >= deadline:
            return table
        time.sleep(0.1)


def test_write_then_read_round_trips_every_type_and_null(store, table):
    data = bars(5)
    store.ensure_table(table, SCHEMA)

    assert store.write(table, data, SCHEMA) == 5

    assert settled_read(store, table, 5).to_pylist() == data.to_pylist()


def test_writing_the_same_range_twice_keeps_one_copy_with_the_new_values(store, table):
    store.write(table, bars(5), SCHEMA)
    store.write(table, bars(5, close_offset=1000.0), SCHEMA)

    stored = settled_read(store, table, 5)
    time.sleep(1.0)  # a duplicate applied late would show up now
    assert store.read(table).to_pylist() == stored.to_pylist() == bars(5, close_offset=1000.0).to_pylist()


def test_read_bounds_are_half_open_and_columns_are_selected(store, table):
    store.write(table, bars(5), SCHEMA)
    settled_read(store, table, 5)

    window = store.read(
        table, start=T0 + timedelta(minutes=2), end=T0 + timedelta(minutes=4), columns=["close"]
    )

    assert window.to_pydict() == {"close": [102.5, 103.5]}


def test_iter_batches_streams_the_same_rows_in_bounded_batches(store, table):
    store.write(table, bars(7), SCHEMA)
    whole = settled_read(store, table, 7)

    batches = list(store.iter_batches(table, batch_rows=3))

    assert [b.num_rows for b in batches] == [3, 3, 1]
    assert pa.Table.from_batches(batches).to_pylist() == whole.to_pylist()


def test_replace_leaves_exactly_the_new_rows(store, table):
    store.write(table, bars(5), SCHEMA)
    settled_read(store, table, 5)

    assert store.replace(table, bars(2, start=10), SCHEMA) == 2

    assert settled_read(store, table, 2).to_pylist() == bars(2, start=10).to_pylist()
    assert table in store.list_tables()
    assert f"{table}__staging" not in store.list_tables()


def test_ensure_table_refuses_an_existing_table_with_other_columns(store, table):
    store.ensure_table(table, SCHEMA)

    with pytest.raises(StoreError, match="table exists with columns"):
        store.ensure_table(table, TableSchema(columns=(("close", "double"),)))


def test_drop_removes_the_table_and_is_idempotent(store, table):
    store.ensure_table(table, SCHEMA)
    assert table in store.list_tables()

    store.drop(table)
    store.drop(table)

    assert table not in store.list_tables()
