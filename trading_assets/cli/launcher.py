"""In-process execution of the code location's jobs, for the commands that run the pipeline in the
foreground (`demo`, `walkforward`, `simulate`, `indicators`, `sweep`): the runs the daemon's sensors would
launch, in order, on the same Dagster instance, so each one is in the UI's history as if the daemon had
launched it.

A foreground command registers its run, sim or set with a target (its job request is never QUEUED, so
no intake run takes it), but the daemon's sensors launch the runs of every registered target: with a
daemon alive on the same instance, the commands that register refuse to start (`daemon_conflict`)."""

import logging
import os
import sys
import time
from typing import Any

from trading_assets import settings as cfg

# How a step that was interrupted (Ctrl-C) ends in Dagster's record of it: a failure of this class.
INTERRUPTS = ("KeyboardInterrupt", "DagsterExecutionInterruptedError")
# The sensor daemon writes a heartbeat every 30 s: one younger than three of those is a daemon alive.
DAEMON_ALIVE_S = 90.0


class Launcher:
    """Executes the code location's jobs in process on one Dagster instance, quietly: the console shows
    only messages at `log_level` and above (the UI keeps every run's whole log)."""

    def __init__(self, defs: Any, instance: Any, log_level: str = "WARNING") -> None:
        self.defs, self.instance = defs, instance
        self.quiet = {"loggers": {"console": {"config": {"log_level": log_level}}}}

    @classmethod
    def for_settings(cls, settings: cfg.Settings, log_level: str = "WARNING") -> "Launcher":
        """The definitions built on `settings`, on the instance of its Dagster home."""
        import dagster as dg

        from trading_assets.definitions import build_definitions

        os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
        settings.dagster_home.mkdir(parents=True, exist_ok=True)
        return cls(build_definitions(settings), dg.DagsterInstance.get(), log_level)

    def execute(
        self, job: str, partition_key: Any = None, ops: dict | None = None, tags: dict | None = None
    ) -> Any:
        return self.defs.resolve_job_def(job).execute_in_process(
            instance=self.instance,
            partition_key=partition_key,
            tags=tags,
            raise_on_error=False,
            run_config={**self.quiet, "ops": ops} if ops else self.quiet,
        )

    def request_tags(self, registered: Any) -> dict[str, str]:
        """The tags of a run of the job request that the launchpad run `registered` submitted: the runs
        a sensor would launch for it carry them, so the request's lifecycle follows them."""
        from trading_assets.requests.service import REQUEST_TAG, SUBMITTED_TAG

        return {REQUEST_TAG: self.instance.get_run_by_id(registered.run_id).tags[SUBMITTED_TAG]}

    def settle_requests(self, kind: str, catalog: Any) -> None:
        """Mirror the runs into their requests' lifecycle, as the daemon's sensors would (`reconcile`):
        without a daemon the request would stay QUEUED."""
        from trading_assets.requests.service import reconcile

        reconcile(kind, catalog, self.instance, logging.getLogger(__name__))


def register_from_file(kind: str, path: str, job: str, op: str, noun: str) -> tuple[Launcher, Any, Any] | int:
    """Read `path` as the `kind` config and register it through its launchpad `job` (op `op`), in process:
    (launcher, config, the registering run's result), or the exit code after one line on stderr (2: a field
    error, nothing written; 1: a daemon would run it too, or the `noun` was not registered)."""
    from trading_assets.cli.submit import read_config
    from trading_assets.requests.service import RequestInvalid

    try:
        config = read_config(kind, path)
    except RequestInvalid as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    launcher = foreground_launcher(f"`trading-assets submit {kind} {path}` queues it for the daemon")
    if isinstance(launcher, int):
        return launcher
    registered = register(launcher, job, op, config.model_dump(mode="json", exclude_unset=True), noun)
    if isinstance(registered, int):
        return registered
    return launcher, config, registered


def foreground_launcher(instead: str) -> Launcher | int:
    """The launcher of the settings' instance, quiet (a failed step logs its stack trace at ERROR: the
    commands say what failed in one line instead); or 1 after one line on stderr if a daemon is alive on
    that instance, saying what to do `instead`."""
    launcher = Launcher.for_settings(cfg.Settings.from_env(), log_level="CRITICAL")
    if (conflict := daemon_conflict(launcher.instance)) is not None:
        print(f"error: {conflict}; {instead}, or stop the daemon", file=sys.stderr)
        return 1
    return launcher


def daemon_conflict(instance: Any) -> str | None:
    """Why the foreground must not run on `instance`: its sensor daemon is alive, and its sensors would
    launch the runs of what the command registers a second time; None if no sensor daemon beats."""
    beat = instance.get_daemon_heartbeats().get("SENSOR")
    age = None if beat is None else time.time() - beat.timestamp
    if age is None or age > DAEMON_ALIVE_S:
        return None
    return (
        f"a Dagster daemon is running on {instance.root_directory} (heartbeat {age:.0f}s ago): its sensors "
        "would run this a second time"
    )


def register(launcher: Launcher, job: str, op: str, config: dict[str, Any], noun: str) -> Any | int:
    """The result of the launchpad `job` run registering `config` (op `op`), or 1 after one line on stderr
    if the `noun` was not registered."""
    registered = launcher.execute(job, ops={op: {"config": config}})
    if not registered.success:
        print(f"error: the {noun} was not registered: {failure(registered)}", file=sys.stderr)
        return 1
    return registered


def interrupted(result: Any) -> bool:
    """Whether a step of the run was interrupted (Ctrl-C): Dagster ends the run as failed, not raising."""
    return any(e.step_failure_data.error.cls_name in INTERRUPTS for e in _failures(result))


def metadata(result: Any, node: str) -> dict[str, Any]:
    """The values of the first materialisation's metadata of `node` in the run."""
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def failure(result: Any) -> str:
    """The first line of what failed the run, and the run's id to find it in the UI."""
    messages = [
        (e.step_failure_data.user_failure_data.description if e.step_failure_data.user_failure_data else None)
        or _user_error(e.step_failure_data.error).message
        for e in _failures(result)
    ]
    first = (messages[0].strip().splitlines() or ["failed"])[0] if messages else "failed"
    return f"{first} (run {result.run_id}; its logs are in the Dagster UI, make dev)"


def _user_error(error: Any) -> Any:
    """The error the step's code raised, not Dagster's wrapper around it."""
    wrapped = error.cls_name == "DagsterExecutionStepExecutionError" and error.cause is not None
    return error.cause if wrapped else error


def _failures(result: Any) -> list[Any]:
    return [e for e in result.all_events if e.is_step_failure and e.step_failure_data.error is not None]


class Progress:
    """Reports each finished item: a bar redrawn in place on a terminal, else one line per item."""

    def __init__(self, total: int, noun: str) -> None:
        self.total, self.noun, self.done = total, noun, 0
        self.tty = sys.stdout.isatty()
        self.started = time.perf_counter()

    def step(self, summary: str, seconds: float) -> None:
        self.done += 1
        if not self.tty:
            print(f"{self.noun} {self.done}/{self.total} done: {summary}, {seconds:.1f}s", flush=True)
            return
        filled = round(30 * self.done / self.total)
        elapsed = time.perf_counter() - self.started
        bar = f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {self.noun}s"
        end = "" if self.done < self.total else "\n"
        print(f"\r{bar}  {summary}  {elapsed:.0f}s\x1b[K", end=end, flush=True)

    def stop(self) -> None:
        """End the bar's line early (an interrupt or a failure)."""
        if self.tty and 0 < self.done < self.total:
            print()
