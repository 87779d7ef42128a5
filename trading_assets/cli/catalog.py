"""`trading-assets catalog`: list datasets, indicator sets, walkforward runs and simulations."""

import argparse
import sys

from trading_assets import settings as cfg
from trading_assets.cli.tables import print_table, span


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    listing = sub.add_parser(
        "catalog", help="list datasets, indicator sets, walkforward runs and simulations"
    )
    listing.add_argument("--dataset", help="only this dataset's entries")
    listing.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from trading_assets import naming

    dataset = naming.dataset_name(args.dataset) if args.dataset else None
    try:
        with cfg.catalog(cfg.Settings.from_env()).process_config_and_initialize_cm() as catalog:
            datasets = [d for d in catalog.list_datasets() if dataset is None or d.name == dataset]
            sets = catalog.list_indicator_sets(dataset)
            runs = catalog.list_walkforward_runs(dataset)
            sims = catalog.list_simulations(dataset)
    except (RuntimeError, OSError) as err:  # CatalogError, a lock timeout, no server
        print(f"error: {err}", file=sys.stderr)
        return 1
    print_table(
        "datasets",
        ("name", "rows", "range (UTC)", "interval", "table"),
        [
            (d.name, d.row_count, span(d.first_ts, d.last_ts), f"{d.bar_interval_s}s", d.table_name)
            for d in datasets
        ],
    )
    print_table(
        "indicator sets",
        ("measurement", "label", "status", "rows", "range (UTC)", "columns"),
        [
            (s.measurement, s.label, s.status, s.row_count, span(s.first_ts, s.last_ts), len(s.columns))
            for s in sets
        ],
    )
    print_table(
        "walkforward runs",
        ("name", "status", "folds", "prediction rows", "range (UTC)"),
        [(r.name, r.status, r.fold_count, r.prediction_rows, span(r.first_ts, r.last_ts)) for r in runs],
    )
    sim_rows = []
    for sim in sims:
        metrics = sim.metric_values() or {}
        ret, sharpe = metrics.get("total_return"), metrics.get("sharpe")
        sim_rows.append(
            (
                sim.name,
                sim.run,
                sim.status,
                sim.n_trades,
                None if ret is None else f"{ret:+.2%}",
                None if sharpe is None else f"{sharpe:.2f}",
            )
        )
    print_table("simulations", ("name", "run", "status", "trades", "total return", "sharpe"), sim_rows)
    return 0
