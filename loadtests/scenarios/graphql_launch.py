"""graphql_launch: start_walkforward runs launched through the Dagster webserver's GraphQL API (the
`launchRun` mutation the UI's launchpad sends), each answered LaunchRunSuccess with a QUEUED run; both the
queued runs and all runs of the instance must grow by exactly the runs launched (`queue`, counted before and
after): the QueuedRunCoordinator holds them, and no daemon dequeues during the test."""

from __future__ import annotations

from typing import Any

import requests
from locust import FastHttpUser, task

from loadtests.scenarios import Paced

# The code location (workspace.yaml's module) and the name Dagster gives a lone Definitions' repository.
LOCATION, REPOSITORY = "trading_assets.definitions", "__repository__"
NAME = "POST /graphql launchRun"
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
COUNT = "query Count($filter: RunsFilter) { runsOrError(filter: $filter) { ... on Runs { count } } }"


class Launcher(Paced, FastHttpUser):
    @task
    def launch(self) -> None:
        options = self.environment.parsed_options
        config = {
            "dataset": options.dataset,
            "indicator_version": 1,
            "folds": {"train": "1500", "test": "500"},
        }
        params = {
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": REPOSITORY,
                "jobName": "start_walkforward",
            },
            "runConfigData": {"ops": {"register_walkforward_run": {"config": config}}},
            "executionMetadata": {"tags": [{"key": "loadtest", "value": "graphql_launch"}]},
        }
        payload = {"query": LAUNCH, "variables": {"params": params}}
        with self.client.post("/graphql", json=payload, name=NAME, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {(response.text or '')[:200]}")
                return
            launched = (response.json().get("data") or {}).get("launchRun") or {}
            if launched.get("__typename") != "LaunchRunSuccess" or launched["run"]["status"] != "QUEUED":
                response.failure(f"answered {str(launched or response.text)[:200]}")


USERS = [Launcher]


def host(options: Any) -> str:
    return options.webserver  # type: ignore[no-any-return]


QUEUE = "the queued runs and all runs"


def queue(options: Any) -> tuple[int, int]:
    return _count(options, ["QUEUED"]), _count(options, None)


def _count(options: Any, statuses: list[str] | None) -> int:
    variables = {"filter": {"statuses": statuses} if statuses else {}}
    answer = requests.post(
        f"{options.webserver}/graphql", json={"query": COUNT, "variables": variables}, timeout=60
    )
    answer.raise_for_status()
    return int(answer.json()["data"]["runsOrError"]["count"])
