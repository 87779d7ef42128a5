"""Table and measurement names: the only place that builds them.

Every time-series table name is assembled here from parts that were validated first, so no raw
user string (a file stem, a config value) ever reaches SQL or ILP. Validated names are plain ASCII
identifiers that need no quoting in Postgres, DuckDB or QuestDB; the stores still quote them.

Conventions (docs/naming.md):
    <dataset>            bars
    <dataset>_<version>  indicator set
    <dataset>_run<n>     walkforward predictions
    <dataset>_sim<n>     trading simulation
    live_<venue>_<base>_<quote>_<timeframe>   bars recorded from a venue (datasets may not start "live_")
"""

from __future__ import annotations

import re
from pathlib import Path

# Postgres truncates identifiers at 63 bytes; staying below it keeps every backend exact.
MAX_TABLE_NAME = 63
MAX_DATASET_NAME = 40
MAX_VERSION = 16
# A strategy's name leads its orders' client order ids, which Binance caps at 36 characters
# (trading_assets.orders.client_order_id).
MAX_STRATEGY_NAME = 24
# Recorded live bars own this prefix; no dataset may take it.
LIVE_PREFIX = "live_"

_DATASET_RE = re.compile(r"[a-z][a-z0-9_]*")
_VERSION_RE = re.compile(r"[a-z0-9][a-z0-9_]*")
# Suffixes that other conventions own: a dataset called "btc_run1" would shadow run 1 of "btc", and one
# called "btc_2" indicator set version 2 of "btc".
_OWNED_SUFFIX_RE = re.compile(r"_(run|sim)?[0-9]+$")

# Words that are reserved or special in at least one of Postgres, DuckDB and QuestDB, plus the
# catalog's own table names. A table named "select" works only when quoted everywhere, forever.
RESERVED_WORDS = frozenset(
    """
    all alter analyse analyze and any array as asc asymmetric authorization between binary both by
    case cast check collate column constraint create cross current_catalog current_date current_role
    current_schema current_time current_timestamp current_user default deferrable delete desc distinct
    do drop else end except exists false fetch for foreign from full grant group having ilike in index
    initially inner insert intersect into is isnull join latest lateral leading left like limit
    localtime localtimestamp natural not notnull null offset on only or order outer over overlaps
    partition pivot placing primary qualify references returning right sample select session_user
    similar some symmetric table tablesample then timestamp to trailing true truncate union unique
    unpivot update user using variadic verbose when where window with
    datasets indicator_sets walkforward_runs walkforward_folds walkforward_thresholds simulations
    simulation_trades schema_migrations information_schema pg_catalog main public temp job_requests
    job_request_runs strategies signals orders order_events fills positions reconciliation_runs
    service_heartbeats trading_halts
    """.split()  # noqa: SIM905
)


class InvalidNameError(ValueError):
    """A name part that cannot become part of a table name, with the reason."""


def _check_part(kind: str, value: object, pattern: re.Pattern[str], max_len: int, hint: str) -> str:
    if not isinstance(value, str):
        raise InvalidNameError(f"{kind} must be a string, got {type(value).__name__}")
    if value == "":
        raise InvalidNameError(f"{kind} is empty")
    if len(value) > max_len:
        raise InvalidNameError(f"{kind} {value[:20]!r}... is {len(value)} characters; the limit is {max_len}")
    if not value.isascii():
        raise InvalidNameError(f"{kind} {value!r} contains non-ASCII characters; {hint}")
    if not pattern.fullmatch(value):
        raise InvalidNameError(f"{kind} {value!r} is not a valid name; {hint}")
    if "__" in value:
        raise InvalidNameError(f"{kind} {value!r} contains '__', which is reserved for staging tables")
    if value.endswith("_"):
        raise InvalidNameError(f"{kind} {value!r} ends with '_'")
    return value


def dataset_name(value: object) -> str:
    """Validate a dataset name and return it unchanged."""
    name = _check_part(
        "dataset name",
        value,
        _DATASET_RE,
        MAX_DATASET_NAME,
        "use lowercase ASCII letters, digits and '_', starting with a letter",
    )
    if name in RESERVED_WORDS:
        raise InvalidNameError(f"dataset name {name!r} is a reserved SQL word")
    if _OWNED_SUFFIX_RE.search(name):
        raise InvalidNameError(
            f"dataset name {name!r} ends like an indicator, run or simulation table "
            "('_<n>', '_run<n>', '_sim<n>')"
        )
    if name.startswith(LIVE_PREFIX):
        raise InvalidNameError(
            f"dataset name {name!r} starts with {LIVE_PREFIX!r}, kept for recorded live bars"
        )
    return name


def strategy_name(value: object) -> str:
    """Validate a live strategy's name (lowercase ASCII letters, digits and '_', at most 24 characters) and
    return it unchanged."""
    return _check_part(
        "strategy name",
        value,
        _DATASET_RE,
        MAX_STRATEGY_NAME,
        "use lowercase ASCII letters, digits and '_', starting with a letter",
    )


def dataset_from_path(path: str | Path) -> str:
    """The dataset name for an export file: its stem, with ASCII letters lowercased, validated."""
    stem = Path(path).name.split(".", 1)[0]
    # Only ASCII is lowercased: str.lower() on a look-alike could turn it into a valid name.
    lowered = "".join(c.lower() if "A" <= c <= "Z" else c for c in stem)
    try:
        return dataset_name(lowered)
    except InvalidNameError as err:
        raise InvalidNameError(f"{Path(path).name}: {err} (rename the file or pass a dataset name)") from None


def version_part(value: object) -> str:
    """Validate an indicator-set version (e.g. '1', 'v2', 'fast_ma')."""
    version = _check_part(
        "indicator version",
        value,
        _VERSION_RE,
        MAX_VERSION,
        "use lowercase ASCII letters, digits and '_'",
    )
    if re.fullmatch(r"(run|sim)[0-9]+", version):
        raise InvalidNameError(f"indicator version {version!r} would name a run or simulation table")
    return version


def _number(kind: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n > 999_999:
        raise InvalidNameError(f"{kind} must be an integer between 1 and 999999, got {n!r}")
    return n


def _table(name: str) -> str:
    if len(name) > MAX_TABLE_NAME:
        raise InvalidNameError(f"table name {name!r} is longer than {MAX_TABLE_NAME} characters")
    return name


def bars_table(dataset: str) -> str:
    """`<dataset>`: the bars of one dataset."""
    return _table(dataset_name(dataset))


def indicator_table(dataset: str, version: str) -> str:
    """`<dataset>_<version>`: one indicator set computed on a dataset."""
    return _table(f"{dataset_name(dataset)}_{version_part(version)}")


def run_table(dataset: str, run: int) -> str:
    """`<dataset>_run<n>`: predictions of walkforward run n."""
    return _table(f"{dataset_name(dataset)}_run{_number('run number', run)}")


def sim_table(dataset: str, sim: int) -> str:
    """`<dataset>_sim<n>`: trades and equity of simulation n."""
    return _table(f"{dataset_name(dataset)}_sim{_number('simulation number', sim)}")


_VENUE_RE = re.compile(r"[a-z][a-z0-9]*")
_SYMBOL_PART_RE = re.compile(r"[A-Za-z0-9]+")
_TIMEFRAME_RE = re.compile(r"[1-9][0-9]*[smhdwM]")


def live_bars_table(venue: str, symbol: str, timeframe: str) -> str:
    """`live_<venue>_<base>_<quote>_<timeframe>`: closed bars of `symbol` (a ccxt symbol such as
    "BTC/USDT", or "BTC/USDT:USDT" for a swap) recorded from `venue` (a ccxt id such as "binance")."""
    _check_part("venue", venue, _VENUE_RE, 20, "use a ccxt exchange id (lowercase letters and digits)")
    if not isinstance(symbol, str) or not symbol.isascii():
        raise InvalidNameError(f"symbol {symbol!r} must be an ASCII ccxt symbol such as 'BTC/USDT'")
    parts = re.split(r"[/:]", symbol)
    if len(parts) < 2 or not all(_SYMBOL_PART_RE.fullmatch(p) for p in parts):
        raise InvalidNameError(f"symbol {symbol!r} is not a ccxt symbol such as 'BTC/USDT'")
    if not isinstance(timeframe, str) or not _TIMEFRAME_RE.fullmatch(timeframe):
        raise InvalidNameError(f"timeframe {timeframe!r} is not a ccxt timeframe such as '1m', '1h' or '1d'")
    frame = timeframe if timeframe[-1] != "M" else timeframe[:-1] + "mo"  # 1M (a month) vs 1m (a minute)
    return _table(f"{LIVE_PREFIX}{venue}_{'_'.join(p.lower() for p in parts)}_{frame.lower()}")


def staging_table(table: str) -> str:
    """A scratch table beside `table`, for stores that replace a table by rename (QuestDB)."""
    return f"{table_name(table)}__staging"


def table_name(value: object) -> str:
    """Validate a name that claims to be a table name built by this module (e.g. read from the catalog)."""
    name = _check_part(
        "table name",
        value,
        _DATASET_RE,
        MAX_TABLE_NAME,
        "table names are built by trading_assets.naming",
    )
    if name in RESERVED_WORDS:
        raise InvalidNameError(f"table name {name!r} is a reserved SQL word")
    return name


_COLUMN_RE = re.compile(r"[a-z][a-z0-9_]*")


def column_name(value: object) -> str:
    """Validate a column name of a time-series table."""
    name = _check_part("column name", value, _COLUMN_RE, 63, "use lowercase ASCII letters, digits and '_'")
    if name in RESERVED_WORDS:
        raise InvalidNameError(f"column name {name!r} is a reserved SQL word")
    return name


def quote(identifier: str) -> str:
    """Double-quote an identifier that was validated by this module (defence in depth)."""
    if '"' in identifier or not identifier.isascii():
        raise InvalidNameError(f"refusing to quote unvalidated identifier {identifier!r}")
    return f'"{identifier}"'
