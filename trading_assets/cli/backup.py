"""`trading-assets backup`, `restore` and `verify-backup`: backups of the settings' profile (Postgres,
DuckDB files, QuestDB, artifacts) with a manifest of checksums; see docs/operations/backup.md."""

from __future__ import annotations

import argparse
import functools
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trading_assets.cli.tables import print_table

WHICH = "a backup folder, a backup's name in $TRADING_BACKUP_DIR, or latest"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = sub.add_parser("backup", help="back up the catalog, Dagster storage, time series and artifacts")
    backup.add_argument("--out", help="the folder backups go into (default $TRADING_BACKUP_DIR)")
    backup.add_argument("--keep", type=_at_least_one, help="then delete the oldest complete backups beyond N")
    backup.set_defaults(run=_backup)

    restore = sub.add_parser("restore", help="restore a backup into fresh databases and folders, then verify")
    restore.add_argument("backup", help=WHICH)
    restore.add_argument("--force", action="store_true", help="overwrite targets that are not empty")
    restore.add_argument("--no-verify", action="store_true", help="skip comparing what was restored")
    restore.set_defaults(run=_restore)

    verify = sub.add_parser("verify-backup", help="check a backup's files and tables against its manifest")
    verify.add_argument("backup", help=WHICH)
    verify.add_argument(
        "--restore-check",
        action="store_true",
        help="also restore its Postgres dumps and QuestDB root into scratch ones and compare their tables",
    )
    verify.set_defaults(run=_verify)


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """SIGTERM (a container stopping) unwinds like Ctrl-C, so a QuestDB checkpoint is released and a
    partial backup removed; a failure ends in one line on stderr."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        import duckdb
        import psycopg

        from trading_assets.ops.backup_files import BackupError

        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return command(args)
        except KeyboardInterrupt:
            print("error: interrupted; nothing partial was kept", file=sys.stderr)
            return 130
        except (BackupError, RuntimeError, OSError, ValueError, psycopg.Error, duckdb.Error) as err:
            print(f"error: {(str(err).strip() or type(err).__name__).splitlines()[0]}", file=sys.stderr)
            return 1
        finally:
            signal.signal(signal.SIGTERM, previous)

    return run


@_guarded
def _backup(args: argparse.Namespace) -> int:
    from trading_assets.ops import backup
    from trading_assets.ops.backup_files import Progress, human_bytes

    started = time.perf_counter()
    profile = backup.Profile.from_env()
    out = Path(args.out).resolve() if args.out else profile.backup_dir
    path = backup.create(profile, Progress.console(), out)
    deleted = backup.prune(out, args.keep) if args.keep is not None else []
    manifest = backup.load_manifest(path)
    size = human_bytes(sum(f["bytes"] for f in manifest["files"].values()))
    print(f"backup {path.name}: {size} in {time.perf_counter() - started:.1f} s -> {path}")
    print_table("contents", ("component", "what"), backup.contents(manifest))
    if args.keep is not None:
        names = ", ".join(p.name for p in deleted) or "none"
        print(f"kept {len(backup.complete_backups(out))} backups, deleted {len(deleted)}: {names}")
    return 0


@_guarded
def _verify(args: argparse.Namespace) -> int:
    from trading_assets.ops import backup
    from trading_assets.ops.backup_files import Progress

    profile = backup.Profile.from_env()
    path = backup.resolve(args.backup, profile)
    return _report(
        f"backup {path.name}", backup.verify(path, profile, Progress.console(), args.restore_check)
    )


@_guarded
def _restore(args: argparse.Namespace) -> int:
    from trading_assets.ops import backup
    from trading_assets.ops.backup_files import Progress

    profile = backup.Profile.from_env()
    path = backup.resolve(args.backup, profile)
    summary = backup.restore(path, profile, Progress.console(), args.force, not args.no_verify)
    return _report(f"restored {path.name}", summary)


def _report(title: str, summary: Any) -> int:
    """The summary's table, each difference, and one error line naming the first if any."""
    print_table(title, ("component", "what", "result"), summary.rows)
    for line in summary.differences:
        print(f"  differs: {line}")
    if summary.differences:
        more = f" (and {len(summary.differences) - 1} more above)" if len(summary.differences) > 1 else ""
        print(f"error: {summary.differences[0]}{more}", file=sys.stderr)
        return 1
    print("OK: everything checked matches the manifest")
    return 0
