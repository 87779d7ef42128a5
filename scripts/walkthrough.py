"""Walk through the Dagster UI in a real browser and save a screenshot of each stop.

    .venv/bin/python scripts/walkthrough.py [--data-dir data] [--dagster-home data/dagster_home] \
        [--out docs/img] [--simulation btc25_sim1] [--chromium /usr/bin/chromium]

Starts the repo's code location in one code server and `dagster-webserver` on it, on free ports, against
the given data folder and Dagster instance (what `make demo` leaves behind), drives Debian's headless
Chromium through Playwright, and stops the servers again, also on error. The stops are the ones
docs/qa/walkthrough.md describes to a person:

1. the global asset lineage with every group expanded (`lineage.png`);
2. the `fold_models` partitions: the fold x run grid of a walkforward run (`fold_partitions.png`);
3. a backfill of that run's folds, launched from the same page (Materialize... -> the run, all folds ->
   Launch backfill) and executed by `dagster-daemon`, which the script starts then, beside the webserver
   on the same code server (as `make dev` runs them): the backfill's page, its status per asset
   (`backfill.png`) and its one run for all the folds (`backfill_runs.png`);
4. a simulation's materialisation: its metric rows (`simulation_metrics.png`) and the equity and
   drawdown chart, opened from the `equity` metadata entry (`simulation_equity.png`).

The webserver's GraphQL API only says which partitions were materialised last, when the backfill has
finished and when the daemon has nothing left to do; everything reported is read from the rendered pages.
The daemon's sensors run too: retraining the folds makes `walkforward_sensor` assemble the run's
predictions again, which the script waits for before it stops the daemon (the simulation is not re-run).
tests/browser/test_walkthrough.py asserts on that report.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dagster._core.errors import DagsterUserCodeUnreachableError
from dagster._grpc.client import DagsterGrpcClient
from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# One size for every screenshot: wide enough for the lineage graph, the size of a laptop screen.
VIEWPORT = {"width": 1440, "height": 900}
# The UI answers in a second or two; a cold code location (numba, xgboost imports) takes longer.
SERVER_START_S = 120.0
PAGE_TIMEOUT_MS = 30_000
# A demo fold trains in seconds on CPU, one at a time (the `gpu` pool); 12 folds and the daemon's start.
BACKFILL_S = 900.0
# The daemon is quiet once no run is queued or in progress and every sensor that acts on runs has ticked
# since (the slowest tick every 30 s); the follow-up run (predictions of the retrained run) takes a minute.
SETTLE_S = 600.0
ACTIVE_RUN_STATUSES = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]
# The partition lists draw each key's state as a dot in these colours (the UI's assetPartitionStatusToColor);
# a key whose partitions differ gets stripes of two, reported as their raw CSS.
DOT_STATES = {
    "var(--color-accent-green)": "materialized",
    "var(--color-accent-red)": "failed",
    "var(--color-accent-blue)": "materializing",
    "var(--color-accent-gray)": "missing",
}
# The community sign-up dialog the UI shows on localhost would cover the first screenshot. Its "Skip"
# button sets this flag in the browser (and tells the instance); setting only the flag leaves the
# instance as `make demo` left it.
DISMISS_NUX = "window.localStorage.setItem('communityNux', '1')"


@dataclass
class Report:
    """What the walkthrough saw on the pages, and where it saved them."""

    lineage_nodes: list[str] = field(default_factory=list)  # asset names drawn as graph nodes
    fold_partition: str = ""  # the fold_models partition selected in the grid
    fold_counts: dict[str, int] = field(default_factory=dict)  # "Materialized" -> 12, "Missing" -> 0, ...
    fold_states: dict[str, str] = field(default_factory=dict)  # fold key -> state of its dot
    run_states: dict[str, str] = field(default_factory=dict)  # run key -> state of its dot
    fold_metadata: dict[str, str] = field(default_factory=dict)  # selected fold's metadata rows
    backfill_id: str = ""
    backfill_dialog_count: str = ""  # the launch dialog's "12 partitions"
    backfill_status: str = ""  # the status tag of the backfill's page: "Succeeded"
    # its "Partition selection": a tag per key, or "12 partitions" where there are too many to list
    backfill_partitions: list[str] = field(default_factory=list)
    backfill_assets: dict[str, dict[str, str]] = field(default_factory=dict)  # asset -> column -> cell
    backfill_runs: list[str] = field(default_factory=list)  # the status of each of the backfill's runs
    simulation: str = ""
    simulation_metadata: dict[str, str] = field(default_factory=dict)  # metadata key -> value text
    equity_chart: dict[str, Any] = field(default_factory=dict)  # alt text and decoded size of the <img>
    screenshots: list[Path] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(base_url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base_url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    if body.get("errors"):
        raise RuntimeError(f"GraphQL error: {body['errors']}")
    return body["data"]


_LOCATIONS = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def _location_loaded(base_url: str) -> bool:
    """True once the code location is loaded; a location that failed to load is an error, not a wait."""
    try:
        data = graphql(base_url, _LOCATIONS)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
    entries = data["workspaceOrError"].get("locationEntries") or []
    for entry in entries:
        loaded = entry["locationOrLoadError"]
        if loaded and loaded["__typename"] == "PythonError":
            raise RuntimeError(f"code location {entry['name']} failed to load: {loaded['message']}")
    return bool(entries) and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries)


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def _service_env(data_dir: Path, dagster_home: Path, env: Mapping[str, str] | None) -> dict[str, str]:
    """`env` (default: this process's environment) with both folders set explicitly: the code location
    reads its stores from TRADING_DATA_DIR, the webserver and the daemon their instance from DAGSTER_HOME."""
    return {
        **(os.environ if env is None else env),
        "TRADING_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(dagster_home),
    }


def _start(command: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    # A session of its own, so stopping the group also stops the processes it spawns. Appending: the
    # daemon writes into the code server's log.
    with log.open("ab") as out:
        return subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _code_server_up(port: int) -> bool:
    try:
        DagsterGrpcClient(port=port, host="127.0.0.1").ping("")
    except DagsterUserCodeUnreachableError:
        return False
    return True


def _wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    """Until `ready()`; fails with the log's tail if `process` exits first or SERVER_START_S pass."""
    deadline = time.monotonic() + SERVER_START_S
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {SERVER_START_S}s:\n{_tail(log)}")
        time.sleep(0.5)


@dataclass(frozen=True)
class CodeServer:
    workspace: Path  # a workspace file that points at it
    log: Path  # its output: the runs started in it write theirs there too


@contextmanager
def code_server(
    data_dir: Path, dagster_home: Path, env: Mapping[str, str] | None = None
) -> Iterator[CodeServer]:
    """Serve the code location of the repo's workspace.yaml from one `dagster api grpc` process, as
    `dagster dev` (make dev) does for its webserver and daemon; yields it once its code is loaded, and
    stops it (with the runs started in it) on the way out.

    A webserver or daemon given workspace.yaml itself starts a code server of its own, and the daemon
    starts a fresh one every minute (to pick up code changes): each a full import of the code location."""
    (entry,) = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    module = entry["python_module"]
    name = module.get("location_name", module["module_name"])
    port = free_port()
    command = [sys.executable, "-m", "dagster", "api", "grpc", "-h", "127.0.0.1", "-p", str(port)]
    command += ["-m", module["module_name"], "-d", str(REPO / module.get("working_directory", "."))]
    command += ["--location-name", name]
    with tempfile.TemporaryDirectory(prefix="walkthrough-code-") as tmp:
        log = Path(tmp) / "code_server.log"
        process = _start(command, _service_env(data_dir, dagster_home, env), log)
        try:
            _wait_until(lambda: _code_server_up(port), process, "the code server", log)
            workspace = Path(tmp) / "workspace.yaml"
            location = {"host": "127.0.0.1", "port": port, "location_name": name}
            workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": location}]}))
            yield CodeServer(workspace, log)
        finally:
            _stop(process)


@contextmanager
def webserver(
    data_dir: Path,
    dagster_home: Path,
    server: CodeServer,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Iterator[str]:
    """Run `dagster-webserver` on the code server `server` against `data_dir` and `dagster_home`, in `env`
    (default: this process's environment); yields its base URL once the code location is loaded, and
    stops it on the way out."""
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "dagster_webserver", "-w", str(server.workspace)]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    with tempfile.TemporaryDirectory(prefix="walkthrough-") as tmp:
        log = Path(tmp) / "webserver.log"
        process = _start(command, _service_env(data_dir, dagster_home, env), log)
        try:
            _wait_until(lambda: _location_loaded(base_url), process, "dagster-webserver", log)
            yield base_url
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # SIGTERM stops the process and its children; whatever of the group ignored it goes now.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def daemon(
    data_dir: Path, dagster_home: Path, server: CodeServer, env: Mapping[str, str] | None = None
) -> Iterator[Path]:
    """Run `dagster-daemon` (sensors, the run queue, backfills) on the code server `server` in the same
    environment as the webserver; yields the log it shares with the code server (so also with the runs it
    launches) and stops it on the way out."""
    # `python -m dagster._daemon` is the `dagster-daemon` command of this interpreter's environment.
    command = [sys.executable, "-m", "dagster._daemon", "run", "-w", str(server.workspace)]
    process = _start(command, _service_env(data_dir, dagster_home, env), server.log)
    try:
        yield server.log
    finally:
        _stop(process)


_LATEST = """query Latest($key: AssetKeyInput!) { assetOrError(assetKey: $key) { __typename
  ... on Asset { assetMaterializations(limit: 1) { partition } } } }"""


def latest_partition(base_url: str, asset: str) -> str:
    """The partition of `asset`'s latest materialisation."""
    data = graphql(base_url, _LATEST, {"key": {"path": [asset]}})["assetOrError"]
    events = data.get("assetMaterializations") or []
    if not events or not events[0]["partition"]:
        raise RuntimeError(f"asset {asset} has no partitioned materialisation: run `make demo` first")
    return events[0]["partition"]


def _shoot(page: Page, out: Path, name: str, report: Report) -> None:
    path = out / name
    page.screenshot(path=path)
    report.screenshots.append(path)


def _metadata_rows(page: Page) -> dict[str, str]:
    """The metadata table on the page, key -> value text (the first two cells of each row). Rows of
    tables inside a value (trades, monthly returns) are part of that value, not entries."""
    rows = page.locator("table tr").evaluate_all(
        """rows => rows.filter(r => !r.parentElement.closest('td'))
                       .map(r => Array.from(r.cells).map(c => c.innerText.trim()))"""
    )
    return {cells[0]: cells[1] for cells in rows if len(cells) >= 2 and cells[0]}


def visit_lineage(page: Page, base_url: str, out: Path, report: Report) -> None:
    """Stop 1: Lineage in the left bar. Groups start collapsed; Alt+E (or the graph's settings menu,
    "Expand all groups") opens them so every asset is a node. The group list beside the graph is
    hidden to give the graph the width."""
    page.goto(f"{base_url}/asset-groups")
    nodes = page.locator('svg [class*="AssetNode_assetName"]')
    # Wait for the collapsed group boxes first: pressing Alt+E before the graph is drawn does nothing.
    page.locator("svg foreignObject.group").first.wait_for()
    page.get_by_role("button", name="panel_show_right", exact=True).click()
    page.keyboard.press("Alt+e")
    nodes.filter(has_text="fold_models").first.wait_for()
    page.wait_for_timeout(1500)  # the graph animates its zoom to fit the expanded groups
    report.lineage_nodes = sorted(n.strip() for n in nodes.all_inner_texts())
    _shoot(page, out, "lineage.png", report)


def _dot_states(page: Page, placeholder: str) -> dict[str, str]:
    """Key -> state of each row of the partition list under the filter box `placeholder`."""
    states = page.get_by_placeholder(placeholder).evaluate(
        """input => {
             const row = '[class*="AssetEventList_assetListRow"]';
             let column = input.parentElement;
             while (column && !column.querySelector(row)) column = column.parentElement;
             return Array.from(column ? column.querySelectorAll(row) : []).map(r => {
               const key = r.querySelector('[title]');
               const dot = Array.from(r.querySelectorAll('div')).find(d => d.style.borderRadius === '100%');
               return [key ? key.title : '', dot ? dot.style.background : ''];
             });
           }"""
    )
    return {key: DOT_STATES.get(color, color) for key, color in states if key}


def visit_fold_grid(page: Page, base_url: str, out: Path, report: Report) -> None:
    """Stop 2: Catalog -> fold_models -> Partitions. One list per dimension (fold, run): each key's dot
    is green when its partitions are materialised; selecting a fold and a run opens that cell."""
    report.fold_partition = latest_partition(base_url, "fold_models")
    partition = urllib.parse.quote(report.fold_partition)
    page.goto(f"{base_url}/assets/fold_models?view=partitions&partition={partition}")
    page.get_by_text("Latest materialization").wait_for()
    page.locator("table tr", has_text="test_window").first.wait_for()
    for label in ("Failed", "Materialized", "Materializing", "Missing"):
        text = page.get_by_text(f"{label} (").first.inner_text()
        report.fold_counts[label] = int(text.split("(")[1].rstrip(")"))
    report.fold_states = _dot_states(page, "Filter by fold…")
    report.run_states = _dot_states(page, "Filter by run…")
    report.fold_metadata = _metadata_rows(page)
    _shoot(page, out, "fold_partitions.png", report)


_BACKFILL = """query Backfill($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { status } ... on PythonError { message } } }"""
_RUNS = """query Runs($active: [RunStatus!], $since: Float) {
  active: runsOrError(filter: {statuses: $active}) { ... on Runs { results { runId jobName } } }
  changed: runsOrError(filter: {updatedAfter: $since}) { ... on Runs { results { endTime } } } }"""
# Ticks since a time: a bare `ticks(limit: 1)` goes through a loader that matches ticks to the code
# location's address when the sensor's state was first stored, and the code server's port differs from one
# walkthrough (or `make dev`) to the next; with a time they are looked up by sensor.
_SENSOR_TICKS = """query Ticks($since: Float) { workspaceOrError { ... on Workspace { locationEntries {
  locationOrLoadError { ... on RepositoryLocation { repositories { sensors { sensorType
    targets { pipelineName } sensorState { status ticks(limit: 1, afterTimestamp: $since) { status } }
  } } } } } } } }"""


def wait_for_backfill(base_url: str, backfill_id: str, log: Path, timeout: float = BACKFILL_S) -> str:
    """Poll the backfill until the daemon has finished it; its final status."""
    deadline = time.monotonic() + timeout
    while True:
        data = graphql(base_url, _BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        if data["__typename"] != "PartitionBackfill":
            raise RuntimeError(f"backfill {backfill_id}: {data}")
        if data["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
            return data["status"]
        if time.monotonic() > deadline:
            status = data["status"]
            raise TimeoutError(f"backfill {backfill_id} still {status} after {timeout}s:\n{_tail(log)}")
        time.sleep(2)


def _sensor_ticks(base_url: str, since: float) -> list[str | None]:
    """The status of the latest tick started after `since` (None: none yet) of every running sensor that
    can act on a run's outcome: one that launches runs (it has targets) or one that watches run statuses.
    The others (live_bars_sensor observes the live tables once a minute) neither start nor finish
    anything of the walkthrough's."""
    ticks = []
    data = graphql(base_url, _SENSOR_TICKS, {"since": since})["workspaceOrError"]
    for entry in data["locationEntries"]:
        for repository in (entry["locationOrLoadError"] or {}).get("repositories", []):
            for sensor in repository["sensors"]:
                state = sensor["sensorState"]
                acts = sensor["targets"] or sensor["sensorType"] == "RUN_STATUS"
                if state["status"] == "RUNNING" and acts:
                    ticks.append(state["ticks"][0]["status"] if state["ticks"] else None)
    return ticks


def _runs(base_url: str, since: float) -> tuple[list[dict[str, str]], float]:
    """The runs queued or in progress, and when the last run to end since `since` ended (else `since`)."""
    data = graphql(base_url, _RUNS, {"active": ACTIVE_RUN_STATUSES, "since": since})
    ends = [run["endTime"] for run in data["changed"]["results"] if run["endTime"]]
    return data["active"]["results"], max([since, *ends])


def settle(base_url: str, log: Path, since: float, timeout: float = SETTLE_S) -> None:
    """Wait until the daemon, started at `since`, has nothing left to do: no run queued or in progress,
    and every running sensor that can act on a run's outcome has finished a tick started after the last
    run ended. Stopping the daemon then leaves no run half done and no run's outcome unrecorded."""
    deadline = time.monotonic() + timeout
    while True:
        runs, ended = _runs(base_url, since)
        if not runs:
            # A second after the end: a run's end time is that of its last event, stored a moment later.
            ticks = _sensor_ticks(base_url, ended + 1)
            # A tick that asks for a run queues it before it ends, so the runs are read after the ticks too.
            ticked = all(status not in (None, "STARTED") for status in ticks)
            if ticked and _runs(base_url, since) == ([], ended):
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the daemon is still busy after {timeout}s ({runs}):\n{_tail(log)}")
        time.sleep(2)


def _run_rows(page: Page) -> list[dict[str, str]]:
    """The rows of the run list drawn on the page (a virtualised grid of divs), column -> cell text."""
    header = page.locator('[class*="VirtualizedTable_headerCell"]').all_inner_texts()
    cells = page.locator('[class*="RunsFeedRow_rowGrid"]').evaluate_all(
        "rows => rows.map(r => Array.from(r.children).map(c => c.innerText.trim()))"
    )
    return [dict(zip([h.strip() for h in header], row, strict=False)) for row in cells]


BACKFILL_COLUMNS = ("Partitions targeted", "In progress", "Succeeded", "Failed")


def _backfill_assets(page: Page) -> dict[str, dict[str, str]]:
    """The backfill page's status table (a grid of divs, not a <table>), asset -> column -> number:
    after the headers, each asset is its name, its "N% completed" bar and one number per column."""
    lines = [line.strip() for line in page.locator("body").inner_text().splitlines() if line.strip()]
    start = lines.index("Asset name") + 1 + len(BACKFILL_COLUMNS)
    assets: dict[str, dict[str, str]] = {}
    name = ""
    for i, line in enumerate(lines[start:], start):
        if line.endswith("% completed"):
            values = lines[i + 1 : i + 1 + len(BACKFILL_COLUMNS)]
            assets[name] = {"completed": line, **dict(zip(BACKFILL_COLUMNS, values, strict=True))}
        elif not line.isdigit():
            name = line
    return assets


def _summary(page: Page, label: str) -> list[str]:
    """The values under `label` in the backfill page's summary (Created, Duration, Partition
    selection, Status), one per line."""
    block = page.get_by_text(label, exact=True).locator("xpath=..")
    return [line.strip() for line in block.inner_text().splitlines()[1:] if line.strip()]


def launch_backfill(page: Page, base_url: str, run: str, report: Report) -> None:
    """Stop 3, its launch: on fold_models' Partitions tab, Materialize... opens the launch dialog: the run
    `run` in the run list, All folds, Launch backfill."""
    page.goto(f"{base_url}/assets/fold_models?view=partitions")
    page.get_by_text("Materialized (").first.wait_for()
    page.get_by_role("button", name="Materialize").first.click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize fold_models")
    dialog.get_by_text("Partition selection", exact=True).wait_for()
    # Each dimension has a selector (a popover with a filter box and a checkbox per key) and an All
    # button; the run first, while both selectors still show their placeholder.
    dialog.locator('[aria-haspopup="dialog"]').nth(1).click()
    popover = page.locator("[data-radix-popper-content-wrapper]").last
    popover.get_by_placeholder("Filter partitions").fill(run)
    popover.get_by_role("menuitem").filter(has=page.locator(f'[title="{run}"]')).click()
    dialog.get_by_text("Launch runs to materialize fold_models").click()  # closes the popover
    popover.wait_for(state="hidden")
    dialog.get_by_role("button", name="All", exact=True).first.click()
    report.backfill_dialog_count = dialog.get_by_text(re.compile(r"^[1-9]\d* partitions?$")).inner_text()
    dialog.get_by_role("button", name="Launch backfill").click()
    # The toast "Created backfill <id>" links to the backfill's page.
    link = page.locator("a[href*='/runs/b/']").first
    report.backfill_id = (link.get_attribute("href") or "").rstrip("/").split("/")[-1].split("?")[0]


def visit_backfill(page: Page, base_url: str, log: Path, out: Path, report: Report) -> None:
    """Stop 3, its outcome: the daemon runs the run's folds in one fold_models run (the asset's single-run
    backfill policy); once it is done, the backfill's page (Runs -> Backfills, /runs/b/<id>) shows its
    status per asset (Overview) and its run (Runs)."""
    wait_for_backfill(base_url, report.backfill_id, log)
    page.goto(f"{base_url}/runs/b/{report.backfill_id}")
    page.get_by_text("% completed").first.wait_for()
    report.backfill_status = " ".join(_summary(page, "Status"))
    report.backfill_partitions = _summary(page, "Partition selection")
    report.backfill_assets = _backfill_assets(page)
    _shoot(page, out, "backfill.png", report)

    page.goto(f"{base_url}/runs/b/{report.backfill_id}?tab=runs")
    # fold_models' backfill policy makes one run of a walkforward run's fold cells (a range of them).
    page.locator('[class*="RunsFeedRow_rowGrid"]').first.wait_for()
    report.backfill_runs = [row.get("Status", "") for row in _run_rows(page)]
    _shoot(page, out, "backfill_runs.png", report)


def visit_simulation(page: Page, base_url: str, sim: str, out: Path, report: Report) -> None:
    """Stop 4: Catalog -> simulation -> Partitions -> the sim. The metadata lists every metric; the
    `equity` entry's [Show Markdown] opens the equity and drawdown chart."""
    report.simulation = sim
    page.goto(f"{base_url}/assets/simulation?view=partitions&partition={urllib.parse.quote(sim)}")
    page.locator("table tr", has_text="max_drawdown").first.wait_for()
    report.simulation_metadata = _metadata_rows(page)
    # Scroll the metadata panel so the first metric rows are at the top of the screenshot.
    page.locator("tr").filter(has=page.get_by_text("first_ts", exact=True)).evaluate(
        "row => row.scrollIntoView({block: 'start'})"
    )
    _shoot(page, out, "simulation_metrics.png", report)

    equity = page.locator("tr").filter(has=page.get_by_text("equity", exact=True))
    equity.get_by_text("[Show Markdown]").click()
    chart = page.get_by_role("dialog").locator("img").first
    chart.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=chart.element_handle())
    report.equity_chart = {
        "alt": chart.get_attribute("alt"),
        "src_prefix": (chart.get_attribute("src") or "")[:22],
        **chart.evaluate("img => ({width: img.naturalWidth, height: img.naturalHeight})"),
    }
    _shoot(page, out, "simulation_equity.png", report)


def walk(
    data_dir: Path,
    dagster_home: Path,
    out: Path,
    simulation: str | None = None,
    chromium: str = CHROMIUM,
    env: Mapping[str, str] | None = None,
) -> Report:
    """Start the UI, visit every stop, save the screenshots under `out`; what the pages showed."""
    out.mkdir(parents=True, exist_ok=True)
    report = Report()
    with (
        code_server(data_dir, dagster_home, env) as server,
        webserver(data_dir, dagster_home, server, env) as base_url,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.add_init_script(DISMISS_NUX)
            context.set_default_timeout(PAGE_TIMEOUT_MS)
            page = context.new_page()
            visit_lineage(page, base_url, out, report)
            visit_fold_grid(page, base_url, out, report)
            sim = simulation or latest_partition(base_url, "simulation")
            launch_backfill(page, base_url, report.fold_partition.split("|")[1], report)
            # The daemon only from here: the first two pages show the demo as it was left, and its first
            # pass over the backfills (the later ones are 30 s apart) finds this one already stored.
            started = time.time()
            with daemon(data_dir, dagster_home, server, env) as log:
                visit_backfill(page, base_url, log, out, report)
                visit_simulation(page, base_url, sim, out, report)
                settle(base_url, log, started)
        finally:
            browser.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_default = Path(os.environ.get("TRADING_DATA_DIR", REPO / "data"))
    parser.add_argument(
        "--data-dir", type=Path, default=data_default, help="TRADING_DATA_DIR (default ./data)"
    )
    parser.add_argument(
        "--dagster-home",
        type=Path,
        default=None,
        help="DAGSTER_HOME (default $DAGSTER_HOME, else DATA_DIR/dagster_home as `make demo` uses)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img", help="screenshot folder")
    parser.add_argument("--simulation", help="simulation partition to open (default: the latest)")
    parser.add_argument("--chromium", default=CHROMIUM, help="Chromium executable")
    args = parser.parse_args(argv)
    data_dir = args.data_dir.resolve()
    home = args.dagster_home or Path(os.environ.get("DAGSTER_HOME", data_dir / "dagster_home"))
    report = walk(data_dir, home.resolve(), args.out.resolve(), args.simulation, args.chromium)
    metrics = {k: report.simulation_metadata.get(k) for k in ("total_return", "sharpe", "max_drawdown")}
    print(f"lineage       {len(report.lineage_nodes)} nodes: {', '.join(report.lineage_nodes)}")
    print(f"fold grid     {report.fold_counts}; selected {report.fold_partition}")
    print(
        f"backfill      {report.backfill_id} ({report.backfill_dialog_count}): {report.backfill_status}; "
        f"{report.backfill_assets}; runs {report.backfill_runs}"
    )
    print(f"simulation    {report.simulation}: {metrics}; chart {report.equity_chart}")
    for path in report.screenshots:
        print(f"screenshot    {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
