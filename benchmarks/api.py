"""HTTP API speed: catalog latency, and a 1M-row table streamed as Arrow IPC against reading it in process.

    .venv/bin/python benchmarks/api.py                  # 1M bars (ts + OHLCV: 6 columns)
    .venv/bin/python benchmarks/api.py --rows 200000    # smaller, quicker

A dataset of `--rows` one-minute bars is imported with `ingest_bars` into DuckDB files in a temporary
folder; `trading-assets serve` then runs on them in its own process (uvicorn, loopback), as a user starts it.
- catalog: `--requests` GETs of each catalog route over one keep-alive connection; p50 and p95 latency;
- Arrow IPC: the whole table through `GET /tables/{table}/rows?format=arrow`, read batch by batch by
  pyarrow's stream reader; MB/s of Arrow data received, and the server's peak RSS (VmHWM) before and after,
  beside the floor: the same rows read in this process with `store.read` and written as an IPC stream to
  memory (what the server does, without HTTP);
- time to first chart: headless Chromium (Debian's, through Playwright) opens the indicator explorer on
  the dataset, from navigation until its price pane is drawn (the page's `data-ready`), median of 5 loads;
  the server cuts the whole history to the pane's width, so the browser draws about a thousand points.
Figures are printed, never asserted; the aims of issue 16 are printed beside them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resources.duckdb_catalog import DuckDBCatalog  # noqa: E402
from resources.duckdb_store import DuckDBStore  # noqa: E402
from resources.landing import landing_file  # noqa: E402
from trading_assets.bars.service import ingest_bars  # noqa: E402
from trading_assets.compute.demo_data import generate_bars, write_export  # noqa: E402

ROUTES = (
    "/datasets",
    "/datasets/bench",
    "/indicator-sets",
    "/walkforward-runs",
    "/simulations",
    "/job-requests",
)
AIM_P95_MS, AIM_MB_S, AIM_CHART_S = 50.0, 100.0, 1.5
CHROMIUM = "/usr/bin/chromium"


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _serve(data: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TRADING_DATA_DIR": str(data),
        "TRADING_CATALOG": "duckdb",
        "TRADING_TIMESERIES": "duckdb",
        "TRADING_API_PORT": str(port),
        "TRADING_API_HOST": "127.0.0.1",
    }
    env.pop("TRADING_API_READ_TOKEN", None)
    command = [sys.executable, "-m", "trading_assets.cli", "serve"]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_up(url: str, process: subprocess.Popen[bytes]) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < 60:
        if process.poll() is not None:
            sys.exit(f"error: trading-assets serve exited with status {process.returncode}")
        try:
            if httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            time.sleep(0.05)
    sys.exit("error: trading-assets serve did not answer within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300, help="GETs per catalog route")
    parser.add_argument("--port", type=int, default=8799)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as scratch:
        run(args, Path(scratch))


def run(args: argparse.Namespace, work: Path) -> None:
    data = work / "data"
    (data / "landing").mkdir(parents=True)
    export = data / "landing" / "bench.txt"
    write_export(generate_bars(n_rows=args.rows, seed=1), export)
    store = DuckDBStore(path=str(data / "timeseries.duckdb"))
    catalog = DuckDBCatalog(path=str(data / "catalog.duckdb"))
    ingest_bars(landing_file(export, "bench"), store, catalog)
    print(
        f"{args.rows:,} bars x 6 columns (ts + OHLCV) in DuckDB; {os.cpu_count()} cores, {platform.machine()}"
    )

    url = f"http://127.0.0.1:{args.port}/api/v1"
    server = _serve(data, args.port)
    try:
        up = _wait_up(url, server)
        print(f"server         trading-assets serve (uvicorn, one process) answering after {up:.1f} s")
        rss_idle = _peak_rss_mib(server.pid)
        with httpx.Client(base_url=url, timeout=60) as client:
            aim = f"aim p95 < {AIM_P95_MS:.0f} ms"
            print(f"\ncatalog: {args.requests} GETs per route, one keep-alive connection ({aim})")
            print(f"  {'route':<22} {'p50 ms':>8} {'p95 ms':>8}  status")
            worst = 0.0
            for route in ROUTES:
                times = []
                for _ in range(args.requests):
                    started = time.perf_counter()
                    response = client.get(route)
                    times.append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
                p50 = statistics.median(times)
                p95 = statistics.quantiles(times, n=20)[-1]
                worst = max(worst, p95)
                print(f"  {route:<22} {p50:8.1f} {p95:8.1f}  {response.status_code}")
            print(f"  {aim}: {'met' if worst < AIM_P95_MS else 'NOT met'} (worst {worst:.1f} ms)")

            print(f"\nArrow IPC stream of the whole table (aim >= {AIM_MB_S:.0f} MB/s)")
            started = time.perf_counter()
            rows = nbytes = 0
            with client.stream("GET", "/tables/bench/rows", params={"format": "arrow"}) as response:
                response.raise_for_status()
                reader = ipc.open_stream(_ResponseFile(response))
                for batch in reader:
                    rows += batch.num_rows
                    nbytes += batch.nbytes
            api_s = time.perf_counter() - started
        rss_after = _peak_rss_mib(server.pid)
        chart = _first_chart(f"http://127.0.0.1:{args.port}/explore?dataset=bench")
    finally:
        server.terminate()
        server.wait(10)

    started = time.perf_counter()
    table = store.read("bench")
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=100_000)
    floor_s = time.perf_counter() - started
    mb = nbytes / 1e6
    print(f"  {'case':<52} {'seconds':>8} {'MB/s':>8}")
    print(f"  {'API: GET format=arrow, read by pyarrow stream reader':<52} {api_s:8.2f} {mb / api_s:8.0f}")
    print(f"  {'floor: store.read + IPC to memory, in process':<52} {floor_s:8.2f} {mb / floor_s:8.0f}")
    print(f"  rows {rows:,} of {table.num_rows:,}; {mb:.0f} MB of Arrow data")
    print(f"  server peak RSS: {rss_idle:.0f} MiB after start, {rss_after:.0f} MiB after the stream")
    rate = mb / api_s
    print(f"  aim >= {AIM_MB_S:.0f} MB/s: {'met' if rate >= AIM_MB_S else 'NOT met'} ({rate:.0f} MB/s)")
    aim = f"aim < {AIM_CHART_S} s"
    print(f"\ntime to first chart: {args.rows:,} bars in the indicator explorer, headless Chromium ({aim})")
    if chart is None:
        print(f"  not measured: no Chromium at {CHROMIUM}")
    else:
        loads, note = chart
        median = statistics.median(loads)
        each = ", ".join(f"{s:.2f}" for s in loads)
        print(f"  navigation -> price pane drawn: median {median:.2f} s of {len(loads)} loads ({each})")
        print(f"  the page said: {note}")
        print(f"  {aim}: {'met' if median < AIM_CHART_S else 'NOT met'} ({median:.2f} s)")


def _first_chart(url: str, loads: int = 5) -> tuple[list[float], str] | None:
    """Seconds from navigation to the explorer's drawn price pane, each load in a fresh page."""
    if not os.access(CHROMIUM, os.X_OK):
        return None
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        for _ in range(loads + 1):  # the first load warms the browser's cache of the scripts: not counted
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            started = time.perf_counter()
            page.goto(url)
            page.wait_for_selector("body[data-ready]", timeout=60_000)
            times.append(time.perf_counter() - started)
            note = page.inner_text("#note")
            page.close()
        browser.close()
    return times[1:], note


class _ResponseFile:
    """The streamed response body as the file-like object pyarrow's stream reader reads from."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_bytes()
        self._buffer = bytearray()
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out


if __name__ == "__main__":
    main()
