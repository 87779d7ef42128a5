"""`trading-assets submit` and `requests` against a real DuckDB catalog in tmp_path."""

import json
from pathlib import Path

import pytest

from resources.duckdb_catalog import DuckDBCatalog
from trading_assets import cli

RUN = """\
dataset: btc25
indicator_version: 1
folds: {train: 60d, test: 14d, max_folds: 4}
simulate: {fee_bps: 2}
"""


def catalog(data_dir: Path) -> DuckDBCatalog:
    return DuckDBCatalog(path=str(data_dir / "catalog.duckdb"))


def test_submit_writes_a_queued_request_with_the_fields_given(data_dir, capsys):
    Path("run.yaml").write_text(RUN)
    assert cli.main(["submit", "walkforward", "run.yaml", "--requested-by", "ana"]) == 0
    assert "job request 1: walkforward by ana, QUEUED" in capsys.readouterr().out
    (request,) = catalog(data_dir).list_job_requests()
    assert (request.kind, request.requested_by, request.status) == ("walkforward", "ana", "QUEUED")
    assert json.loads(request.config) == {
        "dataset": "btc25",
        "indicator_version": 1,
        "folds": {"train": "60d", "test": "14d", "max_folds": 4},
        "simulate": {"fee_bps": 2.0},
    }


@pytest.mark.parametrize(
    ("kind", "text", "says"),
    [
        (
            "walkforward",
            RUN.replace("test: 14d", "tset: 14d"),
            "folds.tset: unknown field; folds.test: field",
        ),
        ("walkforward", RUN.replace("indicator_version: 1\n", ""), "indicator_version: field required"),
        ("simulation", "run: btc25_run1\nfee_bps: cheap\n", "fee_bps"),
        ("simulation", "- run: btc25_run1\n", "must be a mapping of fields, not list"),
        ("simulation", "run: [unclosed\n", "run.yaml"),
    ],
)
def test_an_invalid_file_is_refused_naming_the_field_and_nothing_is_written(
    data_dir, capsys, kind, text, says
):
    Path("run.yaml").write_text(text)
    assert cli.main(["submit", kind, "run.yaml"]) == 2
    assert says in capsys.readouterr().err
    assert not (data_dir / "catalog.duckdb").exists() or catalog(data_dir).list_job_requests() == []


def test_requests_lists_each_request_and_one_with_its_runs(data_dir, capsys):
    Path("run.yaml").write_text(RUN)
    cli.main(["submit", "walkforward", "run.yaml", "--requested-by", "ana"])
    catalog(data_dir).refuse_job_request(1, "REJECTED", "dataset 'btc25' is not in the catalog")
    capsys.readouterr()
    assert cli.main(["requests", "--status", "REJECTED"]) == 0
    out = capsys.readouterr().out
    assert "job requests (1)" in out and "REJECTED" in out and "dataset 'btc25' is not in the catalog" in out
    assert cli.main(["requests", "--id", "1"]) == 0
    assert "runs (0)" in capsys.readouterr().out
    assert cli.main(["requests", "--status", "QUEUED"]) == 0
    assert "job requests (0)" in capsys.readouterr().out
