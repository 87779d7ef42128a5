"""What the sensors and schedules ask of the instance's runs before asking for another."""

from collections.abc import Sequence

import dagster as dg

# A run in one of these statuses may still do its work: another one of the same could do it twice.
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def unless_in_flight(
    instance: dg.DagsterInstance, requests: Sequence[dg.RunRequest], tag: str
) -> list[dg.RunRequest]:
    """`requests` but those whose value of `tag` an unfinished run carries, found in one query: a run key
    that changes as the run works (an attempt counted at its start) does not keep a tick from asking again
    while that run is still going."""
    values = [request.tags[tag] for request in requests]
    if not values:
        return []
    records = instance.get_run_records(dg.RunsFilter(tags={tag: values}, statuses=IN_FLIGHT))
    busy = {record.dagster_run.tags[tag] for record in records}
    return [request for request in requests if request.tags[tag] not in busy]
