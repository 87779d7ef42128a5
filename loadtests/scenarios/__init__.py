"""One module per scenario, each with its locust user classes (USERS), the server it loads (`host`) and,
where the load leaves something to verify, a `check` run once its users stopped. The modules import locust,
which patches the process for gevent: only loadtests/swarm.py imports them."""

from __future__ import annotations

import random


class Paced:
    """A user that waits between `wait_s` seconds (the scenario's [low, high] in limits.yaml) after each
    task. Put before the locust user class among the bases."""

    environment: object

    def wait_time(self) -> float:
        low, high = self.environment.parsed_options.wait_s  # type: ignore[attr-defined]
        return random.uniform(low, high)
