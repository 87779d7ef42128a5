"""`simulation_sensor`: runs registered simulations, then refreshes their dataset's comparison.

Each tick, deciding on the catalog's rows and the instance's partitions only (the data is read in runs), it
1. adds the partitions of sims registered outside the launchpad job (an intake run, the CLI, a notebook)
   where missing;
2. asks for one `simulate` run per sim still "registered" (never attempted);
3. asks for a `compare_simulations` run of each dataset whose finished sims changed (one completed or
   failed), keyed by their names, statuses and end times, so each state is compared once.
A failed sim is not retried blindly: a person re-materialises its partition once the cause is fixed.
"""

import hashlib

import dagster as dg

from resources.catalog import Catalog
from trading_assets.partitions import simulations
from trading_assets.requests.service import reconcile, request_tags
from trading_assets.simulation.jobs import (
    COMPARE_SIMULATIONS_JOB,
    SIMULATE_JOB,
    compare_simulations_job,
    simulate_job,
)


@dg.sensor(
    jobs=[simulate_job, compare_simulations_job],
    # Every loop of the daemon's sensor thread (every 5 s; a minimum of 5 s here skipped a loop whenever the
    # last tick was a hair under 5 s ago): submit to result is a chain of runs, each link waiting for a tick.
    # Its evaluation reads a few catalog rows.
    minimum_interval_seconds=1,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs registered simulations (one run each), then refreshes each dataset's "
    "simulation_comparison when its simulations changed.",
)
def simulation_sensor(
    context: dg.SensorEvaluationContext,
    catalog: dg.ResourceParam[Catalog],
) -> dg.SensorResult:
    reconcile("simulation", catalog, context.instance, context.log)
    tags_of = request_tags(catalog, "simulation")
    known = set(context.instance.get_dynamic_partitions(simulations.name))
    sims = catalog.list_simulations()
    requests: list[dg.RunRequest] = []
    by_dataset: dict[str, list[str]] = {}
    for sim in sims:
        if sim.status in ("completed", "failed"):
            by_dataset.setdefault(sim.dataset, []).append(f"{sim.name}:{sim.status}:{sim.finished_at}")
        if sim.status == "registered":
            # The registration time too: a catalog reset under a kept Dagster instance numbers sims again;
            # and the models: a rolling run's refreshed sim (`refresh_simulation`) replays new ones.
            registered = sim.created_at.isoformat() if sim.created_at else ""
            requests.append(
                dg.RunRequest(
                    job_name=SIMULATE_JOB,
                    partition_key=sim.name,
                    run_key=f"{sim.name}:simulate:{sim.config_sha256[:16]}:{registered}:{sim.models_version}",
                    tags={
                        "trading/simulation": sim.name,
                        "trading/walkforward_run": sim.run,
                        **tags_of.get(sim.name, {}),
                    },
                )
            )
    for dataset, states in by_dataset.items():
        digest = hashlib.sha256("\n".join(states).encode()).hexdigest()[:16]
        requests.append(
            dg.RunRequest(
                job_name=COMPARE_SIMULATIONS_JOB,
                partition_key=dataset,
                run_key=f"{dataset}:compare:{digest}",
            )
        )
    new = [s.name for s in sims if s.name not in known]
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[simulations.build_add_request(new)] if new else [],
    )
