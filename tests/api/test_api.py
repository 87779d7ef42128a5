"""The HTTP API on a real server over the demo pipeline's catalog and store: what it returns equals what the
catalog and store hold, pages and streams cover exactly the rows asked for, and every refusal names the
field."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from api_setup import READ_TOKEN, WRITE_TOKEN, Demo, _free_port, serve

from trading_assets.api.settings import ApiSettings

WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}
WALKFORWARD = {
    "dataset": "btc25",
    "indicator_version": 1,
    "target": {"kind": "regression", "horizon": 3},
    "folds": {"train": "1500", "test": "500", "max_folds": 2},
}


def fields(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"detail", "problems"} and "Traceback" not in response.text
    return {p["field"]: p["problem"] for p in body["problems"]}


# --- catalog ---------------------------------------------------------------------------------------------


def test_datasets_are_the_catalogs(api: httpx.Client, demo: Demo) -> None:
    (record,) = demo.catalog.list_datasets()
    (listed,) = api.get("/datasets").json()
    assert listed == api.get("/datasets/btc25").json()
    assert (listed["name"], listed["table"], listed["rows"]) == ("btc25", record.table_name, record.row_count)
    assert listed["columns"] == list(record.columns) and listed["bar_interval_s"] == 60
    assert datetime.fromisoformat(listed["first_ts"]) == record.first_ts
    assert listed["version"] == record.version


@pytest.mark.parametrize("name", ["nope", "a" * 199])
def test_an_unknown_dataset_is_404(api: httpx.Client, name: str) -> None:
    response = api.get(f"/datasets/{name}")
    assert response.status_code in (404, 422)
    assert "Traceback" not in response.text


@pytest.mark.parametrize("name", ["x;drop table datasets", "../etc", "Ünïcode", "a b"])
def test_a_hostile_name_is_refused_naming_the_field(api: httpx.Client, name: str) -> None:
    for path in ("/datasets/{}", "/walkforward-runs/{}", "/simulations/{}", "/tables/{}/rows"):
        response = api.get(path.format(quote(name, safe="")))
        assert response.status_code in (404, 422), (path, response.text)
        if response.status_code == 422:
            assert set(fields(response)) <= {"name", "table"}


def test_indicator_sets_list_columns_with_lookbacks(api: httpx.Client, demo: Demo) -> None:
    (record,) = demo.catalog.list_indicator_sets("btc25")
    (listed,) = api.get("/indicator-sets", params={"dataset": "btc25"}).json()
    assert listed == api.get(f"/indicator-sets/{record.measurement}").json()
    assert listed["measurement"] == "btc25_1" and listed["status"] == "ready"
    assert [(c["name"], c["lookback"]) for c in listed["columns"]] == list(
        zip(record.columns, record.lookbacks, strict=True)
    )


def test_a_walkforward_run_has_its_folds_metrics_and_thresholds(api: httpx.Client, demo: Demo) -> None:
    run = api.get("/walkforward-runs/btc25_run1").json()
    assert [r["name"] for r in api.get("/walkforward-runs").json()] == [
        r.name for r in demo.catalog.list_walkforward_runs()
    ]
    assert run["status"] == "completed" and run["predictions_table"] == "btc25_run1"
    assert run["hyperparameters"]["n_estimators"] == 20 and run["config"]["seed"] == 11
    folds = demo.catalog.list_walkforward_folds("btc25_run1")
    assert [f["fold"] for f in run["folds"]] == [0, 1, 2]
    for served, stored in zip(run["folds"], folds, strict=True):
        assert served["metrics"]["ic"] == stored.result.ic
        assert served["model_sha256"] == stored.result.model_sha256
    thresholds = demo.catalog.list_walkforward_thresholds("btc25_run1")
    assert [(t["long"], t["short"]) for t in run["thresholds"]] == [
        (t.long_threshold, t.short_threshold) for t in thresholds
    ]


def test_a_simulation_has_its_metrics_as_numbers(api: httpx.Client, demo: Demo) -> None:
    record = demo.catalog.get_simulation("btc25_sim1")
    served = api.get("/simulations", params={"run": "btc25_run1"}).json()
    assert [s["name"] for s in served] == [s.name for s in demo.catalog.list_simulations("btc25")]
    listed = served[0]
    assert listed == api.get(f"/simulations/{record.name}").json()
    assert listed["series_table"] == record.name and listed["status"] == "completed"
    stored = record.metric_values()
    assert listed["metrics"]["total_return"] == stored["total_return"]
    assert listed["metrics"]["n_trades"] == stored["n_trades"] == listed["n_trades"]


def test_trades_page_through_every_trade_in_any_order(api: httpx.Client, demo: Demo) -> None:
    stored = demo.catalog.list_simulation_trades("btc25_sim1")
    assert len(stored) > 5
    seen, cursor = [], None
    while True:
        params = {"sort": "pnl", "order": "desc", "limit": 4, **({"cursor": cursor} if cursor else {})}
        page = api.get("/simulations/btc25_sim1/trades", params=params).json()
        assert page["total"] == len(stored)
        seen += page["trades"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(t["trade"] for t in seen) == [t.trade for t in stored]
    assert [t["pnl"] for t in seen] == sorted((t.pnl for t in stored), reverse=True)


def test_trades_refuse_an_unknown_sort_field(api: httpx.Client) -> None:
    response = api.get("/simulations/btc25_sim1/trades", params={"sort": "secret"})
    assert response.status_code == 422 and "sort" in fields(response)
    assert api.get("/simulations/btc25_sim9/trades").status_code == 404


# --- time series -----------------------------------------------------------------------------------------


def test_json_pages_cover_the_window_exactly_once(api: httpx.Client, demo: Demo) -> None:
    start, end = "2025-01-01T01:00:00Z", "2025-01-01T03:00:00+00:00"
    expected = demo.store.read(
        "btc25", datetime(2025, 1, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, 3, tzinfo=UTC), ["ts", "close"]
    )
    rows, cursor, pages = [], None, 0
    while True:
        params = {"start": start, "end": end, "columns": "close", "limit": 25}
        page = api.get(
            "/tables/btc25/rows", params={**params, **({"cursor": cursor} if cursor else {})}
        ).json()
        assert page["columns"] == ["ts", "close"] and len(page["rows"]) <= 25
        rows += page["rows"]
        pages += 1
        if (cursor := page["next_cursor"]) is None:
            break
    assert pages > 2 and len(rows) == expected.num_rows
    assert [r["close"] for r in rows] == expected.column("close").to_pylist()
    assert [datetime.fromisoformat(r["ts"]) for r in rows] == expected.column("ts").to_pylist()


def test_an_arrow_stream_holds_exactly_the_rows_asked_for(api: httpx.Client, demo: Demo) -> None:
    response = api.get("/tables/btc25_1/rows", params={"format": "arrow", "columns": "rsi,ts"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = ipc.open_stream(io.BytesIO(response.content)).read_all()
    assert table.equals(demo.store.read("btc25_1", columns=["rsi", "ts"]))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_downloads_hold_exactly_the_rows_asked_for(api: httpx.Client, demo: Demo, fmt: str) -> None:
    params = {"format": fmt, "start": "2025-01-02", "limit": 700}
    response = api.get("/tables/btc25_run1/rows", params=params)
    assert response.status_code == 200, response.text
    assert "attachment" in response.headers["content-disposition"]
    expected = demo.store.read("btc25_run1", datetime(2025, 1, 2, tzinfo=UTC)).slice(0, 700)
    if fmt == "parquet":
        got = pq.read_table(io.BytesIO(response.content))
        assert got.equals(expected)
    else:
        got = pcsv.read_csv(io.BytesIO(response.content))
        assert got.num_rows == expected.num_rows
        assert got.column("y_pred").to_pylist() == expected.column("y_pred").to_pylist()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2025-01-01T00:00:00"}, "start"),  # naive
        ({"start": "2025-01-02", "end": "2025-01-01"}, "start"),
        ({"columns": "close,nope"}, "columns"),
        ({"columns": "close;drop"}, "columns"),
        ({"limit": 0}, "limit"),
        ({"limit": 20_000}, "limit"),  # over a JSON page
        ({"format": "xml"}, "format"),
        ({"cursor": "abc"}, "cursor"),
    ],
)
def test_bad_row_queries_are_refused_naming_the_field(api: httpx.Client, params: dict, field: str) -> None:
    response = api.get("/tables/btc25/rows", params=params)
    assert response.status_code == 422, response.text
    assert field in fields(response)


def test_only_catalogued_tables_are_served(api: httpx.Client) -> None:
    for table in ("btc25_run7", "btc25_2", "btc26"):
        assert api.get(f"/tables/{table}/rows").status_code == 404
    # A staging table's name is not even a table name the project hands out.
    assert api.get("/tables/btc25__staging/rows").status_code == 422


# --- jobs and access -------------------------------------------------------------------------------------


def test_a_walkforward_request_needs_the_write_token(api: httpx.Client) -> None:
    assert api.post("/job-requests/walkforward", json=WALKFORWARD).status_code == 401
    bad = {"Authorization": "Bearer " + "x" * len(WRITE_TOKEN)}
    assert api.post("/job-requests/walkforward", json=WALKFORWARD, headers=bad).status_code == 401


def test_a_good_request_is_queued_and_readable(api: httpx.Client, demo: Demo) -> None:
    response = api.post(
        "/job-requests/walkforward", json=WALKFORWARD, headers={**WRITE, "X-Requested-By": "alice"}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["kind"], created["status"], created["requested_by"]) == ("walkforward", "QUEUED", "alice")
    stored = demo.catalog.get_job_request(created["id"])
    assert json.loads(stored.config)["folds"]["max_folds"] == 2
    detail = api.get(f"/job-requests/{created['id']}").json()
    assert detail["runs"] == [] and detail["config"] == json.loads(stored.config)
    assert created["id"] in [r["id"] for r in api.get("/job-requests", params={"status": "QUEUED"}).json()]


@pytest.mark.parametrize(
    ("body", "problems"),
    [
        ({**WALKFORWARD, "folds": {"train": 5, "test": "500"}}, {"folds.train"}),
        ({**WALKFORWARD, "fodls": {}}, {"fodls"}),
        ({**WALKFORWARD, "folds": {"train": "1500", "test": "500", "mystery": 1}}, {"folds.mystery"}),
        ({"dataset": "btc25"}, {"indicator_version", "folds"}),
        ([1, 2], {"(top)"}),
    ],
)
def test_a_bad_request_is_422_naming_each_field(api: httpx.Client, body: object, problems: set[str]) -> None:
    response = api.post("/job-requests/walkforward", json=body, headers=WRITE)
    assert response.status_code == 422, response.text
    assert problems <= set(fields(response)), fields(response)


def test_a_body_over_the_limit_is_413(api: httpx.Client) -> None:
    huge = {**WALKFORWARD, "features": ["x" * 1000] * 100}
    response = api.post("/job-requests/walkforward", json=huge, headers=WRITE)
    assert response.status_code == 413 and "over" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit holds while the body streams
        for _ in range(100):
            yield b" " * 1024

    headers = {**WRITE, "content-type": "application/json"}
    streamed = api.post("/job-requests/walkforward", content=chunks(), headers=headers)
    assert streamed.status_code == 413


def test_reads_need_a_token_when_one_is_set(guarded_url: str) -> None:
    with httpx.Client(base_url=f"{guarded_url}/api/v1") as client:
        refused = client.get("/datasets")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert client.get("/datasets", headers={"Authorization": f"Bearer {READ_TOKEN}"}).status_code == 200
        assert client.get("/datasets", headers=WRITE).status_code == 200
        assert client.get("/datasets", headers={"Authorization": "Basic x"}).status_code == 401
        # The documentation stays readable: it holds no data.
        assert client.get("/openapi.json").status_code == 200


def test_without_a_write_token_the_api_takes_no_writes(demo: Demo) -> None:
    with serve(ApiSettings(port=_free_port()), demo) as url:
        response = httpx.post(f"{url}/api/v1/job-requests/walkforward", json=WALKFORWARD, headers=WRITE)
    assert response.status_code == 403 and "TRADING_API_WRITE_TOKEN" in response.json()["detail"]


def test_an_internal_error_is_a_500_with_an_id_and_no_trace(demo: Demo) -> None:
    class Broken:
        def __getattr__(self, name: str):
            def fail(*args, **kwargs):
                raise RuntimeError("password=hunter2 in a connection string")

            return fail

    broken = Demo(demo.data, Broken(), demo.store)  # type: ignore[arg-type]
    with serve(ApiSettings(port=_free_port()), broken) as url:
        response = httpx.get(f"{url}/api/v1/datasets")
    assert response.status_code == 500
    assert response.json()["detail"].startswith("internal error ")
    assert "hunter2" not in response.text and "Traceback" not in response.text


def test_events_stream_the_job_requests(api: httpx.Client) -> None:
    with api.stream("GET", "/events", timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = []
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith("data: "):
                break
    assert "event: job-request" in lines
    event = json.loads(lines[-1][len("data: ") :])
    assert event["kind"] in ("walkforward", "simulation") and event["id"] >= 1


def test_the_openapi_document_is_published(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    assert spec["info"]["title"] == "trading-assets"
    assert {"/api/v1/datasets", "/api/v1/tables/{table}/rows", "/api/v1/job-requests/walkforward"} <= set(
        spec["paths"]
    )
    body = spec["paths"]["/api/v1/job-requests/walkforward"]["post"]["requestBody"]
    assert "WalkforwardConfig" in json.dumps(body)


def test_a_series_is_cut_to_the_points_asked_for_and_keeps_its_extremes(
    api: httpx.Client, demo: Demo
) -> None:
    import numpy as np

    from trading_assets.compute.downsample import downsample

    page = api.get("/tables/btc25/series", params={"columns": "close,high", "points": 50}).json()
    bars = demo.store.read("btc25", columns=["ts", "close", "high"])
    assert page["rows"] == bars.num_rows and len(page["ts"]) <= 50
    expected = downsample(
        bars.column("ts").cast(pa.int64()).to_numpy(),
        {"close": bars.column("close").to_numpy(), "high": bars.column("high").to_numpy()},
        50,
    )
    assert page["step"] == expected.step
    assert page["columns"]["close"]["last"] == expected.last["close"].tolist()
    assert max(page["columns"]["high"]["high"]) == float(np.max(bars.column("high").to_numpy()))


@pytest.mark.parametrize(
    ("params", "field"),
    [({"columns": "close", "points": 5}, "points"), ({"columns": "ts"}, "columns"), ({}, "columns")],
)
def test_bad_series_queries_name_the_field(api: httpx.Client, params: dict, field: str) -> None:
    response = api.get("/tables/btc25/series", params=params)
    assert response.status_code == 422 and field in fields(response)


def test_a_folds_model_downloads_with_its_recorded_hash(api: httpx.Client, demo: Demo) -> None:
    import hashlib

    fold = demo.catalog.list_walkforward_folds("btc25_run1")[1]
    response = api.get("/walkforward-runs/btc25_run1/folds/1/model")
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == fold.result.model_sha256
    assert response.headers["x-model-sha256"] == fold.result.model_sha256
    assert api.get("/walkforward-runs/btc25_run1/folds/9/model").status_code == 404
    importance = api.get("/walkforward-runs/btc25_run1").json()["folds"][1]["feature_importance"]
    assert importance == json.loads(fold.result.feature_importance)


def test_monthly_returns_come_from_the_sims_equity(api: httpx.Client, demo: Demo) -> None:
    from trading_assets.compute.monthly import monthly_returns

    series = demo.store.read("btc25_sim1", columns=["ts", "equity"])
    expected = monthly_returns(
        series.column("ts").cast(pa.int64()).to_numpy(), series.column("equity").to_numpy(), 10_000.0
    )
    got = api.get("/simulations/btc25_sim1/monthly-returns").json()
    assert [(m["year"], m["month"], m["return"]) for m in got] == expected
    sim = demo.catalog.get_simulation("btc25_sim1").metric_values()
    assert abs(got[-1]["return"] - sim["total_return"]) < 1e-12  # the demo's sim lies within one month


def test_a_datasets_gaps_are_counted_from_its_stored_bars(api: httpx.Client, demo: Demo) -> None:
    from trading_assets.compute.bar_checks import bars_report

    ts = demo.store.read("btc25", columns=["ts"]).column("ts").cast(pa.int64()).to_numpy()
    report = bars_report(ts)
    gaps = api.get("/datasets/btc25/gaps").json()
    assert (gaps["rows"], gaps["gap_count"], gaps["missing_bars"]) == (
        report.rows,
        report.gap_count,
        report.missing_bars,
    )
    assert gaps["gap_count"] > 0 and gaps["largest_gap_bars"] == report.largest_gap_bars
    assert api.get("/datasets/nope/gaps").status_code == 404
