"""The production catalog: Postgres through a psycopg connection pool, in one schema."""

from __future__ import annotations

import re

import dagster as dg
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool
from pydantic import Field, PrivateAttr

from resources.catalog import Catalog
from resources.catalog.dialect import PostgresDialect
from trading_assets.records import CatalogError

# Unquoted Postgres identifiers: anything else would need quoting inside `-c search_path=...`.
_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresCatalog(Catalog):
    """The catalog in Postgres, in `schema_name` (created by `migrate()` if missing).

    Connections come from a `psycopg_pool.ConnectionPool` opened on first use and closed after the
    run (or by `close()`), with TimeZone UTC. Calls that lose their connection are retried with
    exponential backoff (see `PostgresDialect`).
    """

    host: str = Field(default="localhost", description="Postgres host.")
    port: int = Field(default=5432, description="Postgres port.")
    user: str = Field(default="postgres", description="Postgres user.")
    password: str | None = Field(default=None, description='Password; pass dg.EnvVar("PGPASSWORD").')
    dbname: str = Field(default="trading_assets", description="Database name.")
    schema_name: str = Field(
        default="public", description="Schema holding the catalog tables (lowercase identifier)."
    )
    pool_min_size: int = Field(default=1, ge=0, description="Connections the pool keeps open.")
    pool_max_size: int = Field(default=4, ge=1, description="Most connections the pool opens.")
    pool_timeout_s: float = Field(default=30.0, gt=0, description="Longest wait for a pooled connection.")
    retry_attempts: int = Field(default=5, ge=1, description="Tries per call on connection errors.")
    retry_delay_s: float = Field(default=0.1, ge=0, description="First backoff delay; doubles per retry.")

    _open: PostgresDialect | None = PrivateAttr(default=None)

    def close(self) -> None:
        """Close the pool; the next call opens a new one."""
        if self._open is not None:
            self._open.pool.close()
            self._open = None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Release the pool's connections when the run (or step process) is done with the resource."""
        self.close()

    def _dialect(self) -> PostgresDialect:
        if self._open is None:
            # Checked here, not by a validator: an EnvVar's value is only known at run time.
            if not _SCHEMA_RE.fullmatch(self.schema_name):
                raise CatalogError(
                    f"schema_name {self.schema_name!r} is not a lowercase identifier ([a-z_][a-z0-9_]*)"
                )
            conninfo = make_conninfo(
                host=self.host, port=self.port, user=self.user, password=self.password, dbname=self.dbname
            )
            pool = ConnectionPool(
                conninfo,
                kwargs={
                    "autocommit": True,
                    "options": f"-c search_path={self.schema_name} -c TimeZone=UTC",
                    # Shown in pg_stat_activity, so a DBA can tell which catalog holds a session.
                    "application_name": f"trading_assets catalog {self.schema_name}",
                },
                min_size=self.pool_min_size,
                max_size=self.pool_max_size,
                timeout=self.pool_timeout_s,
                name=f"catalog-{self.schema_name}",
                open=False,
            )
            pool.open()
            self._open = PostgresDialect(
                pool, self.schema_name, self.pool_timeout_s, self.retry_attempts, self.retry_delay_s
            )
        return self._open
