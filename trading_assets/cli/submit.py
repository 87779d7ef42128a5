"""`trading-assets submit KIND FILE.yaml`: queue a walkforward run or simulation as a job request."""

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from trading_assets import settings as cfg
from trading_assets.records import JOB_KINDS, NewJobRequest

if TYPE_CHECKING:
    from trading_assets.simulation.config import SimulationConfig
    from trading_assets.walkforward.config import WalkforwardConfig


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    submit = sub.add_parser(
        "submit", help="queue a walkforward run or simulation (a YAML file of the launchpad's config)"
    )
    submit.add_argument("kind", choices=JOB_KINDS)
    submit.add_argument("file", help="YAML with the config's fields, as in the launchpad")
    submit.add_argument("--requested-by", help="who asks (default: the login name)")
    submit.set_defaults(run=run)


def read_config(kind: str, file: str) -> "WalkforwardConfig | SimulationConfig":
    """The YAML file's fields as the kind's typed config; RequestInvalid naming the file or each wrong field.

    The launchpad's typed config checks every field now; what depends on the data (the dataset, its bars,
    a completed run) is checked when the config is registered."""
    from trading_assets.requests.service import config_from_data

    return config_from_data(kind, read_yaml(file), source=str(Path(file)))


def read_yaml(file: str) -> object:
    """The YAML file's data; RequestInvalid naming the file if it cannot be read or parsed."""
    import yaml

    from trading_assets.requests.service import RequestInvalid

    path = Path(file)
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise RequestInvalid(f"{path}: {err}") from None


def run(args: argparse.Namespace) -> int:
    import getpass

    from trading_assets.requests.service import RequestInvalid

    try:
        # An invalid request is REJECTED by the intake run, with the message, if the data does not fit it.
        config = read_config(args.kind, args.file)
    except RequestInvalid as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = json.dumps(config.model_dump(exclude_unset=True), sort_keys=True)
    new = NewJobRequest(args.kind, text, requested_by=args.requested_by or getpass.getuser())
    try:
        with cfg.catalog(cfg.Settings.from_env()).process_config_and_initialize_cm() as catalog:
            request = catalog.submit_job_request(new)
    except (RuntimeError, OSError) as err:  # CatalogError, a lock timeout, no server
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"job request {request.id}: {request.kind} by {request.requested_by}, {request.status}")
    return 0
