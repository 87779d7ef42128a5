"""Where local state lives and which backends are switched on, read from environment variables.

TRADING_DATA_DIR      all local state (default ./data)
TRADING_LANDING_DIR   where exports land (default $TRADING_DATA_DIR/landing)
TRADING_SETS_DIR      where indicator-set files are dropped (default $TRADING_DATA_DIR/indicator_sets)
TRADING_INDICATOR_MODULES  comma-separated Python modules that register users' own indicators
TRADING_ARTIFACTS_DIR where fold models are saved (default $TRADING_DATA_DIR/artifacts)
TRADING_DEVICE        auto (default: CUDA when XGBoost and a GPU are there) | cpu | cuda
DAGSTER_HOME          the Dagster instance (default $TRADING_DATA_DIR/dagster_home)
TRADING_TIMESERIES    duckdb (default) | questdb: QUESTDB_ADDR=host:http_port, QUESTDB_USER, QUESTDB_PASSWORD
TRADING_CATALOG       duckdb (default) | postgres: PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE,
                      TRADING_CATALOG_SCHEMA
TRADING_EXECUTOR      in_process (default) | multiprocess | celery: TRADING_CELERY_BROKER,
                      TRADING_CELERY_BACKEND | k8s: a Kubernetes Job per step (the k8s extra)
TRADING_LIVE_ACCOUNTS the venue accounts live_reconciliation asks for their fills: a JSON list of
                      live_accounts entries, e.g. [{"venue": "binance", "account": "main", "broker": "venue"}]
                      (paper accounts under $TRADING_DATA_DIR/live need none)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

# The resources are imported by the functions that build them: a command that only needs the catalog
# (`trading-assets submit`, `runs`) does not load the parser's numba kernels, the QuestDB client or the
# indicator library.
if TYPE_CHECKING:
    from resources.compute import ComputeResource
    from resources.duckdb_catalog import DuckDBCatalog
    from resources.duckdb_store import DuckDBStore
    from resources.landing import LandingFolder
    from resources.postgres_catalog import PostgresCatalog
    from resources.questdb_store import QuestDBStore
    from resources.sets_folder import SetsFolder
    from trading_assets.live.reconcile import LiveAccounts

EXECUTORS = ("in_process", "multiprocess", "celery", "k8s")

# The celery executor's broker and result backend URLs; the same variables configure the workers
# (deploy/celery.yaml).
CELERY_ENV = ("TRADING_CELERY_BROKER", "TRADING_CELERY_BACKEND")


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    landing_dir: Path
    sets_dir: Path
    artifacts_dir: Path
    dagster_home: Path
    timeseries: str
    catalog: str
    indicator_modules: tuple[str, ...] = ()
    device: str = "auto"
    executor: str = "in_process"

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = Path(os.environ.get("TRADING_DATA_DIR", "data")).resolve()
        settings = cls(
            data_dir=data_dir,
            landing_dir=Path(os.environ.get("TRADING_LANDING_DIR", data_dir / "landing")).resolve(),
            sets_dir=Path(os.environ.get("TRADING_SETS_DIR", data_dir / "indicator_sets")).resolve(),
            artifacts_dir=Path(os.environ.get("TRADING_ARTIFACTS_DIR", data_dir / "artifacts")).resolve(),
            dagster_home=Path(os.environ.get("DAGSTER_HOME", data_dir / "dagster_home")).resolve(),
            timeseries=os.environ.get("TRADING_TIMESERIES", "duckdb"),
            catalog=os.environ.get("TRADING_CATALOG", "duckdb"),
            device=os.environ.get("TRADING_DEVICE", "auto"),
            executor=os.environ.get("TRADING_EXECUTOR", "in_process"),
            indicator_modules=tuple(
                m.strip() for m in os.environ.get("TRADING_INDICATOR_MODULES", "").split(",") if m.strip()
            ),
        )
        if settings.timeseries not in ("duckdb", "questdb"):
            raise ValueError(f"TRADING_TIMESERIES must be duckdb or questdb, not {settings.timeseries!r}")
        if settings.catalog not in ("duckdb", "postgres"):
            raise ValueError(f"TRADING_CATALOG must be duckdb or postgres, not {settings.catalog!r}")
        if settings.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"TRADING_DEVICE must be auto, cpu or cuda, not {settings.device!r}")
        if settings.executor not in EXECUTORS:
            raise ValueError(
                f"TRADING_EXECUTOR must be in_process, multiprocess, celery or k8s, not {settings.executor!r}"
            )
        if settings.executor == "celery":
            # Checked at load: an unset variable would otherwise only fail the first run that starts.
            missing = [name for name in CELERY_ENV if not os.environ.get(name)]
            if missing:
                raise ValueError(f"TRADING_EXECUTOR=celery needs {' and '.join(missing)}")
        return settings


def _secret(name: str) -> str | None:
    # dg.EnvVar keeps the secret out of config and the UI; an unset optional secret means "no password".
    return dg.EnvVar(name) if os.environ.get(name) else None


def timeseries_store(settings: Settings) -> DuckDBStore | QuestDBStore:
    if settings.timeseries == "questdb":
        from resources.questdb_store import QuestDBStore

        host, _, port = os.environ.get("QUESTDB_ADDR", "127.0.0.1:9000").rpartition(":")
        return QuestDBStore(
            host=host or "127.0.0.1",
            http_port=int(port),
            username=os.environ.get("QUESTDB_USER"),
            password=_secret("QUESTDB_PASSWORD"),
        )
    from resources.duckdb_store import DuckDBStore

    return DuckDBStore(path=str(settings.data_dir / "timeseries.duckdb"))


def catalog(settings: Settings) -> DuckDBCatalog | PostgresCatalog:
    if settings.catalog == "postgres":
        from resources.postgres_catalog import PostgresCatalog

        return PostgresCatalog(
            host=os.environ.get("PGHOST", "127.0.0.1"),
            port=int(os.environ.get("PGPORT", "5432")),
            user=os.environ.get("PGUSER", "postgres"),
            password=_secret("PGPASSWORD"),
            dbname=os.environ.get("PGDATABASE", "trading_assets"),
            schema_name=os.environ.get("TRADING_CATALOG_SCHEMA", "public"),
        )
    from resources.duckdb_catalog import DuckDBCatalog

    return DuckDBCatalog(path=str(settings.data_dir / "catalog.duckdb"))


def landing(settings: Settings) -> LandingFolder:
    from resources.landing import LandingFolder

    return LandingFolder(path=str(settings.landing_dir))


def sets_folder(settings: Settings) -> SetsFolder:
    from resources.sets_folder import SetsFolder

    return SetsFolder(path=str(settings.sets_dir))


def compute(settings: Settings) -> ComputeResource:
    from resources.compute import ComputeResource

    return ComputeResource(device=settings.device, artifacts_dir=str(settings.artifacts_dir))  # type: ignore[arg-type]


def live_accounts(settings: Settings) -> LiveAccounts:
    from trading_assets.live.reconcile import LiveAccount, LiveAccounts

    text = os.environ.get("TRADING_LIVE_ACCOUNTS", "").strip()
    try:
        listed = json.loads(text) if text else []
        if not isinstance(listed, list):
            raise ValueError("not a JSON list")
        accounts = [LiveAccount(**entry) for entry in listed]
    except (ValueError, TypeError) as err:
        raise ValueError(f"TRADING_LIVE_ACCOUNTS: {err}") from None
    # Where `trading-assets live executor` keeps a paper account by default.
    return LiveAccounts(accounts=accounts, paper_dir=str(settings.data_dir / "live"))


def executor(settings: Settings) -> dg.ExecutorDefinition | None:
    """The executor of every job: `in_process` runs a run's steps one after another in the run's own
    process, so a run the daemon launches pays one process start, not one more per step (about as long as
    importing the code location: seconds, where a fold step can take milliseconds); `multiprocess`
    (None: Dagster's default) runs each step in a process of its own; `celery` on celery workers; `k8s`
    each step in a Kubernetes Job of its own, shaped by the step's `dagster-k8s/config` tag."""
    if settings.executor == "in_process":
        return dg.in_process_executor
    if settings.executor == "k8s":
        return _k8s_executor()
    if settings.executor != "celery":
        return None
    # Imported only when chosen: celery is not loaded by the embedded default.
    from dagster_celery import celery_executor

    # Env references, resolved when a run starts: a broker URL may hold a password, which so stays out of
    # the code and of every run's config.
    broker, backend = CELERY_ENV
    return celery_executor.configured({"broker": {"env": broker}, "backend": {"env": backend}}, name="celery")


def _k8s_executor() -> dg.ExecutorDefinition:
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError:
        raise ValueError("TRADING_EXECUTOR=k8s needs dagster-k8s: install trading-assets[k8s]") from None
    # Unconfigured: the step Jobs take the image, namespace and cluster access of the K8sRunLauncher that
    # started the run, and its env, Secrets and volumes with the code location's (dagster-values.yaml).
    return k8s_job_executor
