"""catalog_reads: the catalog's pages as the dashboard reads them: datasets, indicator sets, walkforward runs
(the list and one with its folds and thresholds), simulations (the list, one, a page of its trades). Each
answer must be 200 with JSON, the lists not empty."""

from __future__ import annotations

import random
from typing import Any

from locust import FastHttpUser, task

from loadtests.scenarios import Paced

# (route template, whether the answer is a list that must not be empty)
ROUTES = (
    ("/datasets", True),
    ("/datasets/{dataset}", False),
    ("/indicator-sets", True),
    ("/walkforward-runs", True),
    ("/walkforward-runs/{run}", False),
    ("/simulations", True),
    ("/simulations/{simulation}", False),
    ("/simulations/{simulation}/trades?limit=100", False),
)


class CatalogReader(Paced, FastHttpUser):
    @task
    def read(self) -> None:
        options = self.environment.parsed_options
        template, listed = random.choice(ROUTES)
        path = template.format(dataset=options.dataset, run=options.run, simulation=options.simulation)
        with self.client.get(f"/api/v1{path}", name=f"GET {template}", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {(response.text or '')[:200]}")
            elif listed and not response.json():
                response.failure("an empty list")


USERS = [CatalogReader]


def host(options: Any) -> str:
    return options.api  # type: ignore[no-any-return]
