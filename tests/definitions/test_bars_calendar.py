"""A dataset's trading calendar, from its sidecar, the launchpad or the command line, decides which bars are
due: a daily equity export reports only its real outages as gaps, and the gap report names the calendar."""

import json
from pathlib import Path

import dagster as dg

from trading_assets import cli
from trading_assets.bars.assets import bars
from trading_assets.compute.demo_data import SHAPES, shape_bars, write_shape

ROWS = 300  # about 14 months of NYSE sessions, with the shape's three one-session outages
EQUITY = SHAPES["equity-daily"]
BARS = shape_bars(EQUITY, ROWS)


def materialize(resources, instance, **kwargs) -> dict[str, object]:
    if not instance.has_dynamic_partition("datasets", EQUITY.dataset):
        instance.add_dynamic_partitions("datasets", [EQUITY.dataset])
    result = dg.materialize(
        [bars], partition_key=EQUITY.dataset, resources=resources, instance=instance, **kwargs
    )
    assert result.success
    return {k: v.value for k, v in result.asset_materializations_for_node("bars")[0].metadata.items()}


def test_a_daily_equity_export_with_its_calendar_in_the_sidecar_reports_only_its_outages(resources, instance):
    write_shape(EQUITY, Path(resources["landing"].path), BARS)
    meta = materialize(resources, instance)
    assert meta["calendar"].startswith("XNYS (exchange_calendars ")
    assert (meta["gap_count"], meta["missing_bars"], meta["off_calendar_bars"]) == (3, 3, 0)
    assert meta["largest_gap"].startswith("1 bar missing after ")
    record = resources["catalog"].get_dataset(EQUITY.dataset)
    assert json.loads(record.read_options)["calendar"] == "XNYS"


def test_without_a_calendar_every_weekend_is_a_gap_and_the_report_says_none_was_used(resources, instance):
    write_shape(EQUITY, Path(resources["landing"].path), BARS).with_suffix(".json").unlink()
    meta = materialize(resources, instance)
    assert meta["calendar"] == "none: every bar interval is due"
    assert meta["gap_count"] > 50  # about 60 weekends, and the holidays
    assert "off_calendar_bars" not in meta


def test_the_launchpad_config_gives_the_calendar_of_one_import(resources, instance):
    write_shape(EQUITY, Path(resources["landing"].path), BARS).with_suffix(".json").unlink()
    meta = materialize(resources, instance, run_config={"ops": {"bars": {"config": {"calendar": "XNYS"}}}})
    assert (meta["calendar"].split()[0], meta["gap_count"]) == ("XNYS", 3)
    # Daily equity bars on a calendar that trades every day: every weekend is missing two bars.
    meta = materialize(resources, instance, run_config={"ops": {"bars": {"config": {"calendar": "24/7"}}}})
    assert meta["calendar"] == "24/7 (always open)"
    assert meta["missing_bars"] > 2 * 50


def test_the_command_line_takes_a_calendar_and_refuses_an_unknown_one(data_dir, tmp_path, capsys):
    export = write_shape(EQUITY, tmp_path, BARS)
    export.with_suffix(".json").unlink()
    assert cli.main(["ingest", str(export), "--calendar", "XNYS"]) == 0
    assert f"{EQUITY.dataset}: {ROWS} bars 2015-01-02 00:00 .. " in (out := capsys.readouterr().out)
    assert ", 3 gaps on calendar XNYS (exchange_calendars " in out
    assert cli.main(["ingest", str(export), "--calendar", "NYSX"]) == 1
    assert "unknown trading calendar 'NYSX'" in capsys.readouterr().err
