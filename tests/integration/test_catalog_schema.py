"""Both dialects' migrations build one schema: the same tables, columns (in order) and types, read back from
the databases themselves (information_schema of a real Postgres schema and a real DuckDB file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import psycopg

from resources.duckdb_catalog import DuckDBCatalog
from resources.postgres_catalog import PostgresCatalog

COLUMNS = (
    "SELECT table_name, column_name, {type}, numeric_precision, numeric_scale "
    "FROM information_schema.columns WHERE table_schema = {schema} ORDER BY table_name, ordinal_position"
)
# DuckDB's type names as Postgres' udt_name spells the same type; an unknown name is kept, so it differs.
DUCKDB_TYPES = {
    "BOOLEAN": "bool",
    "SMALLINT": "int2",
    "INTEGER": "int4",
    "BIGINT": "int8",
    "DOUBLE": "float8",
    "VARCHAR": "text",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
}

Column = tuple[str, str, str]


def postgres_columns(settings: dict[str, Any], schema: str, admin: psycopg.Connection) -> list[Column]:
    catalog = PostgresCatalog(**settings, schema_name=schema, pool_min_size=0, pool_max_size=1)
    try:
        catalog.migrate()
    finally:
        catalog.close()
    rows = admin.execute(COLUMNS.format(type="udt_name", schema="%s"), [schema]).fetchall()
    # An array's udt_name is its element's with a leading underscore; a numeric's shows no precision.
    return [
        (table, column, f"{kind[1:]}[]" if kind[0] == "_" else kind + _precision(kind, precision, scale))
        for table, column, kind, precision, scale in rows
    ]


def _precision(kind: str, precision: int | None, scale: int | None) -> str:
    return f"({precision},{scale})" if kind == "numeric" else ""


def duckdb_columns(path: Path) -> list[Column]:
    DuckDBCatalog(path=str(path)).migrate()
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(COLUMNS.format(type="data_type", schema="current_schema()")).fetchall()

    def normalised(kind: str) -> str:
        element = kind.removesuffix("[]")
        if element.startswith("DECIMAL("):
            return "numeric" + element.removeprefix("DECIMAL") + kind[len(element) :]
        return DUCKDB_TYPES.get(element, element) + kind[len(element) :]

    return [(table, column, normalised(kind)) for table, column, kind, *_ in rows]


def test_postgres_and_duckdb_migrations_build_the_same_tables_columns_and_types(
    pg_settings: dict[str, Any], pg_schema_name: str, pg_admin: psycopg.Connection, tmp_path: Path
) -> None:
    postgres = postgres_columns(pg_settings, pg_schema_name, pg_admin)
    embedded = duckdb_columns(tmp_path / "catalog.duckdb")

    assert {table for table, *_ in postgres} >= {"datasets", "walkforward_runs", "simulation_trades", "fills"}
    assert ("fills", "quantity", "numeric(38,18)") in postgres
    assert embedded == postgres
