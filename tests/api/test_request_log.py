"""`trading-assets serve` logs every request as one line (method, path, status, latency in ms, client),
whatever its outcome, and never the bearer token nor the query string a client sent (uvicorn's own access
line, which would, is off)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_setup import _free_port

READ_TOKEN = "reader-token-0123456789"
QUERY_SECRET = "query-secret-9876543210"
LINE = re.compile(
    r"INFO: +(?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) (?P<ms>\d+\.\d) ms 127\.0\.0\.1:\d+$"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The API on the embedded catalog of a fresh data folder, reads behind a token; its address and log."""
    folder = tmp_path_factory.mktemp("serve")
    port = _free_port()
    env = os.environ | {"TRADING_DATA_DIR": str(folder / "data"), "TRADING_API_READ_TOKEN": READ_TOKEN}
    for backend in ("TRADING_CATALOG", "TRADING_TIMESERIES", "TRADING_API_WRITE_TOKEN"):
        env.pop(backend, None)
    log = folder / "serve.log"
    command = [str(Path(sys.executable).with_name("trading-assets")), "serve", "--port", str(port)]
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while "Uvicorn running" not in log.read_text():
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield base, log
    finally:
        server.terminate()
        server.wait(timeout=10)


def request(base: str, path: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(base + path, headers=headers), timeout=10
        ) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code


def logged(log: Path, path: str) -> list[dict[str, str]]:
    """The request lines of `path`, waited for (the server writes each once the response is sent)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [
            m.groupdict() for m in map(LINE.match, log.read_text().splitlines()) if m and m["path"] == path
        ]
        if lines or time.monotonic() > deadline:
            return lines


def test_each_request_is_one_line_with_its_method_path_status_latency_and_client(
    served: tuple[str, Path],
) -> None:
    base, log = served
    assert request(base, "/api/v1/datasets", READ_TOKEN) == 200

    [line] = logged(log, "/api/v1/datasets")
    assert (line["method"], line["status"]) == ("GET", "200")
    assert float(line["ms"]) > 0


def test_refused_and_unknown_requests_are_logged_with_their_status(served: tuple[str, Path]) -> None:
    base, log = served
    assert request(base, "/api/v1/simulations") == 401
    assert request(base, "/api/v1/nowhere", READ_TOKEN) == 404

    assert [line["status"] for line in logged(log, "/api/v1/simulations")] == ["401"]
    assert [line["status"] for line in logged(log, "/api/v1/nowhere")] == ["404"]


def test_neither_the_bearer_token_nor_the_query_string_is_ever_logged(served: tuple[str, Path]) -> None:
    base, log = served
    assert request(base, f"/api/v1/datasets/none?token={QUERY_SECRET}", READ_TOKEN) == 404

    assert [line["status"] for line in logged(log, "/api/v1/datasets/none")] == ["404"]
    text = log.read_text()
    assert READ_TOKEN not in text and QUERY_SECRET not in text and "token=" not in text
