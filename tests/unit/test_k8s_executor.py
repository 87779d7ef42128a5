"""TRADING_EXECUTOR=k8s: every job of the code location gets dagster-k8s's executor (a Kubernetes Job per
step) and needs no run config for it; the fold step's `dagster-k8s/config` tag is one dagster-k8s accepts.
The Job a fold step becomes, built from deploy/helm/dagster-values.yaml, is in tests/unit/test_deploy_helm.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster_k8s import k8s_job_executor
from dagster_k8s.job import get_user_defined_k8s_config

from trading_assets import settings as cfg
from trading_assets.definitions import build_definitions
from trading_assets.walkforward.assets import GPU_QUEUE, fold_models

K8S_TAG = "dagster-k8s/config"


@pytest.fixture
def k8s_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRADING_EXECUTOR", "k8s")


@pytest.mark.usefixtures("k8s_env")
def test_every_job_runs_its_steps_with_the_k8s_executor_which_needs_no_run_config() -> None:
    defs = build_definitions(cfg.Settings.from_env())

    jobs = defs.resolve_all_job_defs()
    assert jobs and {job.name for job in jobs if job.executor_def is not k8s_job_executor} == set()
    # Image, namespace and cluster access come from the K8sRunLauncher that started the run.
    dg.validate_run_config(defs.resolve_job_def("train_folds"), {})


def test_an_executor_the_code_does_not_offer_is_refused_naming_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADING_EXECUTOR", "kubernetes")

    with pytest.raises(
        ValueError, match=r"must be in_process, multiprocess, celery or k8s, not 'kubernetes'"
    ):
        cfg.Settings.from_env()


@pytest.mark.usefixtures("k8s_env")
def test_without_dagster_k8s_the_code_location_refuses_to_load_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules makes `import dagster_k8s` fail as it does where the extra is not installed.
    monkeypatch.setitem(sys.modules, "dagster_k8s", None)

    with pytest.raises(
        ValueError, match=r"^TRADING_EXECUTOR=k8s needs dagster-k8s: install trading-assets\[k8s\]$"
    ):
        build_definitions(cfg.Settings.from_env())


def test_the_fold_step_asks_dagster_k8s_for_a_gpu_on_a_gpu_node_and_celery_for_its_gpu_queue() -> None:
    tags = fold_models.op.tags

    config = get_user_defined_k8s_config(tags)

    assert tags["dagster-celery/queue"] == GPU_QUEUE
    resources = config.container_config["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == 1
    assert config.pod_spec_config["node_selector"] == {"nvidia.com/gpu.present": "true"}
    assert config.pod_spec_config["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


@pytest.mark.parametrize(
    ("tag", "refusal"),
    [
        ({"pod_spec": {}}, r'unexpected config entry "pod_spec"'),
        (
            {"pod_spec_config": {"node_selectr": {}}},
            r"Unexpected keys in model class V1PodSpec: \{'node_selectr'\}",
        ),
    ],
    ids=["dagster-k8s key", "kubernetes field"],
)
def test_a_misspelt_k8s_tag_is_refused_naming_the_key(tag: dict[str, object], refusal: str) -> None:
    with pytest.raises(Exception, match=refusal):
        get_user_defined_k8s_config({**fold_models.op.tags, K8S_TAG: json.dumps(tag)})
