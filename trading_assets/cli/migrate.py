"""`trading-assets migrate`: bring the catalog's schema to the one this code ships, or say where it stands.

Every process migrates on its first catalog call; an upgrade runs this once, before the new version's
services start, so they never race on a long migration and a failing one stops the upgrade
(docs/operations.md)."""

import argparse
import sys

from trading_assets import settings as cfg


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    migrate = sub.add_parser("migrate", help="apply the catalog's pending migrations (or --status)")
    migrate.add_argument(
        "--status",
        action="store_true",
        help="only print the applied and pending versions; exit 1 while any is pending",
    )
    migrate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = cfg.Settings.from_env()
    try:
        with cfg.catalog(settings).process_config_and_initialize_cm() as catalog:
            before = catalog.schema_status()
            applied = [] if args.status else catalog.migrate()
            after = catalog.schema_status() if applied else before
    except (RuntimeError, OSError) as err:  # CatalogError, MigrationError, a lock timeout, no server
        print(f"error: {err}", file=sys.stderr)
        return 1
    where = f"{settings.catalog} catalog"
    if applied:
        print(
            f"{where}: applied {', '.join(applied)}; schema {after.version} "
            f"(this code needs {after.expected})"
        )
    elif after.pending:
        print(
            f"{where}: schema {after.version or 'empty'}, pending {', '.join(after.pending)} "
            f"(this code needs {after.expected}; run `trading-assets migrate`)"
        )
    else:
        print(f"{where}: schema {after.version}, up to date")
    return 1 if args.status and after.pending else 0
