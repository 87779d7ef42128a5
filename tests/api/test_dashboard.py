"""The dashboard in Debian's headless Chromium (Playwright), on the demo pipeline's data: the simulations
list and a simulation's page render, their numbers are the catalog's, the charts draw, and the trades
table pages and sorts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from api_setup import READ_TOKEN, WRITE_TOKEN, Demo

from trading_assets.records import NewJobRequest

CHROMIUM = "/usr/bin/chromium"
# Where the pages' screenshots go when set (docs/img for the docs); tests alone leave the tree as it is.
SCREENSHOTS = os.environ.get("DASHBOARD_SCREENSHOTS")


@pytest.fixture(scope="module")
def page(base_url: str) -> Iterator[object]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.errors = errors  # type: ignore[attr-defined]
        page.base = base_url  # type: ignore[attr-defined]
        yield page
        browser.close()


def _open(page, path: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(page.base + path)
    page.wait_for_selector("body[data-ready]", timeout=20_000)
    assert page.get_attribute("body", "data-ready") == "true", page.inner_text("main")
    assert page.errors == []


def test_the_list_shows_each_simulation_with_the_catalogs_numbers(page, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    _open(page, "/")
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "dashboard_simulations.png"), full_page=True)
    sims = demo.catalog.list_simulations()
    assert len(sims) == 2
    for sim in sims:
        m = sim.metric_values()
        row = page.locator(f"tr[data-sim='{sim.name}']")
        assert row.locator("td[data-metric='total_return']").inner_text() == f"{m['total_return'] * 100:.2f}%"
        assert sim.run in row.inner_text()


def test_a_simulation_page_shows_metrics_charts_and_trades(page, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    _open(page, "/sims/btc25_sim1")
    m = demo.catalog.get_simulation("btc25_sim1").metric_values()
    value = page.locator("[data-metric='sharpe'] .value").inner_text()
    assert value == f"{m['sharpe']:.2f}"
    assert page.locator("[data-metric='n_trades'] .value").inner_text() == f"{m['n_trades']:,}"
    # Both charts drew on their canvas: some pixel is not blank.
    marked = int(page.get_attribute("#price", "data-marked"))
    assert 0 < marked <= len(demo.catalog.list_simulation_trades("btc25_sim1"))
    for chart in ("#price", "#equity", "#drawdown"):
        drawn = _drawn(page, chart)
        assert drawn, chart
    cell = page.locator("#monthly-table td[data-month='2025-1']")
    assert cell.inner_text() == f"{m['total_return'] * 100:.2f}%"  # the demo's sim lies within January
    trades = demo.catalog.list_simulation_trades("btc25_sim1")
    rows = page.locator("#trade-table tr")
    assert rows.count() == 1 + min(25, len(trades))
    assert f"of {len(trades):,}" in page.inner_text(".pager")
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "dashboard_simulation.png"), full_page=True)


def test_the_trades_table_sorts_and_pages(page, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    _open(page, "/sims/btc25_sim1")
    trades = demo.catalog.list_simulation_trades("btc25_sim1")
    page.click("th[data-sort='pnl']")  # ascending
    page.wait_for_selector("th[data-sort='pnl']:has-text('▲')")
    page.click("th[data-sort='pnl']")  # descending
    page.wait_for_selector("th[data-sort='pnl']:has-text('▼')")
    best = max(trades, key=lambda t: t.pnl)
    first_row = page.locator("#trade-table tr").nth(1).inner_text()
    assert first_row.split("\t")[0] == str(best.trade)
    page.click("#next")
    page.wait_for_selector(".pager:has-text('26\u2013')")
    assert page.locator("#trade-table tr").count() > 1


def test_a_runs_page_shows_its_folds_charts_and_downloads(page, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    _open(page, "/")
    # The list shows each run's mean fold score.
    folds = demo.catalog.list_walkforward_folds("btc25_run1")
    score = "tr[data-run='btc25_run1'] [data-score=score]"
    page.wait_for_function(f"!document.querySelector(\"{score}\").textContent.includes('…')")
    assert page.inner_text(score) == f"{sum(f.result.ic for f in folds) / len(folds):.3f}"
    page.click("tr[data-run='btc25_run1'] a")
    page.wait_for_selector("body[data-ready]")
    assert page.url.endswith("/runs/btc25_run1") and page.errors == []
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "dashboard_run.png"), full_page=True)
    folds = demo.catalog.list_walkforward_folds("btc25_run1")
    for fold in folds:
        row = page.locator(f"#fold-table tr[data-fold='{fold.window.fold}']")
        assert row.locator("td[data-metric='ic']").inner_text() == f"{fold.result.ic:.3f}"
        assert row.locator("a").get_attribute("href").endswith(f"/folds/{fold.window.fold}/model")
    for chart in ("#fold-chart", "#predictions"):
        drawn = _drawn(page, chart)
        assert drawn, chart
    assert page.locator("#importance-table tr").count() == len(
        demo.catalog.get_walkforward_run("btc25_run1").features
    )
    # The predictions download holds every row of the table.
    with page.expect_download() as info:
        page.click("#download-predictions")
    import pyarrow.parquet as pq

    downloaded = pq.read_table(info.value.path())
    assert downloaded.equals(demo.store.read("btc25_run1"))


def test_the_job_form_refuses_a_bad_field_then_queues_a_good_request_live(page, demo: Demo) -> None:  # type: ignore[no-untyped-def]

    (request,) = [r for r in demo.catalog.list_job_requests(kind="walkforward") if r.target == "btc25_run1"]
    _open(page, f"/jobs?request={request.id}")
    # Each request links to its Dagster runs' pages.
    runs = demo.catalog.list_job_runs(request.id)
    # (The row is drawn again when an event about it arrives: wait until its links are all there, and read
    # them in the same step.)
    cell = f"[data-runs='{request.id}'] a"
    found = page.wait_for_function(
        f'(() => {{ const a = [...document.querySelectorAll("{cell}")];'
        f" return a.length >= {len(runs) + 1} ? a.map((e) => e.getAttribute('href')) : null; }})()"
    )
    hrefs = found.json_value()
    assert hrefs[: len(runs)] == [r.url for r in runs]
    assert hrefs[-1] == "http://127.0.0.1:3000/assets/predictions?partition=btc25_run1"
    # A preset sets its fields over the prefilled form.
    page.select_option("#preset", label="quick look (100 trees of depth 3)")
    assert page.input_value("[data-path='hyperparameters.n_estimators']") == "100"
    # Prefilled from the request that made btc25_run1 ("re-run with changes").
    assert page.input_value("[data-path='dataset']") == "btc25"
    assert page.input_value("[data-path='folds.train']") == "1500"
    page.fill("#token", WRITE_TOKEN)
    page.fill("[data-path='hyperparameters.max_depth']", "deep")
    page.click("#submit")
    page.wait_for_selector("[data-error='hyperparameters.max_depth']:not(:empty)")
    assert "integer" in page.inner_text("[data-error='hyperparameters.max_depth']")
    assert page.get_attribute("#submit-result", "data-request") is None
    page.fill("[data-path='hyperparameters.max_depth']", "2")
    page.click("#submit")
    page.wait_for_selector("#submit-result[data-request]")
    new_id = int(page.get_attribute("#submit-result", "data-request"))
    stored = demo.catalog.get_job_request(new_id)
    assert stored.status == "QUEUED" and '"max_depth": 2' in stored.config
    # The optional chained simulation was left switched off, so the request does not ask for one.
    assert "simulate" not in stored.config
    # The queue shows it, from the live event stream.
    page.wait_for_selector(
        f"#queue-table tr[data-request='{new_id}'] td[data-status='QUEUED']", timeout=10_000
    )
    # The runs the daemon would launch for it (intake, its folds, its predictions), then the lifecycle the
    # sensors record: the queue follows it to COMPLETED, live, and links the new run.
    # (In a thread of its own: the jobs' event loop must not meet Playwright's on this one.)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(_complete, demo, new_id).result()
    row = f"#queue-table tr[data-request='{new_id}']"
    page.wait_for_selector(f"{row} td[data-status='COMPLETED']", timeout=15_000)
    target = demo.catalog.get_job_request(new_id).target
    assert page.get_attribute(f"{row} a[href^='/runs/']", "href") == f"/runs/{target}"
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "dashboard_jobs.png"), full_page=True)


def test_two_simulations_compare_side_by_side(page, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    _open(page, "/")
    page.check("[data-compare='btc25_sim1']")
    page.check("[data-compare='btc25_sim2']")
    page.click("#compare")
    page.wait_for_selector("body[data-ready]")
    assert page.get_attribute("body", "data-ready") == "true" and page.errors == []
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "dashboard_compare.png"), full_page=True)
    row = page.locator("#compare-table tr[data-metric='total_return'] td")
    for k, name in enumerate(("btc25_sim1", "btc25_sim2"), start=1):
        m = demo.catalog.get_simulation(name).metric_values()
        assert row.nth(k).inner_text() == f"{m['total_return'] * 100:.2f}%"
    drawn = _drawn(page, "#equity")
    assert drawn and page.locator("#equity .u-legend .u-series").count() == 3  # time + two sims


def test_the_indicator_explorer_draws_price_and_indicators_and_zooms(page, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    _open(page, "/explore?dataset=btc25")
    assert "3,500 bars in the whole history" in page.inner_text("#note")
    for pane in ("#price", "[data-pane='rsi']", "[data-pane='logret']", "[data-histogram='rsi']"):
        drawn = _drawn(page, pane)
        assert drawn, pane
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "dashboard_explorer.png"), full_page=True)
    # Drag across the price pane: every pane shows the window, cut again by the server.
    box = page.locator("#price .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.up()
    page.wait_for_function("document.querySelector('#note').textContent.includes('→')")
    zoomed = page.inner_text("#note")
    bars = int(zoomed.split(" bars")[0].replace(",", ""))
    assert 500 < bars < 1200 and "1 a point" in zoomed  # a quarter of 3,500 bars, one bar a pixel
    page.click("#reset")
    page.wait_for_function("document.querySelector('#note').textContent.includes('whole history')")
    assert page.errors == []


def _complete(demo: Demo, request_id: int) -> None:
    """What the daemon does with a queued walkforward request, in process."""
    from sensors.walkforward import RANGE_END, RANGE_START
    from trading_assets.partitions import fold_key
    from trading_assets.requests.service import REQUEST_TAG

    launcher, tags = demo.launcher, {REQUEST_TAG: str(request_id)}
    intake = {"take_queued_request": {"config": {"request_id": request_id}}}
    assert launcher.execute("take_job_request", ops=intake, tags=tags).success
    run = demo.catalog.get_job_request(request_id).target
    folds = demo.catalog.get_walkforward_run(run).fold_count
    cells = {RANGE_START: fold_key(run, 0), RANGE_END: fold_key(run, folds - 1)}
    assert launcher.execute("train_folds", tags={**tags, **cells}).success
    assert launcher.execute("predict_walkforward", partition_key=run, tags=tags).success
    launcher.settle_requests("walkforward", demo.catalog)
    assert demo.catalog.get_job_request(request_id).status == "COMPLETED"


def test_on_a_server_that_needs_a_read_token_the_dashboard_asks_for_it(page, guarded_url: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(guarded_url + "/")
    page.wait_for_selector("body[data-ready='error']")
    assert "401" in page.inner_text("main")
    page.fill("#read-token", READ_TOKEN)
    page.click("#save-token")
    page.wait_for_selector("body[data-ready='true']")
    assert page.locator("tr[data-sim='btc25_sim1']").count() == 1
    page.evaluate("sessionStorage.clear()")


def test_the_queue_is_live_on_a_server_that_needs_a_read_token(page, guarded_url: str, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    # The events come through fetch with the tab's token in a header (EventSource could send none).
    page.goto(guarded_url + "/")
    page.evaluate(f"sessionStorage.setItem('read-token', '{READ_TOKEN}')")
    try:
        page.goto(guarded_url + "/jobs")
        page.wait_for_selector("body[data-ready='true']")
        page.wait_for_selector("#live[data-state='live']", timeout=10_000)
        (first, *_) = demo.catalog.list_job_requests(kind="simulation")
        new = demo.catalog.submit_job_request(
            NewJobRequest("simulation", first.config, requested_by="sse-test")
        )
        page.wait_for_selector(
            f"#queue-table tr[data-request='{new.id}'] td[data-status='QUEUED']", timeout=10_000
        )
    finally:
        page.evaluate("sessionStorage.clear()")


def _drawn(page, selector: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether the canvas under `selector` has any pixel that is not blank."""
    return page.eval_on_selector(
        f"{selector} canvas",
        "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true; return false; }",
    )
