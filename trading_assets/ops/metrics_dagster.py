"""What the exporter reads of the Dagster instance: its runs by job and status, the run queue, the runs and
steps that finished within a window, and the daemons' heartbeats (SQLite or Postgres storage alike)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import sqlalchemy as db
from dagster._core.storage.runs.schema import RunsTable
from dagster._core.storage.runs.sql_run_storage import SqlRunStorage
from prometheus_client.metrics_core import Metric as Family

from trading_assets.ops.metrics import Metric, histogram

FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)

RUNS = Metric(
    "trading_dagster_runs",
    "gauge",
    "Runs in the instance's storage by job and status (every status of a job that has runs, 0 included)",
    ("dagster_job", "status"),
)
OLDEST_QUEUED = Metric(
    "trading_dagster_oldest_queued_run_age_seconds",
    "gauge",
    "How long the oldest QUEUED run has waited since it was created (0 when none waits)",
)
RUN_SECONDS = Metric(
    "trading_dagster_run_duration_seconds",
    "histogram",
    "Start to end of the runs that finished within the window, by job and status",
    ("dagster_job", "status"),
)
FAILED = Metric(
    "trading_dagster_recent_failed_runs",
    "gauge",
    "Runs that ended FAILURE within the window (those that failed before starting included), by job",
    ("dagster_job",),
)
STEP_SECONDS = Metric(
    "trading_dagster_step_duration_seconds",
    "histogram",
    "Start to end of the steps of the newest runs that finished within the window, by job, step and status",
    ("dagster_job", "step", "status"),
)
WINDOW = Metric(
    "trading_dagster_window_seconds", "gauge", "The window the recent runs and steps are read over"
)
DAEMON_AGE = Metric(
    "trading_dagster_daemon_heartbeat_age_seconds",
    "gauge",
    "Since the last heartbeat of each daemon that has ever beaten on this instance",
    ("daemon",),
)


@dataclass(frozen=True)
class DagsterLimits:
    """How much of the instance one scrape reads: runs finished within `window`, at most `runs` of them,
    and the steps of the newest `step_runs` of those (one event-log read each)."""

    window: timedelta = timedelta(hours=1)
    runs: int = 1000
    step_runs: int = 10


class DagsterSource:
    """The Dagster instance of `home` (DAGSTER_HOME: its dagster.yaml, else SQLite files there), opened at
    the first scrape that reaches it and kept."""

    name = "dagster"
    metrics = (RUNS, OLDEST_QUEUED, RUN_SECONDS, FAILED, STEP_SECONDS, WINDOW, DAEMON_AGE)

    def __init__(self, home: Path, limits: DagsterLimits = DagsterLimits()) -> None:
        self.home = home
        self.limits = limits
        self._instance: dg.DagsterInstance | None = None

    def instance(self) -> dg.DagsterInstance:
        if self._instance is None:
            if not self.home.is_dir():
                raise FileNotFoundError(f"{self.home}: no such Dagster home (DAGSTER_HOME)")
            self._instance = dg.DagsterInstance.from_config(str(self.home))
        return self._instance

    def collect(self, now: datetime) -> Iterable[Family]:
        instance = self.instance()
        yield self._runs(instance)
        yield self._queue(instance, now)
        since = now - self.limits.window
        updated = instance.get_run_records(
            dg.RunsFilter(statuses=list(FINISHED), updated_after=since), limit=self.limits.runs
        )
        # Storage filters on the last update; a run also ended within the window (if it says when).
        finished = [r for r in updated if r.end_time is None or r.end_time >= since.timestamp()]
        yield from self._finished(finished)
        yield self._steps(instance, finished)
        window = WINDOW.family()
        window.add_metric([], self.limits.window.total_seconds())
        yield window
        daemons = DAEMON_AGE.family()
        for daemon, beat in sorted(instance.get_daemon_heartbeats().items()):
            daemons.add_metric([daemon], max(0.0, now.timestamp() - beat.timestamp))
        yield daemons

    @staticmethod
    def _runs(instance: dg.DagsterInstance) -> Family:
        storage = instance.run_storage
        if not isinstance(storage, SqlRunStorage):
            raise TypeError(f"runs are counted on SQL run storage, not {type(storage).__name__}")
        # One GROUP BY: Dagster's public API counts one filter (one job and status) per query.
        job, status = RunsTable.c.pipeline_name, RunsTable.c.status
        query = db.select(job, status, db.func.count().label("runs")).group_by(job, status)
        counts = {(row["pipeline_name"], row["status"]): row["runs"] for row in storage.fetchall(query)}
        family = RUNS.family()
        for job in sorted({job for job, _ in counts}):
            for status in dg.DagsterRunStatus:
                family.add_metric([job, status.value], float(counts.get((job, status.value), 0)))
        return family

    @staticmethod
    def _queue(instance: dg.DagsterInstance, now: datetime) -> Family:
        oldest = instance.get_run_records(
            dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]),
            limit=1,
            order_by="create_timestamp",
            ascending=True,
        )
        family = OLDEST_QUEUED.family()
        waited = (now - oldest[0].create_timestamp).total_seconds() if oldest else 0.0
        family.add_metric([], max(0.0, waited))
        return family

    @staticmethod
    def _finished(records: Iterable[dg.RunRecord]) -> Iterable[Family]:
        durations: dict[tuple[str, str], list[float]] = defaultdict(list)
        failed: Counter[str] = Counter()
        for record in records:
            run = record.dagster_run
            if run.status == dg.DagsterRunStatus.FAILURE:
                failed[run.job_name] += 1
            if record.start_time is not None and record.end_time is not None:
                durations[(run.job_name, run.status.value)].append(record.end_time - record.start_time)
        seconds = RUN_SECONDS.family()
        for labels, values in sorted(durations.items()):
            histogram(seconds, labels, values)
        yield seconds
        failures = FAILED.family()
        for job in sorted({job for job, _ in durations} | set(failed)):
            failures.add_metric([job], float(failed[job]))
        yield failures

    def _steps(self, instance: dg.DagsterInstance, records: Iterable[dg.RunRecord]) -> Family:
        durations: dict[tuple[str, str, str], list[float]] = defaultdict(list)
        started = [r for r in records if r.start_time is not None][: self.limits.step_runs]
        for record in started:
            for step in instance.get_run_step_stats(record.dagster_run.run_id):
                if step.start_time is None or step.end_time is None:
                    continue
                status = step.status.value if step.status is not None else "UNKNOWN"
                key = (record.dagster_run.job_name, step.step_key, status)
                durations[key].append(step.end_time - step.start_time)
        family = STEP_SECONDS.family()
        for labels, values in sorted(durations.items()):
            histogram(family, labels, values)
        return family
