"""Backups of a deployment, their restore and their verification (docs/operations/backup.md).

A backup is a folder `<TRADING_BACKUP_DIR>/<UTC time>` holding what the settings' profile uses:
  postgres/<roles>.dump   `pg_dump -Fc` of the catalog's and the Dagster storage's databases (one dump
                          where both are one database)
  duckdb/<file>           the embedded catalog and time-series files, copied under the project's lock
  questdb/{db,.checkpoint,conf}   the QuestDB root, copied under a checkpoint
  artifacts/...           the artifact folder (fold models)
  manifest.json           versions, the catalog's schema version, each table's rows and checksum, and
                          the SHA-256 of every file of the backup
It is written in `.partial-<name>` and renamed once complete, so a folder with a manifest is a whole
backup; pruning (`keep`) deletes only those.

Settings beyond settings.py's:
TRADING_BACKUP_DIR    where backups are written (default $TRADING_DATA_DIR/backups)
TRADING_QUESTDB_ROOT  the QuestDB server's root folder, mounted where the backup runs (default
                      $TRADING_DATA_DIR/questdb, where scripts/services.sh runs it)
DAGSTER_PG_HOST, DAGSTER_PG_PORT, DAGSTER_PG_USER, DAGSTER_PG_PASSWORD, DAGSTER_PG_DB
                      the Dagster storage's database (dagster.yaml), backed up where DAGSTER_PG_DB is set
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from trading_assets import settings as cfg
from trading_assets.ops import backup_duckdb, backup_postgres, backup_questdb
from trading_assets.ops.backup_files import (
    BackupError,
    FileHashes,
    Progress,
    compare_files,
    compare_tables,
    copy_tree,
    hash_tree,
    human_bytes,
    is_empty_dir,
    sha256_file,
)
from trading_assets.ops.backup_postgres import PgDatabase

FORMAT = 1
MANIFEST = "manifest.json"
PARTIAL = ".partial-"


@dataclass(frozen=True)
class Profile:
    """What a backup holds and a restore writes to, from the same environment as the deployment's."""

    settings: cfg.Settings
    backup_dir: Path
    questdb_root: Path
    catalog_schema: str
    postgres: dict[str, PgDatabase] = field(default_factory=dict)  # role (catalog, dagster) -> database

    @classmethod
    def from_env(cls) -> Profile:
        settings = cfg.Settings.from_env()
        env = os.environ
        postgres = {}
        if settings.catalog == "postgres":
            postgres["catalog"] = PgDatabase.from_env("PG", "PGDATABASE", "trading_assets")
        if env.get("DAGSTER_PG_DB"):
            postgres["dagster"] = PgDatabase.from_env("DAGSTER_PG_", "DAGSTER_PG_DB", "dagster")
        return cls(
            settings=settings,
            backup_dir=Path(env.get("TRADING_BACKUP_DIR", settings.data_dir / "backups")).resolve(),
            questdb_root=Path(env.get("TRADING_QUESTDB_ROOT", settings.data_dir / "questdb")).resolve(),
            catalog_schema=env.get("TRADING_CATALOG_SCHEMA", "public"),
            postgres=postgres,
        )

    def dumps(self) -> dict[tuple[str, ...], PgDatabase]:
        """The databases to dump, by the roles each serves: one dump where catalog and Dagster share one."""
        grouped: dict[tuple[str, int, str], list[str]] = {}
        for role, db in self.postgres.items():
            grouped.setdefault(db.key, []).append(role)
        return {tuple(roles): self.postgres[roles[0]] for roles in grouped.values()}

    @contextmanager
    def questdb(self) -> Iterator[backup_questdb.QuestDBServer | None]:
        """The QuestDB server of the profile (None where the time-series store is DuckDB)."""
        if self.settings.timeseries != "questdb":
            yield None
            return
        with cfg.timeseries_store(self.settings).process_config_and_initialize_cm() as store:
            yield backup_questdb.QuestDBServer(store.host, store.http_port, store.username, store.password)


@dataclass(frozen=True)
class Checked:
    """One component checked against the manifest: a row for people, and each difference in one line."""

    component: str
    what: str
    differences: list[str]
    result: str = ""

    @property
    def row(self) -> tuple[str, str, str]:
        verdict = "all match" if not self.differences else f"{len(self.differences)} differ"
        return (self.component, self.what, self.result or verdict)


@dataclass(frozen=True)
class Summary:
    """The components checked, as rows for people, and every difference found."""

    checked: list[Checked]

    @property
    def rows(self) -> list[tuple[str, str, str]]:
        return [c.row for c in self.checked]

    @property
    def differences(self) -> list[str]:
        return [line for c in self.checked for line in c.differences]


def load_manifest(backup: Path) -> dict[str, Any]:
    path = backup / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{backup}: no {MANIFEST}; not a backup, or one that did not complete") from None
    except (OSError, ValueError) as err:
        raise BackupError(f"{path}: unreadable: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: not a manifest of format {FORMAT}")
    return manifest


def complete_backups(backup_dir: Path) -> list[Path]:
    """The complete backups in `backup_dir`, oldest first."""
    if not backup_dir.is_dir():
        return []
    found = [p for p in backup_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted((p for p in found if (p / MANIFEST).is_file()), key=lambda p: p.name)


def resolve(backup: str, profile: Profile) -> Path:
    """A backup folder from a path, a name in the backup folder, or `latest`."""
    if backup == "latest":
        backups = complete_backups(profile.backup_dir)
        if not backups:
            raise BackupError(f"no complete backup in {profile.backup_dir}")
        return backups[-1]
    path = Path(backup)
    if not path.exists() and (profile.backup_dir / backup).exists():
        path = profile.backup_dir / backup
    if not path.is_dir():
        raise BackupError(f"{backup}: no such backup folder")
    return path.resolve()


@contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"{lock.parent}: another backup is being written there") from None
        yield
    finally:
        os.close(fd)


def _new_name(backup_dir: Path, now: datetime) -> str:
    base = f"{now:%Y%m%dT%H%M%SZ}"
    name, n = base, 1
    while (backup_dir / name).exists() or (backup_dir / f"{PARTIAL}{name}").exists():
        n += 1
        name = f"{base}-{n}"
    return name


def _versions() -> dict[str, str]:
    return {
        "trading_assets": importlib.metadata.version("trading-assets"),
        "dagster": dg.__version__,
        "duckdb": duckdb.__version__,
    }


def create(profile: Profile, progress: Progress, backup_dir: Path | None = None) -> Path:
    """Write a complete backup of the profile into `backup_dir` (default the profile's); its folder."""
    backup_dir = backup_dir or profile.backup_dir
    backup_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(backup_dir / ".lock"):
        now = datetime.now(UTC)
        name = _new_name(backup_dir, now)
        partial = backup_dir / f"{PARTIAL}{name}"
        partial.mkdir()
        try:
            manifest = _write(profile, partial, progress)
            manifest.update(name=name, created_at=now.isoformat())
            (partial / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
            partial.rename(backup_dir / name)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return backup_dir / name


def _write(profile: Profile, out: Path, progress: Progress) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "versions": _versions(),
        "catalog_schema": None,
        "postgres": [],
        "duckdb": [],
        "questdb": None,
        "artifacts": None,
    }
    files: FileHashes = {}
    for roles, db in profile.dumps().items():
        rel = backup_postgres.dump_name(roles)
        (out / rel).parent.mkdir(exist_ok=True)
        schema = profile.catalog_schema if "catalog" in roles else None
        dumped = backup_postgres.dump(db, out / rel, progress, schema)
        files[rel] = {"sha256": sha256_file(out / rel), "bytes": (out / rel).stat().st_size}
        manifest["versions"]["postgres"] = dumped.server_version
        manifest["postgres"].append(
            {"file": rel, "roles": list(roles), "database": str(db), "tables": dumped.tables}
        )
        if dumped.schema_versions is not None:
            manifest["catalog_schema"] = {"backend": "postgres", "applied": list(dumped.schema_versions)}
    used = {"catalog": profile.settings.catalog, "timeseries": profile.settings.timeseries}
    for role, file_name in backup_duckdb.FILES.items():
        source = profile.settings.data_dir / file_name
        if used[role] != "duckdb" or not source.exists():
            continue
        copied = backup_duckdb.copy_locked(source, out / "duckdb", progress)
        files.update({f"duckdb/{rel}": entry for rel, entry in copied.items()})
        with backup_duckdb.read_only(out / "duckdb" / file_name, locked=False) as con:
            manifest["duckdb"].append(
                {"file": f"duckdb/{file_name}", "role": role, "tables": backup_duckdb.table_sums(con)}
            )
            if role == "catalog":
                applied = backup_duckdb.catalog_versions(con)
                manifest["catalog_schema"] = {"backend": "duckdb", "applied": list(applied)}
    with profile.questdb() as server:
        if server is not None:
            part = backup_questdb.backup(server, profile.questdb_root, out / "questdb", progress)
            files.update({f"questdb/{rel}": entry for rel, entry in part.files.items()})
            manifest["versions"]["questdb"] = part.version
            manifest["questdb"] = {"dir": "questdb", "tables": part.tables}
    artifacts = profile.settings.artifacts_dir
    copied = copy_tree(artifacts, out / "artifacts", progress, "artifacts") if artifacts.is_dir() else {}
    files.update({f"artifacts/{rel}": entry for rel, entry in copied.items()})
    manifest["artifacts"] = {"dir": "artifacts", "files": copied}
    manifest["files"] = files
    return manifest


def prune(backup_dir: Path, keep: int) -> list[Path]:
    """Delete the oldest complete backups beyond the newest `keep`; the deleted. Partial folders (a
    backup being written, or one that died) are never touched."""
    if keep < 1:
        raise BackupError(f"keep must be at least 1, not {keep}")
    backups = complete_backups(backup_dir)
    doomed = backups[: max(0, len(backups) - keep)]
    for path in doomed:
        shutil.rmtree(path)
    return doomed


def check_files(backup: Path, manifest: dict[str, Any], progress: Progress) -> list[str]:
    """The backup's files against the manifest's hashes: one line per difference."""
    actual = hash_tree(backup, progress, "checking file hashes")
    actual.pop(MANIFEST, None)
    return compare_files(manifest["files"], actual, "")


def verify(backup: Path, profile: Profile, progress: Progress, restore_check: bool) -> Summary:
    """Check a backup: its files against the manifest, the DuckDB tables of its copies, and with
    `restore_check` its Postgres dumps and QuestDB root restored into scratch databases and folders."""
    manifest = load_manifest(backup)
    if restore_check and manifest["questdb"] is not None and (reason := backup_questdb.cannot_start()):
        raise BackupError(f"{reason}; or leave out --restore-check")
    files = manifest["files"]
    differences = check_files(backup, manifest, progress)
    checked = [Checked("files", f"{_count(len(files), 'file')}, {_size(files)}", differences)]
    for entry in manifest["duckdb"]:
        try:
            with backup_duckdb.read_only(backup / entry["file"], locked=False) as con:
                found = compare_tables(entry["tables"], backup_duckdb.table_sums(con), entry["file"])
        except duckdb.Error as err:
            found = [f"{entry['file']}: cannot be read: {str(err).splitlines()[0]}"]
        checked.append(Checked("duckdb", describe_tables(entry), found))
    not_restored = "not restored (--restore-check restores it)"
    for entry in manifest["postgres"]:
        if not restore_check:
            checked.append(Checked("postgres", describe_tables(entry), [], not_restored))
            continue
        with backup_postgres.scratch_database(_postgres_target(profile, entry["roles"][0])) as scratch:
            backup_postgres.restore(backup / entry["file"], scratch, progress)
            found = _postgres_differences(scratch, entry, entry["file"])
        checked.append(
            Checked("postgres", f"{describe_tables(entry)} restored into a scratch database", found)
        )
    questdb = manifest["questdb"]
    if questdb is not None and not restore_check:
        checked.append(Checked("questdb", describe_tables(questdb), [], not_restored))
    elif questdb is not None:
        with tempfile.TemporaryDirectory(prefix="questdb-verify-") as scratch:
            root = Path(scratch, "root")
            backup_questdb.restore_root(backup / questdb["dir"], root, False, progress)
            found = _questdb_differences(root, manifest, profile, progress)
        checked.append(Checked("questdb", f"{describe_tables(questdb)} restored into a scratch root", found))
    artifacts = [d for d in differences if d.startswith("artifacts/")]
    # Their differences are the files'; listed once, under files.
    checked.append(
        Checked(
            "artifacts",
            _count(len(manifest["artifacts"]["files"]), "file"),
            [],
            f"{len(artifacts)} differ" if artifacts else "all match",
        )
    )
    return Summary(checked)


def _postgres_target(profile: Profile, role: str) -> PgDatabase:
    db = profile.postgres.get(role)
    if db is None:
        variables = "TRADING_CATALOG=postgres and PG*" if role == "catalog" else "DAGSTER_PG_*"
        raise BackupError(f"the backup holds the {role} database in Postgres: set {variables} to restore it")
    return db


def _postgres_differences(db: PgDatabase, entry: dict[str, Any], where: str) -> list[str]:
    with db.connect(autocommit=True) as con:
        return compare_tables(entry["tables"], backup_postgres.table_sums(con), where)


def _questdb_differences(
    root: Path, manifest: dict[str, Any], profile: Profile, progress: Progress
) -> list[str]:
    """Start a server on a restored root (it recovers the checkpoint) and compare its tables."""
    tables = manifest["questdb"]["tables"]
    with profile.questdb() as source:
        login = (source.username, source.password) if source else (None, None)
    with backup_questdb.started(root, *login, progress) as server:
        wanted, running = manifest["versions"].get("questdb", ""), server.version()
        if running.split(".")[0] != wanted.split(".")[0]:
            return [f"questdb: the backup is of QuestDB {wanted}, restored on {running}"]
        with progress.step("questdb: table checksums"):
            return compare_tables(tables, server.table_sums(sorted(tables)), "questdb")


def restore(backup: Path, profile: Profile, progress: Progress, force: bool, check: bool) -> Summary:
    """Restore a backup into the profile's databases and folders, which must be empty (or `force`), then
    compare what was restored against the manifest (`check`)."""
    manifest = load_manifest(backup)
    refused = _not_empty(manifest, profile)
    if refused and not force:
        raise BackupError(f"not empty: {'; '.join(refused)}; restore into fresh ones, or pass --force")
    if check and manifest["questdb"] is not None and (reason := backup_questdb.cannot_start()):
        raise BackupError(
            f"{reason}; or pass --no-verify: the deployment's server recovers the root as it starts"
        )
    differences = check_files(backup, manifest, progress)
    if differences:
        raise BackupError(f"{backup} differs from its manifest, not restored: {differences[0]}")
    unchecked = "restored, not compared (--no-verify)"
    checked = []
    for entry in manifest["postgres"]:
        for db in {db.key: db for db in (_postgres_target(profile, r) for r in entry["roles"])}.values():
            backup_postgres.create_fresh(db, force)
            backup_postgres.restore(backup / entry["file"], db, progress)
            found = _postgres_differences(db, entry, str(db)) if check else []
            checked.append(
                Checked("postgres", f"{describe_tables(entry)} into {db}", found, "" if check else unchecked)
            )
    for entry in manifest["duckdb"]:
        target = profile.settings.data_dir / backup_duckdb.FILES[entry["role"]]
        target.parent.mkdir(parents=True, exist_ok=True)
        sources = sorted((backup / "duckdb").glob(Path(entry["file"]).name + "*"))  # the file, its WAL
        backup_duckdb.restore_locked(sources, target, progress)
        found = []
        if check:
            with backup_duckdb.read_only(target, locked=True) as con:
                found = compare_tables(entry["tables"], backup_duckdb.table_sums(con), str(target))
        checked.append(
            Checked("duckdb", f"{describe_tables(entry)} into {target}", found, "" if check else unchecked)
        )
    if manifest["questdb"] is not None:
        root = profile.questdb_root
        backup_questdb.restore_root(backup / manifest["questdb"]["dir"], root, force, progress)
        found = _questdb_differences(root, manifest, profile, progress) if check else []
        later = "recovers the checkpoint when its server starts"
        checked.append(
            Checked(
                "questdb",
                f"{describe_tables(manifest['questdb'])} into {root}",
                found,
                "" if check else later,
            )
        )
    artifacts = profile.settings.artifacts_dir
    if force and artifacts.exists():
        shutil.rmtree(artifacts)
    source = backup / "artifacts"
    copied = copy_tree(source, artifacts, progress, "artifacts") if source.is_dir() else {}
    found = compare_files(manifest["artifacts"]["files"], copied, f"{artifacts}/")
    checked.append(Checked("artifacts", f"{_count(len(copied), 'file')} into {artifacts}", found))
    return Summary(checked)


def _not_empty(manifest: dict[str, Any], profile: Profile) -> list[str]:
    """The restore's targets that are not empty: a database with tables, a file, a folder with files."""
    found = []
    for entry in manifest["postgres"]:
        for db in {_postgres_target(profile, role) for role in entry["roles"]}:
            if backup_postgres.has_tables(db):
                found.append(f"postgres {db}")
    for entry in manifest["duckdb"]:
        target = profile.settings.data_dir / backup_duckdb.FILES[entry["role"]]
        if target.exists():
            found.append(str(target))
    if manifest["questdb"] is not None and not is_empty_dir(profile.questdb_root):
        found.append(f"QuestDB root {profile.questdb_root}")
    if not is_empty_dir(profile.settings.artifacts_dir):
        found.append(f"artifacts {profile.settings.artifacts_dir}")
    return found


def describe_tables(entry: dict[str, Any]) -> str:
    """A dump's, file's or root's tables in a few words: its file, tables and rows."""
    tables = entry["tables"]
    rows = sum(t["rows"] or 0 for t in tables.values())
    what = entry.get("file") or entry.get("dir")
    return f"{what}: {_count(len(tables), 'table')}, {_count(rows, 'row')}"


def contents(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """What a backup holds, a row per component, for people."""
    rows = [
        ("postgres", f"{describe_tables(e)} ({'+'.join(e['roles'])}: {e['database']})")
        for e in manifest["postgres"]
    ]
    rows += [("duckdb", describe_tables(e)) for e in manifest["duckdb"]]
    if manifest["questdb"] is not None:
        version = manifest["versions"]["questdb"]
        rows.append(("questdb", f"{describe_tables(manifest['questdb'])} (QuestDB {version})"))
    rows.append(("artifacts", _count(len(manifest["artifacts"]["files"]), "file")))
    schema = manifest["catalog_schema"]
    if schema is not None:
        latest = schema["applied"][-1] if schema["applied"] else "none"
        rows.append(("catalog schema", f"{schema['backend']}, migration {latest}"))
    return rows


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _size(files: FileHashes) -> str:
    return human_bytes(sum(f["bytes"] for f in files.values()))
