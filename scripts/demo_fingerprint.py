"""Fingerprint what `make demo` leaves in a data directory, to prove a refactor changed no output.

    python scripts/demo_fingerprint.py data > before.json     # on the old commit
    python scripts/demo_fingerprint.py data > after.json      # on the new one
    python scripts/demo_fingerprint.py --compare before.json after.json

Every time-series table is hashed column by column (rows in timestamp order), every catalog table column
by column (rows in a stable order), and every artifact file (models, charts, sweeps) byte for byte.
`--compare` lists what differs, leaving out only what changes on every run of the same commit (run ids,
wall-clock stamps), which it learns from `--volatile` fingerprints of two runs of one commit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import duckdb


def _column_hashes(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    columns = [row[0] for row in con.execute(f'DESCRIBE "{table}"').fetchall()]
    order = ", ".join(f'"{c}"::VARCHAR' for c in columns)
    rows = con.sql(f'SELECT * FROM "{table}" ORDER BY {order}').to_arrow_table()
    hashes = {"#rows": str(rows.num_rows)}
    for name in columns:
        digest = hashlib.sha256()
        for value in rows.column(name).to_pylist():
            digest.update(repr(value).encode())
        hashes[name] = digest.hexdigest()[:16]
    return hashes


def _database(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [
            row[0]
            for row in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1"
            ).fetchall()
        ]
        return {table: _column_hashes(con, table) for table in tables}


def fingerprint(data_dir: Path) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for name in ("timeseries", "catalog"):
        for table, columns in _database(data_dir / f"{name}.duckdb").items():
            found[f"{name}:{table}"] = columns
    artifacts = data_dir / "artifacts"
    files = sorted(p for p in artifacts.rglob("*") if p.is_file()) if artifacts.exists() else []
    found["artifacts"] = {
        str(p.relative_to(artifacts)): hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in files
    }
    return found


def _flat(prints: dict[str, dict[str, str]]) -> dict[str, str]:
    return {f"{group} {key}": value for group, entries in prints.items() for key, value in entries.items()}


def compare(before: dict, after: dict, volatile: set[str]) -> list[str]:
    old, new = _flat(before), _flat(after)
    return [
        f"{key}: {old.get(key, '(missing)')} -> {new.get(key, '(missing)')}"
        for key in sorted(old.keys() | new.keys())
        if key not in volatile and old.get(key) != new.get(key)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=Path)
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    parser.add_argument(
        "--volatile", nargs=2, type=Path, metavar=("RUN1", "RUN2"), help="two runs of one commit"
    )
    args = parser.parse_args(argv)
    if args.compare is None:
        json.dump(fingerprint(args.data_dir), sys.stdout, indent=1, sort_keys=True)
        return 0
    volatile = set()
    if args.volatile:
        first, second = (_flat(json.loads(p.read_text())) for p in args.volatile)
        volatile = {key for key in first.keys() | second.keys() if first.get(key) != second.get(key)}
    before, after = (json.loads(p.read_text()) for p in args.compare)
    differences = compare(before, after, volatile)
    print(f"{len(_flat(after))} fingerprints, {len(volatile)} volatile (differ between two runs)")
    for line in differences:
        print(line)
    print("identical" if not differences else f"{len(differences)} differ")
    return 1 if differences else 0


if __name__ == "__main__":
    raise SystemExit(main())
