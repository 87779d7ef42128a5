"""What the API tests share beside their fixtures (tests/api/conftest.py): the tokens, the demo's handles
and a real server. A module of its own name, so tests import it wherever pytest put another conftest."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore
from trading_assets.api.app import create_app
from trading_assets.api.settings import ApiSettings

WRITE_TOKEN = "write-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdef"


@dataclass
class Demo:
    data: Path
    catalog: DuckDBCatalog
    store: DuckDBStore
    # Runs the code location's jobs in process on the demo's instance, as the daemon would launch them.
    launcher: Any = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(settings: ApiSettings, demo: Demo) -> Iterator[str]:
    """The app on a real uvicorn server in a thread; its base URL."""
    app = create_app(settings, catalog=demo.catalog, store=demo.store)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        thread.join(10)
