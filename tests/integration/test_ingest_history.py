"""A re-import never silently rewrites history: real DuckDB store and catalog files in tmp_path."""

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore
from resources.landing import landing_file
from trading_assets import cli
from trading_assets.bars.service import HistoryRewriteError, ingest_bars
from trading_assets.compute.demo_data import generate_bars, write_export

ROWS = 400


@pytest.fixture
def store(tmp_path) -> DuckDBStore:
    return DuckDBStore(path=str(tmp_path / "timeseries.duckdb"))


@pytest.fixture
def catalog(tmp_path) -> DuckDBCatalog:
    return DuckDBCatalog(path=str(tmp_path / "catalog.duckdb"))


@pytest.fixture
def bars() -> pa.Table:
    return generate_bars(n_rows=ROWS, n_gaps=0)


def export(tmp_path: Path, bars: pa.Table, name: str = "btc.txt") -> Path:
    return write_export(bars, tmp_path / name)


def ingest(path: Path, store, catalog, **kwargs):
    source = landing_file(path, "btc")
    options = source.options()
    if kwargs:
        options = options.overridden(options.read, **kwargs)
    return ingest_bars(source, store, catalog, options)


def test_a_longer_export_with_the_same_history_appends(tmp_path, store, catalog, bars):
    assert ingest(export(tmp_path, bars.slice(0, 300)), store, catalog).change.kind == "new"
    before = store.read("btc")
    result = ingest(export(tmp_path, bars), store, catalog)
    assert (result.change.kind, result.change.appended, result.record.row_count) == ("append", 100, ROWS)
    after = store.read("btc")
    assert after.slice(0, 300).equals(before)
    assert after.num_rows == ROWS
    assert ingest(export(tmp_path, bars), store, catalog).change.kind == "unchanged"


def test_a_shorter_export_is_refused_with_the_bars_it_would_drop(tmp_path, store, catalog, bars):
    ingest(export(tmp_path, bars), store, catalog)
    before, record = store.read("btc"), catalog.get_dataset("btc")
    with pytest.raises(
        HistoryRewriteError,
        match=r"^btc\.txt: would rewrite the stored history of 'btc': 100 of 400 stored bars removed, "
        r"0 changed, 0 inserted before the last stored bar; first difference: the stored bar at "
        r"2025-01-01 05:00:00 UTC is not in the file; import it with --replace",
    ):
        ingest(export(tmp_path, bars.slice(0, 300)), store, catalog)
    assert store.read("btc").equals(before)
    assert catalog.get_dataset("btc") == record


def test_a_changed_value_is_refused_with_its_line_and_the_first_changed_bar(tmp_path, store, catalog, bars):
    path = export(tmp_path, bars)
    ingest(path, store, catalog)
    before = store.read("btc")
    lines = path.read_text().splitlines(keepends=True)
    fields = lines[249].split(",")  # bar 250, 2025-01-01 04:09
    fields[5] = f"{float(fields[5]) + 0.01:.2f}"  # close, still inside [low, high] after the next line
    fields[3] = f"{max(float(fields[3]), float(fields[5])):.2f}"
    lines[249] = ",".join(fields)
    path.write_text("".join(lines))
    with pytest.raises(
        HistoryRewriteError,
        match=r"^btc\.txt line 250: would rewrite .*0 of 400 stored bars removed, 1 changed, 0 inserted.*"
        r"first difference: bar 2025-01-01 04:09:00 UTC: (high|close) ",
    ):
        ingest(path, store, catalog)
    assert store.read("btc").equals(before)


def test_replace_rewrites_the_history_when_asked(tmp_path, store, catalog, bars):
    ingest(export(tmp_path, bars), store, catalog)
    shorter = export(tmp_path, bars.slice(0, 300))
    result = ingest(shorter, store, catalog, replace=True)
    assert (result.change.kind, result.change.removed) == ("rewrite", 100)
    assert store.read("btc").num_rows == catalog.get_dataset("btc").row_count == 300
    with duckdb.connect(store.path, read_only=True) as conn:  # list_tables never shows staging tables
        assert conn.execute("SELECT table_name FROM information_schema.tables").fetchall() == [("btc",)]


def test_the_sidecar_and_the_command_line_say_replace(tmp_path, store, catalog, bars, monkeypatch, capsys):
    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path))  # the fixtures' files are the CLI's
    path = export(tmp_path, bars)
    assert cli.main(["ingest", str(path)]) == 0
    export(tmp_path, bars.slice(0, 200))
    assert cli.main(["ingest", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: btc.txt: would rewrite the stored history of 'btc': 200 of 400")
    assert err.count("\n") == 1
    assert cli.main(["ingest", str(path), "--replace"]) == 0
    assert "btc: 200 bars" in capsys.readouterr().out
    export(tmp_path, bars.slice(0, 100))
    (tmp_path / "btc.json").write_text(json.dumps({"replace": True}))
    assert cli.main(["ingest", str(path)]) == 0
    assert store.read("btc").num_rows == 100


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        ({"replace": "yes"}, r"option 'replace' must be true or false, not 'yes'"),
        ({"overwrite": True}, r"unknown option keys \['overwrite'\]"),
    ],
)
def test_a_bad_sidecar_option_is_refused_before_anything_is_read(
    tmp_path, store, catalog, bars, sidecar, message
):
    path = export(tmp_path, bars)
    (tmp_path / "btc.json").write_text(json.dumps(sidecar))
    with pytest.raises(ValueError, match=r"btc\.json: cannot read the dataset's options: " + message):
        ingest(path, store, catalog)
    assert store.list_tables() == []
