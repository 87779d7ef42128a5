"""deploy/helm: the project's chart, rendered offline by Helm's own library (Go, bundled in helm-python-sdk),
each manifest valid for Kubernetes by its published schemas (kubernetes-validate, strict); what it runs
checked against the code: the workers consume the queues the code sends steps to, with dagster-celery's
own CLI and config; every command parses with the real `trading-assets` parser; the probes hit routes the
services serve; the executor runs alone; credentials come only from Secrets; every pod's settings load.
The official Dagster chart's values: the run queue is the repository's dagster.yaml, the code location is
workspace.yaml's, the Kubernetes objects in them are valid by the same schemas, and the run launcher's
block is config the installed dagster-k8s's K8sRunLauncher accepts (the chart's own schema is not here:
see docs/operations/kubernetes.md). Under the k8s executor, the Job of a fold step, composed by dagster-k8s
from these values and the step's tag, is valid Kubernetes and holds a GPU on a GPU node."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from importlib.resources import files
from pathlib import Path
from typing import Any

import click
import dagster as dg
import helm_python as helm
import jsonschema
import kubernetes
import kubernetes_validate
import pytest
import yaml
from dagster._config import process_config
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster_celery import defaults as celery_defaults
from dagster_celery.cli import get_validated_config
from dagster_celery.cli import main as dagster_celery_cli
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import construct_dagster_k8s_job, get_user_defined_k8s_config
from deploy_setup import assert_live_container, cli_args
from prometheus_client import CollectorRegistry
from referencing import Registry, Resource

from resources.duckdb_catalog import DuckDBCatalog
from resources.duckdb_store import DuckDBStore
from trading_assets import settings as cfg
from trading_assets.api.app import create_app
from trading_assets.api.settings import ApiSettings
from trading_assets.cli.live import STOP_GRACE_S
from trading_assets.ops.exporter import app as exporter_app
from trading_assets.walkforward.assets import GPU_POD, GPU_QUEUE, GPU_STEP_TAGS, fold_models

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / "deploy" / "helm"
CHART = HELM / "trading-assets"
# The newest Kubernetes whose schemas kubernetes-validate ships.
KUBERNETES = "1.37.0"
GPU_ON = {"workers": {"gpu": {"enabled": True}}}
LIVE = ("recorder", "runner", "executor")
# A name that says it holds a credential.
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|API_KEY")

Manifests = dict[tuple[str, str], dict[str, Any]]


def _render(values: dict[str, Any] | None = None, chart: Path = CHART) -> list[dict[str, Any]]:
    with helm.Chart.load(chart) as loaded:
        rendered = loaded.render(values, name="trading", namespace="trading")
    return [doc for text in rendered.values() for doc in yaml.safe_load_all(text) if doc]


def _by_name(docs: list[dict[str, Any]]) -> Manifests:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


@pytest.fixture(scope="module")
def manifests() -> Manifests:
    return _by_name(_render(GPU_ON))


@pytest.fixture(scope="module")
def celery_config(manifests: Manifests, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workers' config file, as the trading-celery ConfigMap mounts it."""
    path = tmp_path_factory.mktemp("celery") / "celery.yaml"
    path.write_text(manifests[("ConfigMap", "trading-celery")]["data"]["celery.yaml"])
    return path


@pytest.fixture(scope="module")
def chart_values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


@pytest.fixture(scope="module")
def dagster_values() -> dict[str, Any]:
    return yaml.safe_load((HELM / "dagster-values.yaml").read_text())


def _container(manifests: Manifests, name: str) -> dict[str, Any]:
    (container,) = manifests[("Deployment", name)]["spec"]["template"]["spec"]["containers"]
    return container


def _pods(manifests: Manifests) -> dict[str, dict[str, Any]]:
    return {name: doc["spec"]["template"] for (kind, name), doc in manifests.items() if kind == "Deployment"}


@functools.cache
def _definition(name: str) -> jsonschema.Validator:
    """A validator of one Kubernetes object type (`io.k8s.api.core.v1.Volume`), from the strict schemas."""
    path = files("kubernetes_validate") / "kubernetes-json-schema" / f"v{KUBERNETES}-local-strict"
    definitions = Resource.from_contents(json.loads((path / "_definitions.json").read_text()))
    uri = definitions.id()
    return jsonschema.Draft202012Validator(
        {"$ref": f"{uri}#/$defs/{name}"}, registry=Registry().with_resource(uri, definitions)
    )


@pytest.mark.parametrize("values", [None, GPU_ON], ids=["default", "gpu"])
def test_every_manifest_the_chart_renders_is_valid_for_kubernetes(values: dict[str, Any] | None) -> None:
    docs = _render(values)

    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    deployments = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "Deployment"}
    workers = {"trading-worker-cpu", "trading-worker-gpu"} if values else {"trading-worker-cpu"}
    assert deployments == {"trading-api", "trading-exporter", *(f"trading-{s}" for s in LIVE), *workers}


def test_a_value_of_the_wrong_type_renders_a_manifest_kubernetes_refuses() -> None:
    docs = _by_name(_render({"workers": {"cpu": {"replicas": "two"}}}))

    with pytest.raises(kubernetes_validate.ValidationError) as refused:
        kubernetes_validate.validate(docs[("Deployment", "trading-worker-cpu")], KUBERNETES, strict=True)
    assert list(refused.value.path) == ["spec", "replicas"]


def test_a_credential_without_its_secret_fails_the_render_naming_it() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"secretEnv\.PGPASSWORD: no Secret named for it"):
        _render({"secretEnv": {"PGPASSWORD": None}})


def test_a_template_error_fails_the_render(tmp_path: Path) -> None:
    chart = Path(shutil.copytree(CHART, tmp_path / "trading-assets"))
    (chart / "templates" / "broken.yaml").write_text(
        "kind: {{ .Values.image.repository | nosuchfunction }}\n"
    )

    with pytest.raises(helm.HelmError, match="nosuchfunction"):
        _render(chart=chart)


def _lint_findings(chart: Path) -> list[str]:
    """What `helm lint --strict` finds above information (severity 1), with the GPU worker on."""
    report = helm.lint(chart, GPU_ON, strict=True, kube_version=f"v{KUBERNETES}")
    return [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] > 1] + report["errors"]


def test_helm_lint_finds_nothing_to_warn_about() -> None:
    assert _lint_findings(CHART) == []


def test_helm_lint_refuses_a_chart_version_that_is_not_semver(tmp_path: Path) -> None:
    chart = Path(shutil.copytree(CHART, tmp_path / "trading-assets"))
    meta = chart / "Chart.yaml"
    meta.write_text(meta.read_text().replace("version: 0.1.0", "version: first"))

    assert any("version" in finding for finding in _lint_findings(chart))


def _worker_start(container: dict[str, Any], config: Path) -> click.Context:
    """The worker's command parsed by dagster-celery's own CLI, down to `worker start`; `config` stands for
    the mounted config file (the CLI checks that it exists)."""
    assert container["command"] == ["dagster-celery"]
    command: click.Command = dagster_celery_cli
    argv = list(container["args"])
    argv[argv.index("-y") + 1] = str(config)
    while isinstance(command, click.Group):
        command = command.commands[argv.pop(0)]
    return command.make_context("start", argv)


def test_the_workers_consume_the_queues_the_code_sends_steps_to(
    manifests: Manifests, celery_config: Path
) -> None:
    queues = {
        name: _worker_start(_container(manifests, f"trading-worker-{name}"), celery_config).params["queue"]
        for name in ("cpu", "gpu")
    }
    # Fold steps are tagged to the GPU queue; every other step goes to dagster-celery's default queue.
    assert queues == {"cpu": (celery_defaults.task_default_queue,), "gpu": (GPU_QUEUE,)}
    assert GPU_STEP_TAGS["dagster-celery/queue"] == GPU_QUEUE


def test_the_gpu_worker_takes_one_gpu_and_one_step_at_a_time_on_gpu_nodes(
    manifests: Manifests, celery_config: Path
) -> None:
    pod = _pods(manifests)["trading-worker-gpu"]["spec"]
    worker = _worker_start(_container(manifests, "trading-worker-gpu"), celery_config)

    assert _container(manifests, "trading-worker-gpu")["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker.params["additional_args"] == ("--concurrency=1",)
    assert (
        pod["nodeSelector"]
        and {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (pod["tolerations"])
    )
    cpu = _pods(manifests)["trading-worker-cpu"]["spec"]
    assert "tolerations" not in cpu and "nvidia.com/gpu" not in json.dumps(cpu)


def test_the_workers_start_with_deploy_celery_yaml_which_dagster_celery_accepts(
    manifests: Manifests, celery_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = _container(manifests, "trading-worker-cpu")
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "celery"]
    monkeypatch.setenv("TRADING_CELERY_BROKER", "redis://broker:6379/0")
    monkeypatch.setenv("TRADING_CELERY_BACKEND", "redis://broker:6379/1")

    worker = _worker_start(container, celery_config)

    assert yaml.safe_load(celery_config.read_text()) == yaml.safe_load(
        (ROOT / "deploy" / "celery.yaml").read_text()
    )
    assert container["args"][container["args"].index("-y") + 1] == f"{mount['mountPath']}/celery.yaml"
    assert worker.params["app"] == "dagster_celery.app"
    config = get_validated_config(worker.params["config_yaml"])
    assert (config["broker"], config["backend"]) == ("redis://broker:6379/0", "redis://broker:6379/1")
    assert {"TRADING_CELERY_BROKER", "TRADING_CELERY_BACKEND"} <= {e["name"] for e in container["env"]}


@pytest.mark.parametrize("service", LIVE)
def test_each_live_service_runs_on_its_default_port_probed_as_the_supervisor_does(
    manifests: Manifests, service: str
) -> None:
    container = _container(manifests, f"trading-{service}")
    assert_live_container(container, container["args"], service)
    assert _pods(manifests)[f"trading-{service}"]["spec"]["terminationGracePeriodSeconds"] == STOP_GRACE_S


def test_one_executor_trades_the_venue_never_two_even_during_a_rollout(manifests: Manifests) -> None:
    deployment = manifests[("Deployment", "trading-executor")]
    args = cli_args(_container(manifests, "trading-executor")["args"])

    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert (args.broker, args.account, args.venue) == ("venue", "main", "binance")


def test_the_api_serves_the_page_its_probes_hit(manifests: Manifests, tmp_path: Path) -> None:
    container = _container(manifests, "trading-api")
    args = cli_args(container["args"])
    app = create_app(
        ApiSettings.from_env(),
        catalog=DuckDBCatalog(path=str(tmp_path / "catalog.duckdb")),
        store=DuckDBStore(path=str(tmp_path / "timeseries.duckdb")),
    )

    assert (args.command, args.host) == ("serve", "0.0.0.0")
    assert container["ports"] == [{"name": "http", "containerPort": args.port}]
    routes = {getattr(route, "path", None) for route in app.routes}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "http" and container[probe]["httpGet"]["path"] in routes
    service = manifests[("Service", "trading-api")]["spec"]
    assert service["ports"] == [{"name": "http", "port": args.port, "targetPort": "http"}]


def test_prometheus_scrapes_the_exporter_on_the_port_and_path_it_serves(manifests: Manifests) -> None:
    container = _container(manifests, "trading-exporter")
    args = cli_args(container["args"])
    routes = {route.path for route in exporter_app(CollectorRegistry()).routes}
    annotations = _pods(manifests)["trading-exporter"]["metadata"]["annotations"]

    assert (args.command, args.host, args.port) == ("exporter", "0.0.0.0", cli_args(["exporter"]).port)
    assert container["ports"] == [{"name": "metrics", "containerPort": args.port}]
    assert annotations["prometheus.io/scrape"] == "true"
    assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == (
        str(args.port),
        "/metrics",
    )
    assert "/metrics" in routes
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"} and "/healthz" in routes
    assert manifests[("Service", "trading-exporter")]["spec"]["ports"][0]["port"] == args.port


def test_credentials_come_only_from_secrets_and_the_venue_s_only_to_the_executor(
    manifests: Manifests, chart_values: dict[str, Any]
) -> None:
    credentials = set(chart_values["secretEnv"])
    holders = set()
    for name, pod in _pods(manifests).items():
        for container in pod["spec"]["containers"]:
            for variable in container.get("env", []):
                if SECRET_NAME.search(variable["name"]):
                    assert variable["name"] in credentials and set(variable) == {"name", "valueFrom"}, (
                        variable
                    )
                    assert set(variable["valueFrom"]) == {"secretKeyRef"}, variable
                if variable["name"] == "TRADING_VENUE_API_KEY":
                    holders.add(name)
    assert holders == {"trading-executor"}
    settings = manifests[("ConfigMap", "trading-settings")]["data"]
    assert not [name for name in settings if SECRET_NAME.search(name)]


def test_the_official_chart_queues_runs_as_the_repository_s_dagster_yaml(
    dagster_values: dict[str, Any],
) -> None:
    instance = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    runs, pools = dagster_values["concurrency"]["runs"], dagster_values["concurrency"]["pools"]
    queued = dagster_values["dagsterDaemon"]["runCoordinator"]

    assert dagster_values["concurrency"]["enabled"] is True
    assert runs["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]
    assert [
        {"key": limit["key"], "value": limit["value"], "limit": limit["limit"]}
        for limit in runs["tagConcurrencyLimits"]
    ] == instance["concurrency"]["runs"]["tag_concurrency_limits"]
    assert (pools["granularity"], pools["defaultLimit"]) == (
        instance["concurrency"]["pools"]["granularity"],
        instance["concurrency"]["pools"]["default_limit"],
    )
    assert queued["type"] == instance["run_coordinator"]["class"]
    assert (
        queued["config"]["queuedRunCoordinator"]["dequeueIntervalSeconds"]
        == instance["run_coordinator"]["config"]["dequeue_interval_seconds"]
    )
    sensors = dagster_values["dagsterDaemon"]["sensors"]
    assert (sensors["useThreads"], sensors["numWorkers"]) == (
        instance["sensors"]["use_threads"],
        instance["sensors"]["num_workers"],
    )
    assert dagster_values["telemetry"]["enabled"] is instance["telemetry"]["enabled"] is False


def test_the_official_chart_serves_the_code_location_with_the_project_chart_s_settings_and_secrets(
    dagster_values: dict[str, Any], chart_values: dict[str, Any], manifests: Manifests
) -> None:
    (location,) = dagster_values["dagster-user-deployments"]["deployments"]
    (workspace,) = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"]

    assert location["dagsterApiGrpcArgs"] == ["-m", workspace["python_module"]["module_name"]]
    assert location["image"]["repository"] == chart_values["image"]["repository"]
    assert [source["name"] for source in location["envConfigMaps"]] == ["trading-settings"]
    assert ("ConfigMap", "trading-settings") in manifests
    secret_env = [variable for variable in location["env"] if "valueFrom" in variable]
    for variable in secret_env:
        ref, chart_ref = variable["valueFrom"]["secretKeyRef"], chart_values["secretEnv"][variable["name"]]
        assert (ref["name"], ref["key"]) == (chart_ref["secret"], chart_ref["key"])
    assert {"TRADING_CELERY_BROKER", "TRADING_CELERY_BACKEND"} <= {v["name"] for v in secret_env}
    assert [v["name"] for v in location["env"] if v not in secret_env] == ["TRADING_EXECUTOR"]
    assert location["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert dagster_values["runLauncher"]["type"] == "K8sRunLauncher"
    assert (
        dagster_values["global"]["postgresqlSecretName"]
        == chart_values["secretEnv"]["DAGSTER_PG_PASSWORD"]["secret"]
    )


# Where the official chart's values hold Kubernetes objects, and the type its schema gives each.
VALUE_OBJECTS = {
    "env": "io.k8s.api.core.v1.EnvVar",
    "envConfigMaps": "io.k8s.api.core.v1.ConfigMapEnvSource",
    "volumes": "io.k8s.api.core.v1.Volume",
    "volumeMounts": "io.k8s.api.core.v1.VolumeMount",
}


def _value_object_errors(location: dict[str, Any]) -> list[str]:
    errors = [
        f"{key}[{i}]: {error.message}"
        for key, definition in VALUE_OBJECTS.items()
        for i, item in enumerate(location[key])
        for error in _definition(definition).iter_errors(item)
    ]
    security = _definition("io.k8s.api.core.v1.PodSecurityContext")
    return errors + [
        f"podSecurityContext: {e.message}" for e in security.iter_errors(location["podSecurityContext"])
    ]


def test_the_kubernetes_objects_in_the_official_chart_s_values_are_valid(
    dagster_values: dict[str, Any],
) -> None:
    (location,) = dagster_values["dagster-user-deployments"]["deployments"]

    assert _value_object_errors(location) == []


def test_a_misspelt_field_of_a_kubernetes_object_in_the_values_is_refused(
    dagster_values: dict[str, Any],
) -> None:
    (location,) = dagster_values["dagster-user-deployments"]["deployments"]
    mounts = [{**location["volumeMounts"][0], "readonly": True}, *location["volumeMounts"][1:]]

    errors = _value_object_errors({**location, "volumeMounts": mounts})

    assert len(errors) == 1 and errors[0].startswith("volumeMounts[0]:") and "readonly" in errors[0]


def _settings_refusals(manifests: Manifests, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What `Settings.from_env`, the first thing each container runs, says in the env the chart gives it
    (the settings ConfigMap, its own values, its Secrets as stand-ins), by Deployment."""
    settings = manifests[("ConfigMap", "trading-settings")]["data"]
    refusals = {}
    for name, pod in _pods(manifests).items():
        for container in pod["spec"]["containers"]:
            for variable in list(os.environ):
                monkeypatch.delenv(variable)
            own = {e["name"]: e.get("value", "stand-in") for e in container.get("env", [])}
            for variable, value in {**settings, **own}.items():
                monkeypatch.setenv(variable, value)
            try:
                cfg.Settings.from_env()
            except ValueError as err:
                refusals[name] = str(err)
    return refusals


def test_every_container_of_the_chart_loads_its_settings(
    manifests: Manifests, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _settings_refusals(manifests, monkeypatch) == {}


def test_the_celery_executor_in_the_shared_settings_stops_every_pod_without_a_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifests = _by_name(_render({**GPU_ON, "settings": {"TRADING_EXECUTOR": "celery"}}))

    refusals = _settings_refusals(manifests, monkeypatch)

    assert refusals.keys() == {"trading-api", "trading-exporter", *(f"trading-{s}" for s in LIVE)}
    assert set(refusals.values()) == {
        "TRADING_EXECUTOR=celery needs TRADING_CELERY_BROKER and TRADING_CELERY_BACKEND"
    }


def test_the_code_location_runs_with_an_executor_the_code_offers(
    dagster_values: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    (location,) = dagster_values["dagster-user-deployments"]["deployments"]
    (executor,) = [v["value"] for v in location["env"] if v["name"] == "TRADING_EXECUTOR"]
    monkeypatch.setenv("TRADING_EXECUTOR", executor)
    for name in cfg.CELERY_ENV:
        monkeypatch.setenv(name, "redis://broker:6379/0")

    assert executor in ("celery", "k8s") and cfg.Settings.from_env().executor == executor


# What the official chart writes into the instance's dagster.yaml for the K8sRunLauncher besides the values'
# own block (its template helpers/instance/_run-launcher.tpl, with its defaults): release `dagster`,
# namespace `trading`.
RELEASE_NAMESPACE = "trading"
CHART_LAUNCHER = {
    "load_incluster_config": True,
    "job_namespace": RELEASE_NAMESPACE,
    "image_pull_policy": "Always",
    "service_account_name": "dagster",
    "dagster_home": "/opt/dagster/dagster_home",
    "instance_config_map": "dagster-instance",
}


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _run_launcher_config(values: dict[str, Any]) -> dict[str, Any]:
    """runLauncher.config.k8sRunLauncher as the chart's template writes it: keys in snake case (those of
    runK8sConfig too), ConfigMaps and Secrets by name, the image as one reference."""
    config = {**CHART_LAUNCHER, "postgres_password_secret": values["global"]["postgresqlSecretName"]}
    for key, value in values["runLauncher"]["config"]["k8sRunLauncher"].items():
        if key in ("envConfigMaps", "envSecrets"):
            value = [source["name"] for source in value]
        elif key == "runK8sConfig":
            value = {_snake_case(part): spec for part, spec in value.items()}
        elif key == "image":
            key, value = "jobImage", f"{value['repository']}:{value['tag']}"
        config[_snake_case(key)] = value
    return config


def _launcher_config(values: dict[str, Any]) -> Any:
    """The run launcher's config checked by dagster-k8s's own schema, with its defaults filled in."""
    return process_config(dg.Shape(K8sRunLauncher.config_type()), _run_launcher_config(values))


def _launcher_errors(values: dict[str, Any]) -> list[str]:
    return [error.message for error in _launcher_config(values).errors or []]


def test_the_run_launcher_s_values_are_config_dagster_k8s_s_k8s_run_launcher_accepts(
    dagster_values: dict[str, Any],
) -> None:
    assert dagster_values["runLauncher"]["type"] == "K8sRunLauncher"
    assert _launcher_errors(dagster_values) == []


@pytest.mark.parametrize(
    ("key", "value", "refusal"),
    [
        ("failPodOnRunFailur", True, 'unexpected config entry "fail_pod_on_run_failur"'),
        ("failPodOnRunFailure", "yes", "fail_pod_on_run_failure"),
        ("runK8sConfig", {"podSpec": {}}, 'unexpected config entry "pod_spec"'),
    ],
    ids=["misspelt", "wrong type", "misspelt part of runK8sConfig"],
)
def test_a_run_launcher_value_k8s_run_launcher_does_not_take_is_refused_naming_it(
    dagster_values: dict[str, Any], key: str, value: Any, refusal: str
) -> None:
    values = json.loads(json.dumps(dagster_values))
    values["runLauncher"]["config"]["k8sRunLauncher"][key] = value

    (error,) = _launcher_errors(values)
    assert refusal in error


def _fold_step_job(values: dict[str, Any], tags: dict[str, str], kubeconfig: Path) -> dict[str, Any]:
    """The Job dagster-k8s's executor creates for a fold step, as its step handler composes it (launch_step):
    the run launcher's config (the values' block), then the code location's as includeConfigInLaunchedRuns
    hands it on (the chart's k8sContainerContext helper: ConfigMaps, env, volumes, namespace), then the
    step's tag. The launcher is dagster-k8s's own, from the values' config; `kubeconfig` points at no
    cluster (nothing here calls one)."""
    config = _launcher_config(values).value
    launcher = K8sRunLauncher.from_config_value(
        None, {**config, "load_incluster_config": False, "kubeconfig_file": str(kubeconfig)}
    )
    (location,) = values["dagster-user-deployments"]["deployments"]
    image = f"{location['image']['repository']}:{location['image']['tag']}"
    container_context = {
        "k8s": {
            "env_config_maps": [source["name"] for source in location["envConfigMaps"]],
            "env": location["env"],
            "volumes": location["volumes"],
            "volume_mounts": location["volumeMounts"],
            "namespace": RELEASE_NAMESPACE,
            "image_pull_policy": location["image"]["pullPolicy"],
        }
    }
    pointer = ModuleCodePointer("trading_assets.definitions", "defs", None)
    origin = RepositoryPythonOrigin(
        "python", pointer, container_image=image, container_context=container_context
    )
    run = dg.DagsterRun(
        job_name="train_folds", run_id="0", job_code_origin=JobPythonOrigin("train_folds", origin)
    )
    context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=False).merge(
        K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(tags))
    )
    job = construct_dagster_k8s_job(
        context.get_k8s_job_config(None, launcher).with_image(image),
        ["dagster", "api", "execute_step"],
        "dagster-step-fold-models",
        user_defined_k8s_config=context.run_k8s_config,
        component="step_worker",
    )
    return kubernetes.client.ApiClient().sanitize_for_serialization(job)


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    cluster, user = {"server": "https://127.0.0.1:6443"}, {"token": "stand-in"}
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": cluster}],
                "users": [{"name": "none", "user": user}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
                "current-context": "none",
            }
        )
    )
    return path


def test_under_the_k8s_executor_a_fold_step_is_a_valid_job_holding_a_gpu_on_a_gpu_node(
    dagster_values: dict[str, Any], kubeconfig: Path
) -> None:
    job = _fold_step_job(dagster_values, fold_models.op.tags, kubeconfig)

    kubernetes_validate.validate(job, KUBERNETES, strict=True)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    # What the step shares with the run: its settings, the instance, the artifact claim, written as the
    # image's user.
    (location,) = dagster_values["dagster-user-deployments"]["deployments"]
    assert container["envFrom"] == [{"configMapRef": {"name": "trading-settings"}}]
    assert {"TRADING_EXECUTOR", "PGPASSWORD", "DAGSTER_PG_PASSWORD"} <= {e["name"] for e in container["env"]}
    assert {"name": "artifacts", "mountPath": "/data/artifacts"} in container["volumeMounts"]
    assert pod["securityContext"] == location["podSecurityContext"]


@pytest.mark.parametrize(
    ("part", "broken", "refusal"),
    [
        (
            "pod_spec_config",
            {"tolerations": [{"key": "nvidia.com/gpu", "effect": "NoExecute", "toleration_seconds": "ten"}]},
            "invalid literal for int",
        ),
        (
            "container_config",
            {"liveness_probe": {"http_get": {"port": [8000]}}},
            r"\[8000\] is not valid under any of the given schemas",
        ),
    ],
    ids=["refused by dagster-k8s", "refused by the kubernetes schema"],
)
def test_a_fold_step_tag_kubernetes_cannot_take_fails_the_job(
    dagster_values: dict[str, Any], kubeconfig: Path, part: str, broken: dict[str, Any], refusal: str
) -> None:
    tags = {**fold_models.op.tags, "dagster-k8s/config": json.dumps({**GPU_POD, part: broken})}

    with pytest.raises((ValueError, kubernetes_validate.ValidationError), match=refusal):
        kubernetes_validate.validate(
            _fold_step_job(dagster_values, tags, kubeconfig), KUBERNETES, strict=True
        )


def test_a_fold_step_lands_on_the_nodes_the_chart_s_gpu_workers_do(chart_values: dict[str, Any]) -> None:
    gpu = chart_values["workers"]["gpu"]

    assert GPU_POD["pod_spec_config"] == {
        "node_selector": gpu["nodeSelector"],
        "tolerations": gpu["tolerations"],
    }
    assert GPU_POD["container_config"]["resources"]["limits"] == gpu["resources"]["limits"]
