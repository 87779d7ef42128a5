"""What the exporter reads of the catalog: job requests by status and the oldest queued one, each dataset's
lag, the live services' heartbeats as the operator's page judges them (`live.alerts.service_states`), and
the schema's applied version beside the one the code needs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from prometheus_client.metrics_core import Metric as Family

from resources.catalog import Catalog
from trading_assets.live.alerts import SERVICE_STATES, service_states
from trading_assets.ops.metrics import Metric
from trading_assets.records import JOB_KINDS, JOB_STATUSES

# The states a service's current instance can be in: the page's, and `stopped` (its last beat said it was
# exiting, and no successor has beaten yet).
LIVE_STATES = (*SERVICE_STATES, "stopped")

JOB_REQUESTS = Metric(
    "trading_job_requests", "gauge", "Job requests by kind and status (0 included)", ("kind", "status")
)
OLDEST_REQUEST = Metric(
    "trading_job_request_oldest_queued_age_seconds",
    "gauge",
    "How long the oldest QUEUED job request of each kind has waited since it was submitted (0 when none)",
    ("kind",),
)
BAR_AGE = Metric(
    "trading_dataset_last_bar_age_seconds",
    "gauge",
    "Now minus the open time of the newest bar the catalog records for the dataset (its last_ts)",
    ("dataset",),
)
IMPORT_AGE = Metric(
    "trading_dataset_last_import_age_seconds",
    "gauge",
    "Now minus the dataset's last import (its catalog row's updated_at)",
    ("dataset",),
)
BAR_INTERVAL = Metric(
    "trading_dataset_bar_interval_seconds", "gauge", "The dataset's bar interval", ("dataset",)
)
ROLLING = Metric(
    "trading_dataset_rolling_runs",
    "gauge",
    "Walkforward runs marked rolling on the dataset: it is expected to gain bars (the lag alert's scope)",
    ("dataset",),
)
BEAT_AGE = Metric(
    "trading_live_heartbeat_age_seconds",
    "gauge",
    "Since the last beat of each live service's current instance (of the executor, per venue account)",
    ("service", "scope", "service_instance"),
)
SERVICE_STATE = Metric(
    "trading_live_service_state",
    "gauge",
    "1 for the state each live service is in (ok, not ready, late, down, stopped), 0 for the others; "
    "`runbook` names the page in docs/runbooks/ for a state that has one",
    ("service", "scope", "state", "runbook"),
)
SCHEMA_VERSION = Metric(
    "trading_catalog_schema_version",
    "gauge",
    "The newest migration applied to the catalog (0 before the first)",
)
SCHEMA_EXPECTED = Metric(
    "trading_catalog_schema_expected_version",
    "gauge",
    "The newest migration this code ships: the schema it needs (each run's trading/schema_version tag)",
)
SCHEMA_PENDING = Metric(
    "trading_catalog_schema_pending_migrations", "gauge", "Migrations shipped and not applied to the catalog"
)


class CatalogSource:
    """The catalog's job requests, datasets and live heartbeats."""

    name = "catalog"
    metrics = (
        JOB_REQUESTS,
        OLDEST_REQUEST,
        BAR_AGE,
        IMPORT_AGE,
        BAR_INTERVAL,
        ROLLING,
        BEAT_AGE,
        SERVICE_STATE,
    )

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def collect(self, now: datetime) -> Iterable[Family]:
        yield from self._requests(now)
        yield from self._datasets(now)
        yield from self._live(now)

    def _requests(self, now: datetime) -> Iterable[Family]:
        requests = self.catalog.list_job_requests()
        counts = Counter((r.kind, r.status) for r in requests)
        family = JOB_REQUESTS.family()
        for kind in JOB_KINDS:
            for status in JOB_STATUSES:
                family.add_metric([kind, status], float(counts[(kind, status)]))
        yield family
        oldest = OLDEST_REQUEST.family()
        for kind in JOB_KINDS:
            # Listed oldest first.
            queued = [r.created_at for r in requests if r.kind == kind and r.status == "QUEUED"]
            oldest.add_metric([kind], max(0.0, (now - queued[0]).total_seconds()) if queued else 0.0)
        yield oldest

    def _datasets(self, now: datetime) -> Iterable[Family]:
        datasets = self.catalog.list_datasets()
        rolling = Counter(run.dataset for run in self.catalog.list_walkforward_runs() if run.rolling)
        bars, imports, intervals, followed = (
            m.family() for m in (BAR_AGE, IMPORT_AGE, BAR_INTERVAL, ROLLING)
        )
        for d in datasets:
            bars.add_metric([d.name], (now - d.last_ts).total_seconds())
            if d.updated_at is not None:
                imports.add_metric([d.name], (now - d.updated_at).total_seconds())
            intervals.add_metric([d.name], float(d.bar_interval_s))
            followed.add_metric([d.name], float(rolling[d.name]))
        return bars, imports, intervals, followed

    def _live(self, now: datetime) -> Iterable[Family]:
        ages, states = BEAT_AGE.family(), SERVICE_STATE.family()
        for s in service_states(self.catalog.list_heartbeats(), now):
            scope = s.scope or ""
            ages.add_metric([s.service, scope, s.instance], s.age_s)
            for state in LIVE_STATES:
                states.add_metric([s.service, scope, state, s.runbook or ""], float(state == s.state))
        return ages, states


class SchemaSource:
    """The catalog's schema against the migrations this code ships (read only: it never migrates)."""

    name = "catalog_schema"
    metrics = (SCHEMA_VERSION, SCHEMA_EXPECTED, SCHEMA_PENDING)

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def collect(self, now: datetime) -> Iterable[Family]:
        status = self.catalog.schema_status()
        version, expected, pending = (m.family() for m in self.metrics)
        version.add_metric([], float(status.version or 0))
        expected.add_metric([], float(status.expected))
        pending.add_metric([], float(len(status.pending)))
        return version, expected, pending
