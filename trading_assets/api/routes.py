"""The API's routes: catalog reads, time-series rows (JSON pages, Arrow IPC, Parquet, CSV), job requests."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

import pyarrow as pa
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from resources.catalog import Catalog
from resources.timeseries import StoreError, TimeSeriesStore
from trading_assets import naming
from trading_assets.api.models import (
    Dataset,
    Gaps,
    Histogram,
    HistogramPage,
    IndicatorSet,
    JobRequest,
    JobRequestDetail,
    MonthlyReturn,
    Problem,
    RowsPage,
    SeriesColumn,
    SeriesPage,
    Simulation,
    Threshold,
    TradePage,
    WalkforwardRun,
    WalkforwardRunDetail,
)
from trading_assets.api.settings import ApiSettings, token_matches
from trading_assets.records import JOB_KINDS, JOB_STATUSES, NewJobRequest, SimulationTrade
from trading_assets.simulation.config import SimulationConfig
from trading_assets.walkforward.config import WalkforwardConfig

catalog_router = APIRouter(tags=["catalog"])
series_router = APIRouter(tags=["time series"])
jobs_router = APIRouter(tags=["jobs"])

# Every route may answer with these (422 as a `Problem`, not FastAPI's own error shape).
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "a token is needed (or was wrong)"},
    404: {"model": Problem, "description": "no such thing in the catalog"},
    409: {"model": Problem, "description": "a stored file is not the one the catalog recorded"},
    422: {"model": Problem, "description": "a parameter or field is wrong: `problems` names each"},
}
# JSON pages of rows: the default and the most rows a page holds; downloads have no limit by default.
DEFAULT_PAGE_ROWS = 1_000
MAX_PAGE_ROWS = 10_000
MAX_DOWNLOAD_ROWS = 1 << 40
STREAM_BATCH_ROWS = 100_000
FORMATS = ("json", "arrow", "parquet", "csv")
MEDIA = {
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv",
}
EVENT_POLL_S = 1.0


# --- access ----------------------------------------------------------------------------------------------


def _settings(request: Request) -> ApiSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _bearer(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def require_read(
    request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> None:
    """Reads are open unless TRADING_API_READ_TOKEN is set; the write token reads too."""
    settings = _settings(request)
    if settings.read_token is None:
        return
    given = _bearer(authorization)
    if token_matches(given, settings.read_token) or (
        settings.write_token is not None and token_matches(given, settings.write_token)
    ):
        return
    raise HTTPException(401, "this API needs a bearer token to read", {"WWW-Authenticate": "Bearer"})


def require_write(
    request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> None:
    """Writes need TRADING_API_WRITE_TOKEN's value; with none set, the API takes no writes at all."""
    settings = _settings(request)
    if settings.write_token is None:
        raise HTTPException(403, "writes are switched off: the server has no TRADING_API_WRITE_TOKEN")
    if not token_matches(_bearer(authorization), settings.write_token):
        raise HTTPException(
            401, "writing needs the write token as a bearer token", {"WWW-Authenticate": "Bearer"}
        )


def _catalog(request: Request) -> Catalog:
    return request.app.state.catalog  # type: ignore[no-any-return]


def _store(request: Request) -> TimeSeriesStore:
    return request.app.state.store  # type: ignore[no-any-return]


CatalogDep = Annotated[Catalog, Depends(_catalog)]
StoreDep = Annotated[TimeSeriesStore, Depends(_store)]
# Names in paths: any text, checked by `naming` (a bad one is 422 naming why), never put in SQL raw.
NamePath = Annotated[str, Path(min_length=1, max_length=200)]


def _checked(kind: str, value: str, check: Any) -> str:
    try:
        return check(value)  # type: ignore[no-any-return]
    except ValueError as err:
        raise HTTPException(
            422, {"detail": str(err), "problems": [{"field": kind, "problem": str(err)}]}
        ) from None


def _refused(field: str, problem: str, detail: str | None = None) -> HTTPException:
    """A 422 naming the field that is wrong (a query parameter, a path part, a body field's path)."""
    problems = [{"field": field, "problem": problem}]
    return HTTPException(422, {"detail": detail or f"{field}: {problem}", "problems": problems})


def _not_found(what: str) -> HTTPException:
    return HTTPException(404, f"no {what} in the catalog")


# --- catalog ---------------------------------------------------------------------------------------------


@catalog_router.get("/datasets", response_model=list[Dataset], responses=ERRORS)
def list_datasets(catalog: CatalogDep) -> list[Dataset]:
    """Every imported dataset: its bars table, columns, range and interval."""
    return [Dataset.of(record) for record in catalog.list_datasets()]


@catalog_router.get("/datasets/{name}", response_model=Dataset, responses=ERRORS)
def get_dataset(name: NamePath, catalog: CatalogDep) -> Dataset:
    record = catalog.get_dataset(_checked("name", name, naming.dataset_name))
    if record is None:
        raise _not_found(f"dataset {name!r}")
    return Dataset.of(record)


@catalog_router.get("/datasets/{name}/gaps", response_model=Gaps, responses=ERRORS)
def dataset_gaps(name: NamePath, catalog: CatalogDep, store: StoreDep) -> Gaps:
    """The dataset's gaps, computed now from its stored timestamps with its calendar and time zone."""
    from trading_assets.compute.bar_checks import bars_report
    from trading_assets.compute.calendars import trading_calendar

    record = catalog.get_dataset(_checked("name", name, naming.dataset_name))
    if record is None:
        raise _not_found(f"dataset {name!r}")
    read = json.loads(record.read_options or "{}")
    ts = store.read(record.table_name, columns=["ts"]).column("ts").cast(pa.int64()).to_numpy()
    if ts.size == 0:
        raise _not_found(f"bars of dataset {name!r}")
    calendar = read.get("calendar")
    report = bars_report(ts, trading_calendar(calendar) if calendar else None, read.get("timezone") or "UTC")
    return Gaps(
        dataset=record.name,
        calendar=report.calendar,
        rows=report.rows,
        gap_count=report.gap_count,
        missing_bars=report.missing_bars,
        largest_gap_bars=report.largest_gap_bars,
        largest_gap_s=report.largest_gap_s,
        largest_gap_after=report.largest_gap_after,
        off_calendar_bars=report.off_calendar_bars,
    )


@catalog_router.get("/indicator-sets", response_model=list[IndicatorSet], responses=ERRORS)
def list_indicator_sets(catalog: CatalogDep, dataset: str | None = None) -> list[IndicatorSet]:
    """Indicator sets (of one dataset if given): measurement table, columns with lookbacks, status, range."""
    if dataset is not None:
        dataset = _checked("dataset", dataset, naming.dataset_name)
    return [IndicatorSet.of(record) for record in catalog.list_indicator_sets(dataset)]


@catalog_router.get("/indicator-sets/{measurement}", response_model=IndicatorSet, responses=ERRORS)
def get_indicator_set(measurement: NamePath, catalog: CatalogDep) -> IndicatorSet:
    record = catalog.get_indicator_set_by_measurement(_checked("measurement", measurement, naming.table_name))
    if record is None:
        raise _not_found(f"indicator set {measurement!r}")
    return IndicatorSet.of(record)


@catalog_router.get("/walkforward-runs", response_model=list[WalkforwardRun], responses=ERRORS)
def list_walkforward_runs(catalog: CatalogDep, dataset: str | None = None) -> list[WalkforwardRun]:
    """Walkforward runs (of one dataset if given), with config, hyperparameters and status."""
    if dataset is not None:
        dataset = _checked("dataset", dataset, naming.dataset_name)
    return [WalkforwardRun.of(record) for record in catalog.list_walkforward_runs(dataset)]


@catalog_router.get("/walkforward-runs/{name}", response_model=WalkforwardRunDetail, responses=ERRORS)
def get_walkforward_run(name: NamePath, catalog: CatalogDep) -> WalkforwardRunDetail:
    """One run with its folds (windows, metrics, model hash) and thresholds."""
    record = catalog.get_walkforward_run(_checked("name", name, naming.table_name))
    if record is None:
        raise _not_found(f"walkforward run {name!r}")
    return WalkforwardRunDetail(
        **WalkforwardRun.of(record).model_dump(),
        folds=[_fold(f) for f in catalog.list_walkforward_folds(record.name)],
        thresholds=[Threshold.of(t) for t in catalog.list_walkforward_thresholds(record.name)],
    )


@catalog_router.get(
    "/walkforward-runs/{name}/folds/{fold}/model",
    responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}, "description": "the model"}},
)
def fold_model(
    name: NamePath, fold: Annotated[int, Path(ge=0, le=1_000_000)], catalog: CatalogDep
) -> Response:
    """A fold's XGBoost model file (UBJSON), as trained; refused (409) when its bytes no longer have the
    SHA-256 the catalog recorded."""
    import hashlib

    name = _checked("name", name, naming.table_name)
    if catalog.get_walkforward_run(name) is None:
        raise _not_found(f"walkforward run {name!r}")
    stored = {f.window.fold: f for f in catalog.list_walkforward_folds(name)}.get(fold)
    result = stored.result if stored else None
    if result is None or result.model_path is None or result.model_sha256 is None:
        raise _not_found(f"trained model of fold {fold} of {name!r}")
    try:
        raw = FilePath(result.model_path).read_bytes()
    except OSError:
        raise _not_found(f"model file of fold {fold} of {name!r} (it was moved or deleted)") from None
    if hashlib.sha256(raw).hexdigest() != result.model_sha256:
        raise HTTPException(
            409, f"the model file of fold {fold} of {name!r} is not the one the catalog recorded"
        )
    filename = f"{name}_fold{fold:03d}.ubj"
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "X-Model-SHA256": result.model_sha256,
    }
    return Response(raw, media_type="application/octet-stream", headers=headers)


def _fold(record: Any) -> Any:
    from trading_assets.api.models import Fold

    return Fold.of(record)


@catalog_router.get("/simulations", response_model=list[Simulation], responses=ERRORS)
def list_simulations(
    catalog: CatalogDep, dataset: str | None = None, run: str | None = None
) -> list[Simulation]:
    """Simulations (of one dataset and/or walkforward run if given), with their metrics."""
    if dataset is not None:
        dataset = _checked("dataset", dataset, naming.dataset_name)
    if run is not None:
        run = _checked("run", run, naming.table_name)
    return [Simulation.of(record) for record in catalog.list_simulations(dataset, run)]


@catalog_router.get("/simulations/{name}", response_model=Simulation, responses=ERRORS)
def get_simulation(name: NamePath, catalog: CatalogDep) -> Simulation:
    record = catalog.get_simulation(_checked("name", name, naming.table_name))
    if record is None:
        raise _not_found(f"simulation {name!r}")
    return Simulation.of(record)


@catalog_router.get(
    "/simulations/{name}/monthly-returns",
    response_model=list[MonthlyReturn],
    responses=ERRORS,
    response_model_by_alias=True,
)
def monthly(name: NamePath, catalog: CatalogDep, store: StoreDep) -> list[MonthlyReturn]:
    """The sim's return in every calendar month (UTC) of its series: the month's last equity over the
    previous month's (over the initial cash for the first)."""
    from trading_assets.compute.monthly import monthly_returns

    name = _checked("name", name, naming.table_name)
    record = catalog.get_simulation(name)
    if record is None:
        raise _not_found(f"simulation {name!r}")
    if record.row_count is None:
        return []
    series = store.read(name, columns=["ts", "equity"])
    initial = float(json.loads(record.config)["sim"]["initial_cash"])
    months = monthly_returns(
        series.column("ts").cast(pa.int64()).to_numpy(), series.column("equity").to_numpy(), initial
    )
    return [MonthlyReturn(year=y, month=m, value=None if math.isnan(r) else r) for y, m, r in months]


TradeSort = Literal[tuple(f.name for f in dataclasses.fields(SimulationTrade))]  # type: ignore[valid-type]


@catalog_router.get("/simulations/{name}/trades", response_model=TradePage, responses=ERRORS)
def list_trades(
    name: NamePath,
    catalog: CatalogDep,
    sort: TradeSort = "trade",  # type: ignore[valid-type]
    order: Literal["asc", "desc"] = "asc",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_ROWS)] = 100,
    cursor: Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]+$")] = None,
) -> TradePage:
    """A page of the sim's trades, sorted by any field (ties by trade number); `cursor` from the last page."""
    name = _checked("name", name, naming.table_name)
    if catalog.get_simulation(name) is None:
        raise _not_found(f"simulation {name!r}")
    trades = catalog.list_simulation_trades(name)
    # NaN sorts last either way; ties keep the trade order.
    trades.sort(key=lambda t: (_sort_key(getattr(t, sort)), t.trade), reverse=order == "desc")
    start = int(cursor or 0)
    page = trades[start : start + limit]
    following = start + limit
    return TradePage(
        simulation=name,
        total=len(trades),
        sort=sort,
        order=order,
        trades=page,
        next_cursor=str(following) if following < len(trades) else None,
    )


def _sort_key(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return (1, 0.0)
    return (0, value)


# --- time series -----------------------------------------------------------------------------------------


def _catalogued(catalog: Catalog, table: str) -> bool:
    """Whether `table` is one the catalog describes: a dataset's bars, an indicator set's values, a run's
    predictions or a sim's series. Only those are served (not staging tables or strays)."""
    if catalog.get_dataset(table) is not None and catalog.get_dataset(table).table_name == table:  # type: ignore[union-attr]
        return True
    if catalog.get_indicator_set_by_measurement(table) is not None:
        return True
    run = catalog.get_walkforward_run(table)
    if run is not None and run.prediction_rows is not None:
        return True
    sim = catalog.get_simulation(table)
    return sim is not None and sim.row_count is not None


def _cursor_start(cursor: str | None, start: datetime | None) -> datetime | None:
    """The cursor is the last row's timestamp in microseconds since the epoch; the next page starts after
    it (a cursor before `start` cannot move the window back)."""
    if cursor is None:
        return start
    after = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(cursor) + 1)
    return after if start is None or after > start else start


BOUND = "ISO 8601: a date (00:00 UTC) or a date-time with 'Z' or an offset"


def _bound(field: str, text: str | None) -> datetime | None:
    """A window bound, as `trading-assets export` takes it: a date alone is 00:00 UTC; a date-time needs a
    zone, since the stores hold UTC and guessing one would shift the window without a word."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _refused(field, f"{text!r} is not an ISO 8601 date or timestamp") from None
    if value.tzinfo is None:
        if len(text) > 10:
            raise _refused(field, "has no time zone; add 'Z' for UTC or an offset like +01:00")
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _bounds(start: datetime | None, end: datetime | None) -> tuple[datetime | None, datetime | None]:
    problems = []
    for field, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            problems.append({"field": field, "problem": "has no time zone; add 'Z' for UTC or an offset"})
    if problems:
        raise HTTPException(422, {"detail": "timestamps need a time zone", "problems": problems})
    start = start.astimezone(UTC) if start else None
    end = end.astimezone(UTC) if end else None
    if start is not None and end is not None and start >= end:
        raise HTTPException(
            422,
            {
                "detail": "start is not before end",
                "problems": [{"field": "start", "problem": "not before end"}],
            },
        )
    return start, end


@series_router.get(
    "/tables/{table}/rows",
    responses={
        **ERRORS,
        200: {
            "model": RowsPage,
            "description": "JSON page; or the rows as an Arrow IPC stream, Parquet or CSV (`format`)",
            "content": {media: {} for media in MEDIA.values()},
        },
    },
)
def table_rows(
    table: NamePath,
    catalog: CatalogDep,
    store: StoreDep,
    start: Annotated[str | None, Query(max_length=40, description=BOUND)] = None,
    end: Annotated[str | None, Query(max_length=40, description=f"{BOUND}; exclusive")] = None,
    columns: Annotated[str | None, Query(max_length=4000, description="comma-separated; ts always")] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_DOWNLOAD_ROWS)] = None,
    cursor: Annotated[str | None, Query(max_length=20, pattern=r"^-?[0-9]+$")] = None,
    format: Literal["json", "arrow", "parquet", "csv"] = "json",
) -> Any:
    """Rows of a catalogued table with start <= ts < end, in time order. JSON pages hold `limit` rows
    (default 1,000, at most 10,000) and give `next_cursor`; `arrow`, `parquet` and `csv` stream every row
    of the window (or `limit`) in batches at flat memory. The cursor is the last row's ts in microseconds
    since the epoch: the next page starts after it."""
    table = _checked("table", table, naming.table_name)
    first, last = _bounds(_bound("start", start), _bound("end", end))
    names = None
    if columns is not None:
        names = [_checked("columns", c.strip(), naming.column_name) for c in columns.split(",") if c.strip()]
        if not names:
            raise _refused("columns", "names no column")
        names = names if "ts" in names else ["ts", *names]
    if not _catalogued(catalog, table):
        raise _not_found(f"table {table!r}")
    first = _cursor_start(cursor, first)
    if first is not None and last is not None and first >= last:
        return _empty_page(table, names, format)
    if format == "json":
        limit = limit or DEFAULT_PAGE_ROWS
        if limit > MAX_PAGE_ROWS:
            raise _refused(
                "limit",
                f"at most {MAX_PAGE_ROWS} for JSON",
                f"a JSON page holds at most {MAX_PAGE_ROWS} rows; use format=arrow for more",
            )
        return _json_page(store, table, first, last, names, limit)
    batches, schema = _open_stream(store, table, first, last, names, limit)
    filename = f"{table}.{'arrows' if format == 'arrow' else format}"
    return StreamingResponse(
        _encode(format, schema, batches),
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@series_router.get("/tables/{table}/series", response_model=SeriesPage, responses=ERRORS)
def table_series(
    table: NamePath,
    catalog: CatalogDep,
    store: StoreDep,
    columns: Annotated[str, Query(min_length=1, max_length=4000, description="comma-separated")],
    start: Annotated[str | None, Query(max_length=40, description=BOUND)] = None,
    end: Annotated[str | None, Query(max_length=40, description=f"{BOUND}; exclusive")] = None,
    points: Annotated[int, Query(ge=10, le=10_000, description="the chart's width in pixels")] = 1_000,
) -> SeriesPage:
    """Numeric columns of a catalogued table over [start, end) cut to at most `points` points: each point
    the lowest, highest and last value of its run of rows, so a chart of a million bars gets what it can
    draw and still shows every spike (NaN as null)."""
    from trading_assets.compute.downsample import downsample

    table = _checked("table", table, naming.table_name)
    first, last = _bounds(_bound("start", start), _bound("end", end))
    names = _value_columns(catalog, table, columns)
    try:
        data = store.read(table, first, last, ["ts", *names])
    except StoreError as err:
        raise _refused("columns", str(err), str(err)) from None
    values = {}
    for name in names:
        column = data.column(name)
        if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
            raise _refused("columns", f"{name} is {column.type}, not a number")
        values[name] = column.to_numpy(zero_copy_only=False).astype("float64", copy=False)
    ts = data.column("ts").cast(pa.int64()).to_numpy()
    cut = downsample(ts, values, points)

    def listed(array: Any) -> list[float | None]:
        return [v if math.isfinite(v) else None for v in array.tolist()]

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return SeriesPage(
        table=table,
        rows=int(ts.size),
        step=cut.step,
        ts=[epoch + timedelta(microseconds=int(t)) for t in cut.ts_us],
        columns={
            n: SeriesColumn(low=listed(cut.low[n]), high=listed(cut.high[n]), last=listed(cut.last[n]))
            for n in names
        },
    )


@series_router.get("/tables/{table}/histograms", response_model=HistogramPage, responses=ERRORS)
def table_histograms(
    table: NamePath,
    catalog: CatalogDep,
    store: StoreDep,
    columns: Annotated[str, Query(min_length=1, max_length=4000, description="comma-separated")],
    bins: Annotated[int, Query(ge=2, le=200)] = 40,
) -> HistogramPage:
    """Each column's values of the first and second half of the table's rows in shared bins: whether its
    distribution drifted over the history."""
    from trading_assets.compute.downsample import halves_histogram

    table = _checked("table", table, naming.table_name)
    names = _value_columns(catalog, table, columns)
    try:
        data = store.read(table, columns=names)
    except StoreError as err:
        raise _refused("columns", str(err), str(err)) from None
    out: dict[str, Histogram | None] = {}
    for name in names:
        column = data.column(name)
        if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
            raise _refused("columns", f"{name} is {column.type}, not a number")
        h = halves_histogram(column.to_numpy(zero_copy_only=False).astype("float64", copy=False), bins)
        out[name] = (
            None
            if h is None
            else Histogram(edges=h.edges.tolist(), early=h.early.tolist(), late=h.late.tolist())
        )
    return HistogramPage(table=table, rows=data.num_rows, columns=out)


def _value_columns(catalog: Catalog, table: str, columns: str) -> list[str]:
    """The comma-separated `columns` of a catalogued `table` other than ts, each name checked."""
    names = [_checked("columns", c.strip(), naming.column_name) for c in columns.split(",") if c.strip()]
    names = [n for n in dict.fromkeys(names) if n != "ts"]
    if not names:
        raise _refused("columns", "names no column besides ts")
    if not _catalogued(catalog, table):
        raise _not_found(f"table {table!r}")
    return names


def _empty_page(table: str, names: list[str] | None, format: str) -> Any:
    if format == "json":
        return RowsPage(table=table, columns=names or [], rows=[], next_cursor=None)
    schema = pa.schema([pa.field("ts", pa.timestamp("us", tz="UTC"))])
    return StreamingResponse(_encode(format, schema, iter(())), media_type=MEDIA[format])


def _read_batches(
    store: TimeSeriesStore,
    table: str,
    start: datetime | None,
    end: datetime | None,
    names: list[str] | None,
    rows: int,
) -> Iterator[pa.RecordBatch]:
    try:
        yield from store.iter_batches(table, start, end, names, batch_rows=rows)
    except StoreError as err:
        raise HTTPException(
            422, {"detail": str(err), "problems": [{"field": "columns", "problem": str(err)}]}
        ) from None


def _json_page(
    store: TimeSeriesStore,
    table: str,
    start: datetime | None,
    end: datetime | None,
    names: list[str] | None,
    limit: int,
) -> RowsPage:
    # One row more than the page: whether there is a next page, without reading the rest of the window.
    taken: list[pa.RecordBatch] = []
    count = 0
    batches = _read_batches(store, table, start, end, names, limit + 1)
    for batch in batches:
        taken.append(batch)
        count += batch.num_rows
        if count > limit:
            break
    batches.close()
    if not taken:
        return RowsPage(table=table, columns=names or [], rows=[], next_cursor=None)
    data = pa.Table.from_batches(taken).slice(0, limit)
    more = count > limit
    ts = data.column("ts").cast(pa.int64()).to_pylist()
    rows = data.to_pylist()
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float) and not math.isfinite(value):
                row[key] = None
    return RowsPage(
        table=table, columns=data.column_names, rows=rows, next_cursor=str(ts[-1]) if more and ts else None
    )


def _open_stream(
    store: TimeSeriesStore,
    table: str,
    start: datetime | None,
    end: datetime | None,
    names: list[str] | None,
    limit: int | None,
) -> tuple[Iterator[pa.RecordBatch], pa.Schema]:
    """The first batch is read before the response starts, so a bad column is still a 422, not a cut
    stream."""
    batches = _read_batches(store, table, start, end, names, STREAM_BATCH_ROWS)
    first = next(batches, None)
    if first is None:
        try:
            schema = store.read(table, start, end, names).schema
        except StoreError as err:
            raise HTTPException(422, {"detail": str(err), "problems": []}) from None
        return iter(()), schema

    def limited() -> Iterator[pa.RecordBatch]:
        left = MAX_DOWNLOAD_ROWS if limit is None else limit
        for batch in _chain(first, batches):
            if left <= 0:
                break
            batch = batch.slice(0, left)
            left -= batch.num_rows
            yield batch
        batches.close()

    return limited(), first.schema


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


class _Drain(io.RawIOBase):
    """A write-only file whose bytes are taken out after each batch: the writers stream through it."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        return len(chunk)

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def _encode(format: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    sink = _Drain()
    if format == "arrow":
        writer: Any = pa.ipc.new_stream(sink, schema)
    elif format == "parquet":
        writer = pq.ParquetWriter(sink, schema)
    else:
        writer = pcsv.CSVWriter(sink, schema)
    with writer:
        yield sink.take()
        for batch in batches:
            writer.write_batch(batch)
            yield sink.take()
    yield sink.take()


# --- jobs ------------------------------------------------------------------------------------------------


def _submit(kind: str, body: dict[str, Any], catalog: Catalog, requested_by: str | None) -> JobRequest:
    from trading_assets.requests.service import RequestInvalid, config_from_data

    try:
        config = config_from_data(kind, body, source="body")
    except RequestInvalid as err:
        problems = [{"field": path, "problem": problem} for path, problem in err.problems]
        raise HTTPException(422, {"detail": str(err), "problems": problems}) from None
    text = json.dumps(config.model_dump(exclude_unset=True), sort_keys=True)
    who = (requested_by or "api").strip()[:100] or "api"
    record = catalog.submit_job_request(NewJobRequest(kind, text, requested_by=who))
    return JobRequest.of(record)


WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "the write token is missing or wrong"},
    403: {"model": Problem, "description": "the server takes no writes (no TRADING_API_WRITE_TOKEN)"},
    413: {"model": Problem, "description": "the body is over the limit"},
    422: {"model": Problem, "description": "a field of the config is wrong: `problems` names each path"},
}


@jobs_router.post(
    "/job-requests/walkforward",
    response_model=JobRequest,
    status_code=201,
    responses=WRITE_ERRORS,
    dependencies=[Depends(require_write)],
)
async def submit_walkforward(
    config: WalkforwardConfig,
    request: Request,
    catalog: CatalogDep,
    x_requested_by: Annotated[str | None, Header(max_length=100)] = None,
) -> JobRequest:
    """Queue a walkforward run: the launchpad's config. Field errors are 422 naming each field's path
    (unknown fields too); what depends on the data (the dataset, its indicator set) is checked when the
    request is taken, and a refusal then shows as the request's REJECTED status and message."""
    # The body as sent, not as parsed: the typed config drops unknown fields, which must be refused.
    return await asyncio.to_thread(_submit, "walkforward", await request.json(), catalog, x_requested_by)


@jobs_router.post(
    "/job-requests/simulation",
    response_model=JobRequest,
    status_code=201,
    responses=WRITE_ERRORS,
    dependencies=[Depends(require_write)],
)
async def submit_simulation(
    config: SimulationConfig,
    request: Request,
    catalog: CatalogDep,
    x_requested_by: Annotated[str | None, Header(max_length=100)] = None,
) -> JobRequest:
    """Queue a simulation of a completed walkforward run: the launchpad's config."""
    return await asyncio.to_thread(_submit, "simulation", await request.json(), catalog, x_requested_by)


@jobs_router.get(
    "/job-requests", response_model=list[JobRequest], responses=ERRORS, dependencies=[Depends(require_read)]
)
def list_job_requests(
    catalog: CatalogDep,
    status: Annotated[list[Literal[JOB_STATUSES]] | None, Query()] = None,  # type: ignore[valid-type]
    kind: Literal[JOB_KINDS] | None = None,  # type: ignore[valid-type]
) -> list[JobRequest]:
    """Job requests (in `status`, of `kind` if given), oldest first."""
    return [JobRequest.of(r) for r in catalog.list_job_requests(status, kind)]


@jobs_router.get(
    "/job-requests/{request_id}",
    response_model=JobRequestDetail,
    responses=ERRORS,
    dependencies=[Depends(require_read)],
)
def get_job_request(
    request_id: Annotated[int, Path(ge=1, le=2**62)], catalog: CatalogDep
) -> JobRequestDetail:
    """One request with its Dagster runs (status, message, link to the run's page)."""
    record = catalog.get_job_request(request_id)
    if record is None:
        raise _not_found(f"job request {request_id}")
    return JobRequestDetail(**JobRequest.of(record).model_dump(), runs=catalog.list_job_runs(request_id))


@jobs_router.get(
    "/events",
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}},
    dependencies=[Depends(require_read)],
)
async def events(request: Request, catalog: CatalogDep) -> StreamingResponse:
    """Server-sent events of job requests: `job-request` with the request as JSON each time one is new or
    changes (first every request there is, then changes), and a `ping` comment every 15 s."""

    async def stream() -> Any:
        seen: dict[int, Any] = {}
        quiet = 0.0
        while not await request.is_disconnected():
            records = await asyncio.to_thread(catalog.list_job_requests)
            for record in records:
                stamp = (record.status, record.updated_at, record.target, record.message)
                if seen.get(record.id) != stamp:
                    seen[record.id] = stamp
                    quiet = 0.0
                    data = JobRequest.of(record).model_dump_json()
                    yield f"event: job-request\nid: {record.id}\ndata: {data}\n\n"
            await asyncio.sleep(EVENT_POLL_S)
            quiet += EVENT_POLL_S
            if quiet >= 15:
                quiet = 0.0
                yield ": ping\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
