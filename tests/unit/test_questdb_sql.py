"""The SQL text QuestDBStore sends: exact statements, and no way for a hostile name to reach them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from resources.questdb_store import (
    create_table_sql,
    drop_table_sql,
    insert_select_sql,
    rename_table_sql,
    select_sql,
    sql_timestamp,
    table_columns_sql,
    wal_state_sql,
)
from resources.timeseries import StoreError, TableSchema
from trading_assets.naming import InvalidNameError

BARS = TableSchema(columns=(("open", "double"), ("volume", "long")))
TICKS = TableSchema(
    columns=(
        ("venue", "symbol"),
        ("price", "double"),
        ("note", "string"),
        ("ok", "boolean"),
        ("at", "timestamp"),
    ),
    dedup_keys=("venue",),
    partition_by="DAY",
)
JAN = datetime(2024, 1, 1, tzinfo=UTC)
FEB = datetime(2024, 2, 1, tzinfo=UTC)


def test_create_table_has_designated_ts_partitioning_wal_and_dedup_on_ts():
    assert create_table_sql("btc", BARS) == (
        'CREATE TABLE IF NOT EXISTS "btc" ("ts" TIMESTAMP, "open" DOUBLE, "volume" LONG) '
        'TIMESTAMP("ts") PARTITION BY MONTH WAL DEDUP UPSERT KEYS("ts");'
    )


def test_create_table_maps_every_column_type_and_adds_the_dedup_keys():
    assert create_table_sql("btc_ticks", TICKS) == (
        'CREATE TABLE IF NOT EXISTS "btc_ticks" ("ts" TIMESTAMP, "venue" SYMBOL, "price" DOUBLE, '
        '"note" VARCHAR, "ok" BOOLEAN, "at" TIMESTAMP) '
        'TIMESTAMP("ts") PARTITION BY DAY WAL DEDUP UPSERT KEYS("ts", "venue");'
    )


def test_create_table_accepts_the_staging_name():
    assert create_table_sql("btc__staging", BARS).startswith('CREATE TABLE IF NOT EXISTS "btc__staging" (')


def test_select_without_bounds_orders_by_ts():
    assert select_sql("btc", ["ts", "open"]) == 'SELECT "ts", "open" FROM "btc" ORDER BY "ts";'


def test_select_with_bounds_and_page():
    assert select_sql("btc", ["ts", "volume"], JAN, FEB, limit=(100, 200)) == (
        'SELECT "ts", "volume" FROM "btc" '
        "WHERE \"ts\" >= '2024-01-01T00:00:00.000000Z' AND \"ts\" < '2024-02-01T00:00:00.000000Z' "
        'ORDER BY "ts" LIMIT 100, 200;'
    )


def test_select_with_only_an_end_bound():
    assert select_sql("btc", ["ts"], end=FEB) == (
        'SELECT "ts" FROM "btc" WHERE "ts" < \'2024-02-01T00:00:00.000000Z\' ORDER BY "ts";'
    )


def test_select_casts_string_columns_to_string_for_the_parquet_export():
    assert select_sql("btc", ["ts", "note"], as_string=["note"]) == (
        'SELECT "ts", "note"::STRING "note" FROM "btc" ORDER BY "ts";'
    )


def test_insert_select_copies_the_named_columns_from_staging():
    assert insert_select_sql("btc", "btc__staging", ["ts", "close"]) == (
        'INSERT INTO "btc" ("ts", "close") SELECT "ts", "close" FROM "btc__staging";'
    )


def test_timestamps_are_written_in_utc_with_microseconds():
    berlin = timezone(timedelta(hours=2))
    assert sql_timestamp(datetime(2024, 6, 1, 2, 30, 0, 7, tzinfo=berlin)) == "'2024-06-01T00:30:00.000007Z'"


def test_naive_timestamp_bounds_are_refused():
    with pytest.raises(StoreError, match="naive"):
        select_sql("btc", ["ts"], start=datetime(2024, 1, 1))


def test_drop_rename_and_metadata_queries():
    assert drop_table_sql("btc") == 'DROP TABLE IF EXISTS "btc";'
    assert drop_table_sql("btc__staging") == 'DROP TABLE IF EXISTS "btc__staging";'
    assert rename_table_sql("btc__staging", "btc") == 'RENAME TABLE "btc__staging" TO "btc";'
    assert table_columns_sql("btc") == 'SELECT "column", "type", "upsertKey" FROM table_columns(\'btc\');'
    assert wal_state_sql("btc") == (
        "SELECT suspended, writerTxn, sequencerTxn FROM wal_tables() WHERE name = 'btc';"
    )


HOSTILE_NAMES = [
    "x; DROP TABLE y",
    'btc" (',
    "btc'); DROP TABLE y; --",
    "BTC",
    "select",
    "btc__x",
    "x; DROP__staging",
    "btc__staging__staging",
    "",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize(
    "build",
    [
        lambda name: create_table_sql(name, BARS),
        lambda name: select_sql(name, ["ts"]),
        drop_table_sql,
        lambda name: rename_table_sql("btc__staging", name),
        lambda name: rename_table_sql(name, "btc"),
        lambda name: insert_select_sql(name, "btc__staging", ["ts"]),
        lambda name: insert_select_sql("btc", name, ["ts"]),
        table_columns_sql,
        wal_state_sql,
    ],
    ids=[
        "create",
        "select",
        "drop",
        "rename-to",
        "rename-from",
        "insert-to",
        "insert-from",
        "table-columns",
        "wal-state",
    ],
)
def test_hostile_table_names_are_refused(build, name):
    with pytest.raises(InvalidNameError):
        build(name)


@pytest.mark.parametrize("column", ['open"', "open, secret", "Open", "from", "ts; DROP TABLE y"])
def test_hostile_column_names_are_refused(column):
    with pytest.raises(InvalidNameError):
        select_sql("btc", ["ts", column])
