"""QuestDB in a backup, by its checkpoint protocol: `CHECKPOINT CREATE`, copy the server's root, then
`CHECKPOINT RELEASE`, released whatever happens to the copy. A restore copies the root into a fresh
folder beside an empty `_restore` file; the server started on it recovers the checkpoint (QuestDB's
"Backup and restore" guide).

The copy reads the server's files, so it runs where the root is mounted (TRADING_QUESTDB_ROOT); SQL goes
over the HTTP `/exec` endpoint, as the store sends it. Each table's checksum is the SHA-256 of its CSV
export ordered by its designated timestamp and upsert keys, taken once QuestDB has applied the table's
WAL. A table written between the checkpoint and its checksum cannot be compared: the manifest records it
without a checksum.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trading_assets import naming
from trading_assets.ops.backup_files import (
    BackupError,
    FileHashes,
    Progress,
    TableSums,
    copy_tree,
    rows_digest,
)

# The parts of a root a restore needs: the tables, the checkpoint's snapshot of them, the server's
# settings. Logs, the web console and the import folder are left out.
ROOT_PARTS = ("db", ".checkpoint", "conf")
RESTORE_TRIGGER = "_restore"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class QuestDBRefused(BackupError):
    """The server answered a statement with an error (as opposed to not answering)."""


@dataclass(frozen=True)
class QuestDBServer:
    """SQL over a QuestDB server's HTTP API, streamed where the answer is large."""

    host: str
    http_port: int
    username: str | None = None
    password: str | None = None
    timeout_s: float = 120.0

    def __str__(self) -> str:
        return f"QuestDB at {self.host}:{self.http_port}"

    def _open(self, path: str, query: str, **params: str) -> Any:
        url = (
            f"http://{self.host}:{self.http_port}{path}?{urllib.parse.urlencode({'query': query, **params})}"
        )
        headers = {}
        if self.username is not None:
            token = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        try:
            return _OPENER.open(urllib.request.Request(url, headers=headers), timeout=self.timeout_s)
        except urllib.error.HTTPError as err:
            with err:
                raise QuestDBRefused(
                    f"{self}: {_error_text(err.read()) or err.reason} (in {query})"
                ) from None
        except OSError as err:
            raise BackupError(f"{self} is unreachable: {getattr(err, 'reason', err)}") from None

    def rows(self, query: str) -> list[list[Any]]:
        with self._open("/exec", query) as response:
            payload = json.loads(response.read())
        if "error" in payload:
            raise QuestDBRefused(f"{self}: {payload['error']} (in {query})")
        return payload.get("dataset", [])

    def export(self, query: str) -> Iterator[bytes]:
        """The CSV export of `query`, in blocks."""
        with self._open("/exp", query) as response:
            while block := response.read(1 << 20):
                yield block

    def version(self) -> str:
        """The server's version, e.g. 9.3.4, from `build()`."""
        text = str(self.rows("SELECT build();")[0][0])
        return text.split("QuestDB ", 1)[1].split(",", 1)[0] if "QuestDB " in text else text

    def tables(self) -> list[str]:
        """The time-series tables, as the store lists them: staging and system tables left out."""
        names = []
        for (table,) in self.rows("SELECT table_name FROM tables();"):
            with contextlib.suppress(naming.InvalidNameError):
                names.append(naming.table_name(table))
        return sorted(names)

    def wal_txns(self) -> dict[str, tuple[int, int]]:
        """Each WAL table's (applied, committed) transaction numbers."""
        return {name: (applied, committed) for name, _, applied, committed in self._wal_tables()}

    def _wal_tables(self) -> list[list[Any]]:
        return self.rows("SELECT name, suspended, writerTxn, sequencerTxn FROM wal_tables();")

    def in_checkpoint(self) -> bool:
        return bool(self.rows("SELECT in_progress FROM checkpoint_status();")[0][0])

    def await_applied(self, tables: list[str], timeout_s: float = 120.0) -> None:
        """Wait until QuestDB has applied every committed WAL transaction of `tables`."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = {name: row for name, *row in self._wal_tables() if name in tables}
            suspended = [name for name, (stopped, _, _) in state.items() if stopped]
            if suspended:
                raise BackupError(f"{self}: WAL of {', '.join(suspended)} suspended; see wal_tables()")
            behind = [name for name, (_, applied, committed) in state.items() if applied < committed]
            if not behind:
                return
            if time.monotonic() > deadline:
                raise BackupError(f"{self}: WAL of {', '.join(behind)} not applied after {timeout_s:.0f} s")
            time.sleep(0.05)

    def table_sum(self, table: str) -> dict[str, Any]:
        """Rows and checksum of one table: its CSV export in designated-timestamp and upsert-key order."""
        quoted = naming.quote(table)
        keys = [
            naming.quote(column)
            for column, designated, upsert in self.rows(
                f"SELECT \"column\", designated, upsertKey FROM table_columns('{table}') "
                "ORDER BY designated DESC;"
            )
            if designated or upsert
        ]
        order = f" ORDER BY {', '.join(keys)}" if keys else ""
        count = int(self.rows(f"SELECT count() FROM {quoted};")[0][0])
        return {"rows": count, "sha256": rows_digest(self.export(f"SELECT * FROM {quoted}{order};"))}

    def table_sums(self, tables: list[str]) -> TableSums:
        self.await_applied(tables)
        return {table: self.table_sum(table) for table in tables}


def _error_text(body: bytes) -> str | None:
    with contextlib.suppress(ValueError):
        payload = json.loads(body)
        if isinstance(payload, dict) and "error" in payload:
            return str(payload["error"])
    return None


@dataclass(frozen=True)
class Checkpointed:
    """What the manifest says of the QuestDB part of a backup."""

    version: str
    files: FileHashes
    tables: TableSums


def backup(server: QuestDBServer, root: Path, dest: Path, progress: Progress) -> Checkpointed:
    """Copy the server's root under a checkpoint into `dest`; the checkpoint is released on every path."""
    if not (root / "db").is_dir():
        raise BackupError(
            f"TRADING_QUESTDB_ROOT={root}: no QuestDB root there (no db folder); back up where the "
            "server's root is mounted"
        )
    if server.in_checkpoint():
        raise BackupError(
            f"{server} is already in checkpoint mode: another backup is running, or one died before "
            "releasing it (then run CHECKPOINT RELEASE)"
        )
    tables = server.tables()
    before = server.wal_txns()
    # CREATE is inside the try: interrupted while waiting for its answer, the server may hold a
    # checkpoint this call never heard of, which must be released too.
    release = True
    try:
        try:
            server.rows("CHECKPOINT CREATE;")
        except QuestDBRefused:
            release = False  # the server said no: no checkpoint of ours to release
            raise
        # The checkpoint writes its snapshot under the server's root: none here means another server's.
        if not (root / ".checkpoint").is_dir():
            raise BackupError(f"TRADING_QUESTDB_ROOT={root} is not the root of {server}")
        files: FileHashes = {}
        for part in ROOT_PARTS:
            copied = copy_tree(root / part, dest / part, progress, f"questdb: copying {part}")
            files.update({f"{part}/{rel}": entry for rel, entry in copied.items()})
    finally:
        if release:
            _release(server)
    with progress.step("questdb: table checksums"):
        sums = server.table_sums(tables)
    after = server.wal_txns()
    for table in tables:
        # Committed after the checkpoint's snapshot: the checksum shows rows the backup does not hold.
        if before.get(table, (0, 0))[1] != after.get(table, (0, 0))[1]:
            sums[table] = {"rows": None, "sha256": None}
    return Checkpointed(version=server.version(), files=files, tables=sums)


def _release(server: QuestDBServer, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            server.rows("CHECKPOINT RELEASE;")
            return
        except QuestDBRefused as err:
            # "Another checkpoint command is in progress": the CREATE this call stopped waiting for is
            # still running on the server; it ends in seconds.
            if "in progress" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def restore_root(source: Path, root: Path, force: bool, progress: Progress) -> None:
    """Copy a backup's QuestDB parts into `root` and leave the `_restore` trigger there; the next start of
    a server on `root` recovers the checkpoint. The server must not be running on `root`."""
    if root.exists() and any(root.iterdir()):
        if not force:
            raise BackupError(
                f"QuestDB root {root} is not empty; restore into a fresh folder, or pass --force"
            )
        for part in (*ROOT_PARTS, RESTORE_TRIGGER):
            target = root / part
            if target.is_dir():
                shutil.rmtree(target)
            target.unlink(missing_ok=True)
    for part in ROOT_PARTS:
        copy_tree(source / part, root / part, progress, f"questdb: restoring {part}")
    (root / RESTORE_TRIGGER).touch()


def cannot_start() -> str | None:
    """Why this installation cannot start a QuestDB of its own (no scripts/services.sh beside the
    package, as in an image without the source tree), or None."""
    from resources.local_servers import SERVICES

    if SERVICES.is_file():
        return None
    return (
        f"checking a QuestDB restore starts a server through {SERVICES}, which this installation lacks "
        "(run where the repository is checked out, with Java)"
    )


@contextlib.contextmanager
def started(
    root: Path, username: str | None, password: str | None, progress: Progress
) -> Iterator[QuestDBServer]:
    """A QuestDB of the project's release (scripts/services.sh) on `root`, on free loopback ports, stopped on
    the way out: on a restored root it recovers the checkpoint first."""
    # Lazily: the soak's server helper starts QuestDB exactly as the project's services script does.
    from resources.local_servers import PrivateQuestDB, ServerError

    with tempfile.TemporaryDirectory(prefix="questdb-restore-") as scratch:
        # services.sh runs QuestDB in $TRADING_DATA_DIR/questdb: a link lets it run on any root.
        os.symlink(root.resolve(), Path(scratch, "questdb"))
        questdb = PrivateQuestDB(Path(scratch))
        try:
            with progress.step(f"questdb: starting a server on {root}"):
                questdb.start()
        except ServerError as err:
            raise BackupError(f"QuestDB on {root} did not start: {str(err).splitlines()[0]}") from None
        try:
            host, port = questdb.addr.rsplit(":", 1)
            yield QuestDBServer(host, int(port), username, password)
        finally:
            questdb.stop()
