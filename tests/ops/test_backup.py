"""Backups of the production profile against the real servers: the catalog and the Dagster storage in
Postgres (databases of this module's own), a private QuestDB started by scripts/services.sh, and the
artifacts. The backup is taken once, by the Dagster job `backup` run in process on the production instance
(whose own run is written to the Dagster database while it is dumped); the tests restore it into fresh
databases and folders, verify it, tamper with it, and fail its QuestDB copy half-way."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import psycopg
import pyarrow as pa
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from resources.local_servers import PrivateQuestDB
from resources.postgres_catalog import PostgresCatalog
from resources.questdb_store import QuestDBStore
from resources.timeseries import TS_TYPE, TableSchema
from trading_assets.cli import main
from trading_assets.ops.backup import complete_backups
from trading_assets.ops.backup_questdb import QuestDBServer
from trading_assets.ops.jobs import backup

ROOT = Path(__file__).resolve().parents[2]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# QuestDB preallocates 16 MB per column file; small pages keep each copy of a root a few MB (server.conf
# keys as QDB_* variables, which the servers started by services.sh inherit).
SMALL_PAGES = {
    f"QDB_CAIRO_{key}_APPEND_PAGE_SIZE": "65536"
    for key in (
        "WRITER_DATA",
        "SYSTEM_WRITER_DATA",
        "WAL_WRITER_DATA",
        "WRITER_DATA_INDEX_KEY",
        "WRITER_DATA_INDEX_VALUE",
    )
}
BARS = TableSchema(
    columns=(("sym", "symbol"), ("close", "double"), ("note", "string")),
    dedup_keys=("sym",),
    partition_by="DAY",
)


def bars(n: int, seed: int) -> pa.Table:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return pa.table(
        {
            "ts": pa.array([start + timedelta(minutes=i) for i in range(n)], TS_TYPE),
            "sym": ["BTC" if i % 2 else "ETH" for i in range(n)],
            "close": np.random.default_rng(seed).random(n),
            "note": [f'say "{i}",\nthen' for i in range(n)],
        }
    )


def pg_env(prefix: str, params: dict[str, Any], db: str) -> dict[str, str]:
    """PGHOST, ... (prefix PG) or DAGSTER_PG_HOST, ... for the test server and database `db`."""
    return {
        f"{prefix}HOST": params.get("host", "127.0.0.1"),
        f"{prefix}PORT": str(params.get("port", 5432)),
        f"{prefix}USER": params.get("user", "postgres"),
        f"{prefix}PASSWORD": params.get("password") or "",
        "PGDATABASE" if prefix == "PG" else f"{prefix}DB": db,
    }


class Databases:
    """Databases of this module's own on the test server, dropped at the end."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.params = conninfo_to_dict(conninfo)
        self.names: list[str] = []

    def name(self, role: str) -> str:
        name = f"backup_{role}_{uuid.uuid4().hex[:10]}"
        self.names.append(name)
        return name

    def connect(self, db: str) -> psycopg.Connection:
        return psycopg.connect(self.conninfo, dbname=db, autocommit=True)

    def drop_all(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as con:
            for name in self.names:
                con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def databases(pg_conninfo: str) -> Iterator[Databases]:
    made = Databases(pg_conninfo)
    yield made
    made.drop_all()


class Source:
    """The profile that was backed up, and its backup."""

    def __init__(self, env: dict[str, str], questdb: PrivateQuestDB, data: Path, backup: Path) -> None:
        self.env, self.questdb, self.data, self.backup = env, questdb, data, backup

    @property
    def server(self) -> QuestDBServer:
        host, port = self.questdb.addr.rsplit(":", 1)
        return QuestDBServer(host, int(port))

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.backup / "manifest.json").read_text())


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, databases: Databases) -> Iterator[Source]:
    """Postgres catalog and Dagster storage, QuestDB and artifacts with data, backed up by the job."""
    base = tmp_path_factory.mktemp("backup_source")
    data = base / "data"  # QuestDB's root is data/questdb, TRADING_QUESTDB_ROOT's default
    catalog_db, dagster_db = databases.name("catalog"), databases.name("dagster")
    with databases.connect("postgres") as con:
        for db in (catalog_db, dagster_db):
            con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    home = base / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {
        **SMALL_PAGES,
        **pg_env("PG", databases.params, catalog_db),
        **pg_env("DAGSTER_PG_", databases.params, dagster_db),
        "TRADING_DATA_DIR": str(data),
        "TRADING_CATALOG": "postgres",
        "TRADING_CATALOG_SCHEMA": "catalog",
        "TRADING_TIMESERIES": "questdb",
        "TRADING_BACKUP_DIR": str(base / "backups"),
        "DAGSTER_HOME": str(home),
    }
    with pytest.MonkeyPatch.context() as mp:
        for name in ("TRADING_ARTIFACTS_DIR", "TRADING_QUESTDB_ROOT", "QUESTDB_USER", "QUESTDB_PASSWORD"):
            mp.delenv(name, raising=False)
        for name, value in env.items():
            mp.setenv(name, value)
        questdb = PrivateQuestDB(data)
        questdb.start()
        try:
            mp.setenv("QUESTDB_ADDR", questdb.addr)
            env["QUESTDB_ADDR"] = questdb.addr
            catalog = PostgresCatalog(
                **_catalog_login(databases.params), dbname=catalog_db, schema_name="catalog"
            )
            catalog.migrate()
            catalog.close()
            with databases.connect(catalog_db) as con:
                # Values whose text needs care: a newline and tab, quotes, NULL, json, bytea, a time zone.
                con.execute(
                    "CREATE TABLE public.notes "
                    "(id int PRIMARY KEY, body text, at timestamptz, doc json, raw bytea)"
                )
                con.execute(
                    "INSERT INTO public.notes SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE "
                    "'line ' || g || E'\\n\\tand \"quoted\"' END, "
                    "timestamptz '2024-01-01 00:00+02' + g * interval '1 hour', "
                    "('{\"g\": ' || g || '}')::json, "
                    "decode(md5(g::text), 'hex') FROM generate_series(1, 300) g"
                )
            QuestDBStore(host="127.0.0.1", http_port=int(questdb.addr.rsplit(":", 1)[1])).write(
                "btc", bars(3000, seed=1), BARS
            )
            (data / "artifacts" / "btc_run1").mkdir(parents=True)
            (data / "artifacts" / "btc_run1" / "fold_0.ubj").write_bytes(os.urandom(50_000))
            (data / "artifacts" / "btc_run1" / "thresholds.json").write_text('{"long": 0.6}')
            with dg.DagsterInstance.from_config(str(home)) as instance:
                result = backup.execute_in_process(
                    instance=instance, run_config={"ops": {"take_backup": {"config": {"keep": 3}}}, **QUIET}
                )
            assert result.success
            yield Source(env, questdb, data, base / "backups" / result.output_for_node("take_backup"))
        finally:
            questdb.crash()  # a throwaway root: SIGKILL spares the clean shutdown's seconds


def _catalog_login(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "host": params.get("host", "127.0.0.1"),
        "port": int(params.get("port", 5432)),
        "user": params.get("user", "postgres"),
        "password": params.get("password"),
    }


@pytest.fixture
def profile(source: Source, monkeypatch: pytest.MonkeyPatch) -> Source:
    """The source profile's environment, for a test to change what it restores into."""
    for name, value in source.env.items():
        monkeypatch.setenv(name, value)
    for name in ("TRADING_ARTIFACTS_DIR", "TRADING_QUESTDB_ROOT", "QUESTDB_USER", "QUESTDB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return source


def table_rows(con: psycopg.Connection) -> dict[str, list[tuple]]:
    """Every table's rows, sorted, read with plain SELECTs (not the backup's COPY)."""
    tables = con.execute(
        "SELECT schemaname, tablename FROM pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
    ).fetchall()
    return {
        f"{s}.{t}": sorted(
            con.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(s, t))).fetchall(), key=repr
        )
        for s, t in tables
    }


def test_the_backup_holds_each_database_the_questdb_root_and_the_artifacts_with_their_checksums(
    profile: Source,
):
    manifest = profile.manifest()

    assert set(manifest["versions"]) == {"trading_assets", "dagster", "duckdb", "postgres", "questdb"}
    assert manifest["versions"]["questdb"] == "9.3.4"
    assert manifest["catalog_schema"]["backend"] == "postgres"
    assert manifest["catalog_schema"]["applied"][-1] == "0012"
    catalog, dagster = manifest["postgres"]
    assert (catalog["file"], dagster["file"]) == ("postgres/catalog.dump", "postgres/dagster.dump")
    assert catalog["tables"]["public.notes"]["rows"] == 300
    assert catalog["tables"]["catalog.schema_migrations"]["rows"] == 12
    # The run that took the backup was writing to the Dagster database while it was dumped.
    assert dagster["tables"]["public.runs"]["rows"] == 1
    assert manifest["questdb"]["tables"]["btc"]["rows"] == 3000
    assert sorted(manifest["artifacts"]["files"]) == ["btc_run1/fold_0.ubj", "btc_run1/thresholds.json"]
    on_disk = {p.relative_to(profile.backup).as_posix() for p in profile.backup.rglob("*") if p.is_file()} - {
        "manifest.json"
    }
    assert set(manifest["files"]) == on_disk
    assert {"questdb/db/tables.d.0", "questdb/conf/server.conf"} <= on_disk
    assert any(f.startswith("questdb/.checkpoint/db/btc") for f in on_disk)


def test_a_restore_into_fresh_databases_and_folders_gives_back_what_was_backed_up(
    profile: Source,
    databases: Databases,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    catalog_db, dagster_db = databases.name("catalog_restored"), databases.name("dagster_restored")
    monkeypatch.setenv("PGDATABASE", catalog_db)
    monkeypatch.setenv("DAGSTER_PG_DB", dagster_db)
    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path / "data"))

    assert main(["restore", str(profile.backup)]) == 0

    out = capsys.readouterr().out
    assert out.count("all match") == 4, out  # two databases, QuestDB, the artifacts
    # The catalog database has not changed since the backup: the restored one has the same rows.
    with databases.connect(profile.env["PGDATABASE"]) as was, databases.connect(catalog_db) as now:
        assert table_rows(now) == table_rows(was)
    # The Dagster database holds the run that took the backup, as it was then: started.
    with databases.connect(dagster_db) as now:
        assert now.execute("SELECT status FROM runs").fetchall() == [("STARTED",)]
    # The restore's own server recovered the checkpoint: no trigger left, the next start is a plain one.
    root = tmp_path / "data" / "questdb"
    assert not (root / "_restore").exists() and not (root / ".checkpoint" / "db").exists()
    for model in (profile.data / "artifacts").rglob("*.*"):
        assert (tmp_path / "data" / model.relative_to(profile.data)).read_bytes() == model.read_bytes()


def test_verify_backup_restores_into_scratch_databases_and_a_scratch_root_and_finds_them_equal(
    profile: Source, databases: Databases, capsys: pytest.CaptureFixture[str]
):
    assert main(["verify-backup", str(profile.backup), "--restore-check"]) == 0

    out = capsys.readouterr().out
    assert out.count("restored into a scratch database") == 2
    assert "questdb: 1 table, 3,000 rows restored into a scratch root" in out
    assert out.strip().endswith("OK: everything checked matches the manifest")
    with databases.connect("postgres") as con:
        assert (
            con.execute("SELECT datname FROM pg_database WHERE datname LIKE 'trading_verify_%'").fetchall()
            == []
        )


def test_a_tampered_file_fails_verification_with_one_line_naming_it(
    profile: Source, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    copy = tmp_path / profile.backup.name
    shutil.copytree(profile.backup, copy)
    [column] = [p for p in (copy / "questdb" / "db").glob("btc~*/2024-01-02*/close.d")]
    payload = bytearray(column.read_bytes())
    payload[100] ^= 0xFF
    column.write_bytes(payload)

    assert main(["verify-backup", str(copy)]) == 1

    name = column.relative_to(copy).as_posix()
    assert capsys.readouterr().err.splitlines()[-1] == f"error: {name}: SHA-256 differs from the manifest"


def test_a_restore_refuses_databases_and_folders_that_are_not_empty(
    profile: Source, databases: Databases, capsys: pytest.CaptureFixture[str]
):
    before = profile.manifest()["postgres"][0]["tables"]["public.notes"]

    assert main(["restore", str(profile.backup)]) == 1

    [error] = capsys.readouterr().err.splitlines()
    assert error.startswith("error: not empty: postgres backup_catalog_")
    assert f"QuestDB root {profile.data / 'questdb'}" in error and error.endswith("or pass --force")
    with databases.connect(profile.env["PGDATABASE"]) as con:
        assert con.execute("SELECT count(*) FROM public.notes").fetchone() == (before["rows"],)


def test_a_restore_that_could_not_check_questdb_stops_before_writing_anything(
    profile: Source,
    databases: Databases,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    # As in the image, which carries no source tree: no scripts/services.sh to start a QuestDB with.
    monkeypatch.setattr("resources.local_servers.SERVICES", tmp_path / "no" / "services.sh")
    catalog_db, dagster_db = databases.name("catalog_never"), databases.name("dagster_never")
    monkeypatch.setenv("PGDATABASE", catalog_db)
    monkeypatch.setenv("DAGSTER_PG_DB", dagster_db)
    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path / "data"))

    assert main(["restore", str(profile.backup)]) == 1

    [error] = capsys.readouterr().err.splitlines()
    assert "which this installation lacks" in error and error.endswith("recovers the root as it starts")
    assert not (tmp_path / "data").exists()
    with databases.connect("postgres") as con:
        found = con.execute("SELECT 1 FROM pg_database WHERE datname IN (%s, %s)", (catalog_db, dagster_db))
        assert found.fetchall() == []


def test_the_questdb_checksum_follows_the_rows_not_the_table(profile: Source):
    store = QuestDBStore(host="127.0.0.1", http_port=profile.server.http_port)
    store.write("eth", bars(3000, seed=1), BARS)
    server = profile.server
    assert server.table_sums(["eth"])["eth"] == profile.manifest()["questdb"]["tables"]["btc"]

    changed = bars(3000, seed=1).slice(0, 1).set_column(2, "close", pa.array([0.5]))
    store.write("eth", changed, BARS)

    assert (
        server.table_sums(["eth"])["eth"]["sha256"]
        != profile.manifest()["questdb"]["tables"]["btc"]["sha256"]
    )


def _file_size_limit(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_copy_that_fails_half_way_releases_the_checkpoint_and_keeps_nothing(
    profile: Source, tmp_path: Path
):
    # The backup's process may write no file over 64 kB: the copy of the QuestDB root fails with EFBIG
    # (as on a full disk) once it reaches a column file.
    out = tmp_path / "backups"
    done = subprocess.run(
        [sys.executable, "-m", "trading_assets.cli", "backup", "--out", str(out)],
        env=questdb_only(profile),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: _file_size_limit(64_000),
    )

    assert done.returncode == 1
    error = done.stderr.splitlines()[-1]
    assert error.startswith("error: questdb: copying db: ") and error.endswith(": File too large")
    assert list(out.iterdir()) == [out / ".lock"]  # the partial backup was removed
    server = profile.server
    assert not server.in_checkpoint()
    server.rows("CHECKPOINT CREATE;")
    server.rows("CHECKPOINT RELEASE;")
    store = QuestDBStore(host="127.0.0.1", http_port=server.http_port)
    assert store.write("after_failed_backup", bars(10, seed=2), BARS) == 10
    assert store.read("after_failed_backup").num_rows == 10


def questdb_only(profile: Source) -> dict[str, str]:
    """The environment of a backup of the source's QuestDB and artifacts only."""
    env = {**os.environ, "TRADING_CATALOG": "duckdb", "TRADING_DATA_DIR": str(profile.data)}
    env.pop("DAGSTER_PG_DB", None)
    return env


# A signal can land between open() returning a file and `with` taking it: that file is closed when it is
# collected, with a ResourceWarning, which is no fault of the backup's.
@pytest.mark.filterwarnings("ignore:Exception ignored in. <_io:pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("moment", ["the server enters checkpoint mode", "the copy has begun"])
def test_sigterm_during_the_checkpoint_releases_it_and_keeps_nothing(
    moment: str,
    profile: Source,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.setenv("TRADING_CATALOG", "duckdb")  # QuestDB and the artifacts only
    monkeypatch.delenv("DAGSTER_PG_DB")
    server = profile.server
    # About 100 MB of columns: the copy lasts long enough to be caught in the middle.
    server.rows(
        "CREATE TABLE big AS (SELECT timestamp_sequence(0, 1000000) ts, rnd_double() a, rnd_double() b, "
        "rnd_long() c FROM long_sequence(3000000)) TIMESTAMP(ts) PARTITION BY DAY;"
    )
    out, stop, late = tmp_path / "backups", threading.Event(), []

    def terminate_in_checkpoint() -> None:
        # As soon as the server is in checkpoint mode, the CREATE statement may not have answered yet.
        while not stop.is_set():
            copying = moment == "the server enters checkpoint mode" or any(out.glob(".partial-*/questdb/db"))
            if copying and server.in_checkpoint():
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.002)

    # The command's own handler is in place from before the checkpoint to after its release; this one
    # catches a SIGTERM that came too late, which would otherwise end pytest.
    previous = signal.signal(signal.SIGTERM, lambda *_: late.append("SIGTERM after the backup"))
    watcher = threading.Thread(target=terminate_in_checkpoint)
    watcher.start()
    try:
        code = main(["backup", "--out", str(out)])
    finally:
        stop.set()
        watcher.join()
        signal.signal(signal.SIGTERM, previous)
        server.rows("DROP TABLE IF EXISTS big;")

    assert (code, late) == (130, [])
    assert capsys.readouterr().err.splitlines()[-1] == "error: interrupted; nothing partial was kept"
    assert list(out.iterdir()) == [out / ".lock"]
    assert not server.in_checkpoint()
    server.rows("CHECKPOINT CREATE;")
    server.rows("CHECKPOINT RELEASE;")


def test_a_catalog_and_dagster_storage_in_one_database_are_dumped_once(
    profile: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("DAGSTER_PG_DB", profile.env["PGDATABASE"])
    monkeypatch.setenv("TRADING_TIMESERIES", "duckdb")

    assert main(["backup", "--out", str(tmp_path)]) == 0

    [taken] = complete_backups(tmp_path)
    [dump] = json.loads((taken / "manifest.json").read_text())["postgres"]
    assert (dump["file"], dump["roles"]) == ("postgres/catalog+dagster.dump", ["catalog", "dagster"])
    assert "catalog+dagster" in capsys.readouterr().out
