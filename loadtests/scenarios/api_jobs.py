"""api_jobs: walkforward runs submitted through the API (POST /api/v1/job-requests/walkforward with the
write token), each answered 201 with a QUEUED request; the queue of requests must grow by exactly the
requests accepted (`queue`, counted before and after)."""

from __future__ import annotations

from typing import Any

import requests
from locust import FastHttpUser, task

from loadtests.scenarios import Paced

NAME = "POST /job-requests/walkforward"


class JobSubmitter(Paced, FastHttpUser):
    @task
    def submit(self) -> None:
        options = self.environment.parsed_options
        body = {"dataset": options.dataset, "indicator_version": 1, "folds": {"train": "1500", "test": "500"}}
        headers = {"Authorization": f"Bearer {options.write_token}", "X-Requested-By": "loadtest"}
        with self.client.post(
            "/api/v1/job-requests/walkforward", json=body, headers=headers, name=NAME, catch_response=True
        ) as response:
            if response.status_code != 201:
                response.failure(f"status {response.status_code}: {(response.text or '')[:200]}")
            elif response.json().get("status") != "QUEUED":
                response.failure(f"answered {response.text[:200]}")


USERS = [JobSubmitter]


def host(options: Any) -> str:
    return options.api  # type: ignore[no-any-return]


QUEUE = "the queued walkforward requests"


def queue(options: Any) -> tuple[int]:
    listed = requests.get(
        f"{options.api}/api/v1/job-requests", params={"status": "QUEUED", "kind": "walkforward"}, timeout=60
    )
    listed.raise_for_status()
    return (len(listed.json()),)
