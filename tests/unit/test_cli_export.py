"""`trading-assets export` and `catalog` against a real DuckDB store and catalog in tmp_path."""

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from resources.duckdb_store import DuckDBStore
from resources.timeseries import TableSchema
from trading_assets import cli
from trading_assets.compute.demo_data import generate_bars, write_export

SCHEMA = TableSchema(columns=(("close", "double"), ("volume", "double"), ("side", "symbol")))
T0 = datetime(2025, 1, 1, tzinfo=UTC)
ROWS = 500


@pytest.fixture
def store(data_dir) -> DuckDBStore:
    store = DuckDBStore(path=str(data_dir / "timeseries.duckdb"))
    minutes = range(ROWS)
    store.write(
        "btc",
        pa.table(
            {
                "ts": pa.array([T0 + timedelta(minutes=m) for m in minutes], pa.timestamp("us", tz="UTC")),
                "close": [100.0 + m / 8 for m in minutes],
                "volume": [None if m % 7 == 0 else float(m) for m in minutes],
                "side": ["buy" if m % 2 else "sell" for m in minutes],
            }
        ),
        SCHEMA,
    )
    return store


WINDOW = ["--start", "2025-01-01T01:00Z", "--end", "2025-01-01T03:00+00:00"]


def test_parquet_export_of_a_window_and_columns_equals_the_stored_rows(store, tmp_path, capsys):
    out = tmp_path / "w.parquet"
    args = ["export", "btc", *WINDOW, "--columns", "close,side", "--out", str(out), "--batch-rows", "7"]
    assert cli.main(args) == 0
    want = store.read("btc", T0 + timedelta(hours=1), T0 + timedelta(hours=3), ["ts", "close", "side"])
    assert want.num_rows == 120
    assert pq.read_table(out).equals(want)
    assert f"btc: 120 rows -> {out}" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_csv_export_of_the_whole_table_to_the_default_file(store, tmp_path):
    assert cli.main(["export", "btc", "--format", "csv", "--batch-rows", "64"]) == 0
    got = pcsv.read_csv(tmp_path / "btc.csv")
    want = store.read("btc")
    assert got.column_names == want.column_names
    assert got.num_rows == ROWS
    assert got.column("ts").cast(want.schema.field("ts").type).equals(want.column("ts"))
    assert got.column("close").equals(want.column("close"))
    assert got.column("volume").to_pylist() == want.column("volume").to_pylist()  # nulls stay empty
    assert got.column("side").to_pylist() == want.column("side").to_pylist()


def test_csv_to_stdout_and_an_empty_window_gives_the_header(store, capsysbinary):
    assert cli.main(["export", "btc", "--format", "csv", "--out", "-", "--start", "2025-01-01T00:02Z"]) == 0
    lines = capsysbinary.readouterr().out.decode().splitlines()
    assert lines[0] == '"ts","close","volume","side"'
    assert lines[1].startswith("2025-01-01 00:02:00")
    assert len(lines) == ROWS - 2 + 1
    assert cli.main(["export", "btc", "--format", "csv", "--out", "-", "--start", "2030-01-01"]) == 0
    assert capsysbinary.readouterr().out == b'"ts","close","volume","side"\n'


def test_a_date_alone_is_midnight_utc(store, tmp_path):
    assert cli.main(["export", "btc", "--end", "2025-01-01", "--out", str(tmp_path / "a.parquet")]) == 0
    assert pq.read_table(tmp_path / "a.parquet").num_rows == 0
    assert cli.main(["export", "btc", "--start", "2025-01-01T06:00+05:00", "--out", "b.parquet"]) == 0
    assert pq.read_table(tmp_path / "b.parquet").num_rows == ROWS - 60  # 06:00+05:00 is 01:00 UTC


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["btc", "--columns", "close,nope"], "btc: unknown columns ['nope']"),
        (["btc; drop table btc"], "table name 'btc; drop table btc' is not a valid name"),
        (["../etc/passwd"], "is not a valid name"),
        (["select"], "reserved SQL word"),
        (["eth"], "table 'eth' does not exist"),
        (["btc", "--start", "2025-01-01T01:00"], "has no time zone; add 'Z' for UTC"),
        (["btc", "--start", "yesterday"], "is not an ISO 8601 date or timestamp"),
        (["btc", "--start", "2025-01-02", "--end", "2025-01-01"], "is not before --end"),
        (["btc", "--out", "-"], "needs --format csv"),
    ],
)
def test_refusals_exit_2_with_the_reason_and_write_nothing(store, tmp_path, capsys, args, message):
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli.main(["export", *args]) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_failure_while_writing_leaves_no_partial_file(store, tmp_path, monkeypatch, capsys):
    out = tmp_path / "btc.parquet"
    out.write_bytes(b"an older export")
    real = pq.ParquetWriter.write_batch
    calls = []

    def failing(self, batch, *a, **kw):
        calls.append(batch.num_rows)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(self, batch, *a, **kw)

    monkeypatch.setattr(pq.ParquetWriter, "write_batch", failing)
    assert cli.main(["export", "btc", "--batch-rows", "100"]) == 1
    assert "disk full (no file written)" in capsys.readouterr().err
    assert out.read_bytes() == b"an older export"  # the old file is untouched, no temp file is left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["btc.parquet", "data"]


def test_catalog_lists_an_ingested_dataset(data_dir, tmp_path, capsys):
    export = tmp_path / "ETH_M1.txt"
    write_export(generate_bars(n_rows=300), export)
    assert cli.main(["ingest", str(export)]) == 0
    capsys.readouterr()
    assert cli.main(["catalog"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "datasets (1)"
    assert out[1].split() == ["name", "rows", "range", "(UTC)", "interval", "table"]
    assert out[2].split()[:2] == ["eth_m1", "300"]
    assert out[2].split()[-1] == "eth_m1"
    assert "indicator sets (0)" in out and "simulations (0)" in out
    assert cli.main(["catalog", "--dataset", "btc"]) == 0
    assert "datasets (0)" in capsys.readouterr().out
    assert cli.main(["catalog", "--dataset", "Bad Name"]) == 2
    assert "not a valid name" in capsys.readouterr().err
