"""timeseries_stream: the streamed table downloaded whole through GET /api/v1/tables/{table}/rows, as an
Arrow IPC stream and as Parquet; each download must hold every row of the table (the time is to its last
byte; reading it back is not counted)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from locust import HttpUser, task

from loadtests.scenarios import Paced


def _rows(fmt: str, body: bytes) -> int:
    if fmt == "arrow":
        return ipc.open_stream(pa.BufferReader(body)).read_all().num_rows  # type: ignore[no-any-return]
    return pq.ParquetFile(pa.BufferReader(body)).metadata.num_rows  # type: ignore[no-any-return]


class Downloader(Paced, HttpUser):
    def _download(self, fmt: str) -> None:
        options = self.environment.parsed_options
        with self.client.get(
            f"/api/v1/tables/{options.stream_table}/rows",
            params={"format": fmt},
            name=f"GET /tables/[table]/rows?format={fmt}",
            catch_response=True,
            timeout=120,
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
                return
            rows = _rows(fmt, response.content)
            if rows != options.stream_rows:
                response.failure(f"{rows} rows, not the table's {options.stream_rows}")

    @task
    def arrow(self) -> None:
        self._download("arrow")

    @task
    def parquet(self) -> None:
        self._download("parquet")


USERS = [Downloader]


def host(options: Any) -> str:
    return options.api  # type: ignore[no-any-return]
