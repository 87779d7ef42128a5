"""`trading-assets ingest` in real processes on both profiles: the embedded one (DuckDB store and catalog)
and production's (QuestDB store, Postgres catalog in a throwaway schema).

A refused file prints one line. An import killed with SIGKILL at any step leaves the old dataset or the
new one: store and catalog agree, or the catalog row says the import passed its commit point and the next
import completes it first (`finish_publication`); readers refuse the dataset until then.
"""

import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore
from resources.landing import landing_file
from resources.postgres_catalog import PostgresCatalog
from resources.questdb_store import QuestDBStore
from trading_assets.bars.service import finish_publication, ingest_bars
from trading_assets.compute.bar_format import read_bars
from trading_assets.compute.demo_data import generate_bars, write_export
from trading_assets.compute.files import file_sha256

CLI = Path(sys.executable).with_name("trading-assets")

# Runs the CLI with SIGKILL sent to itself just before the N-th write step: a store's or catalog's write
# method, or (QuestDB) one of the SQL statements that change tables. Prints how many steps a whole import
# took when none killed it.
KILLER = """
import os, signal, sys
from resources import duckdb_catalog, duckdb_store, postgres_catalog, questdb_store
from trading_assets import cli

kill_at, steps = int(sys.argv[1]), 0

def step():
    global steps
    steps += 1
    if steps == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

def deadly(owner, name, counts=lambda *a: True):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        if counts(*args):
            step()
        return original(*args, **kwargs)
    setattr(owner, name, wrapper)

for owner, name in [
    (duckdb_store.DuckDBStore, "stage"), (duckdb_store.DuckDBStore, "publish"), (duckdb_store, "_insert"),
    (duckdb_catalog.DuckDBCatalog, "upsert_dataset"), (postgres_catalog.PostgresCatalog, "upsert_dataset"),
    (questdb_store.QuestDBStore, "_send"),
]:
    deadly(owner, name)
deadly(questdb_store.QuestDBStore, "_exec", lambda self, sql: sql.split()[0] in ("DROP", "CREATE", "RENAME"))
code = cli.main(sys.argv[2:])
print(f"steps {steps}", file=sys.stderr)
sys.exit(code)
"""


# The write steps of one import, in order, as KILLER counts them.
STEPS = {
    "duckdb": ("stage", "insert into staging", "catalog row, publish pending", "publish", "catalog row"),
    "questdb": (
        "DROP staging",
        "CREATE staging",
        "ILP rows",
        "catalog row, publish pending",
        "DROP table",
        "RENAME staging",
        "catalog row",
    ),
}


@pytest.fixture
def questdb_addr(service_missing) -> str:
    addr = os.environ.get("QUESTDB_ADDR")
    if not addr:
        service_missing("QUESTDB_ADDR not set: no QuestDB server")
    with urllib.request.urlopen(f"http://{addr}/exec?query=SELECT%201", timeout=5):
        return addr


@pytest.fixture(params=["duckdb", "questdb"])
def profile(request, tmp_path):
    """(env for the CLI, store, catalog, dataset name) of one profile; QuestDB tables are dropped after."""
    env = {**os.environ, "TRADING_DATA_DIR": str(tmp_path / "data")}
    if request.param == "duckdb":
        data = tmp_path / "data"
        yield (
            env,
            DuckDBStore(path=str(data / "timeseries.duckdb")),
            DuckDBCatalog(path=str(data / "catalog.duckdb")),
            "btc",
        )
        return
    addr = request.getfixturevalue("questdb_addr")
    pg, schema = request.getfixturevalue("pg_settings"), request.getfixturevalue("pg_schema_name")
    env.update(
        TRADING_TIMESERIES="questdb",
        QUESTDB_ADDR=addr,
        TRADING_CATALOG="postgres",
        PGHOST=pg["host"],
        PGPORT=str(pg["port"]),
        PGUSER=pg["user"],
        PGDATABASE=pg["dbname"],
        TRADING_CATALOG_SCHEMA=schema,
    )
    host, port = addr.rsplit(":", 1)
    store = QuestDBStore(host=host, http_port=int(port))
    catalog = PostgresCatalog(**pg, schema_name=schema)
    dataset = f"crash_{uuid.uuid4().hex[:12]}"
    yield env, store, catalog, dataset
    catalog.close()
    for table in (dataset, f"{dataset}__staging"):
        store._exec(f'DROP TABLE IF EXISTS "{table}";')


def test_a_refused_file_prints_one_line_and_nothing_else(profile, tmp_path):
    env, store, _, dataset = profile
    bad = tmp_path / "bad.csv"
    bad.write_text("date,time,open,high,low,close,volume\n2025.01.01,00:00,1,2,0.5,1.5,10\n")
    bad.write_text(bad.read_text() + "2025.01.01,00:01,1,2,0.5,1.5,-10\n")
    done = subprocess.run(
        [str(CLI), "ingest", str(bad), "--dataset", dataset], env=env, capture_output=True, text=True
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "error: bad.csv line 3, field 'volume': volume -10 is negative\n"
    assert dataset not in store.list_tables()


def bars_of(path: Path) -> pa.Table:
    return read_bars(path).table


def agrees(store, catalog, dataset: str, expected: dict[str, pa.Table]) -> str:
    """The source SHA-256 of the dataset the catalog and the store both hold; fails if they differ."""
    record = catalog.get_dataset(dataset)
    assert not record.publish_pending
    stored = store.read(dataset)
    want = expected[record.source_sha256]
    assert stored.equals(want.cast(stored.schema)), "the table does not hold the bars the catalog describes"
    assert (record.row_count, record.first_ts, record.last_ts) == (
        want.num_rows,
        want.column("ts")[0].as_py(),
        want.column("ts")[-1].as_py(),
    )
    return record.source_sha256


def test_an_import_killed_at_any_step_leaves_the_old_dataset_or_the_new_one(profile, tmp_path):
    env, store, catalog, dataset = profile
    name = "duckdb" if isinstance(store, DuckDBStore) else "questdb"
    bars = generate_bars(n_rows=500, n_gaps=0)
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = write_export(bars.slice(0, 300), tmp_path / "old" / "btc.txt")
    new = write_export(bars, tmp_path / "new" / "btc.txt")
    expected = {file_sha256(old): bars_of(old), file_sha256(new): bars_of(new)}
    outcomes = []
    for kill_at in range(1, 30):
        old_source = landing_file(old, dataset)
        ingest_bars(
            old_source, store, catalog, old_source.options().overridden(old_source.read_options(), True)
        )
        assert agrees(store, catalog, dataset, expected) == file_sha256(old)
        done = subprocess.run(
            [sys.executable, "-c", KILLER, str(kill_at), "ingest", str(new), "--dataset", dataset],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            assert f"steps {kill_at - 1}" in done.stderr  # every step before this one was killed once
            assert agrees(store, catalog, dataset, expected) == file_sha256(new)
            break
        assert done.returncode == -9, done.stderr
        record = catalog.get_dataset(dataset)
        if not record.publish_pending:  # at rest, store and catalog agree ...
            at_rest = agrees(store, catalog, dataset, expected)
        else:  # ... or the catalog says the new import passed its commit point
            assert record.source_sha256 == file_sha256(new)
            at_rest = "pending"
        finish_publication(dataset, store, catalog)
        outcome = "new" if agrees(store, catalog, dataset, expected) == file_sha256(new) else "old"
        outcomes.append((kill_at, "old" if at_rest == file_sha256(old) else at_rest, outcome))
    else:
        pytest.fail(f"the import never finished: {outcomes}")
    # Killed up to the commit point: the old dataset; after it: the new one, once finished.
    steps = STEPS[name]
    commit = steps.index("catalog row, publish pending") + 1
    assert outcomes == [(k, "old", "old") for k in range(1, commit + 1)] + [
        (k, "pending", "new") for k in range(commit + 1, len(steps) + 1)
    ]
    # The next import of the same file finds nothing to change.
    source = landing_file(new, dataset)
    assert ingest_bars(source, store, catalog).change.kind == "unchanged"
