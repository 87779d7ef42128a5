"""The launchpad's forms and the compute library's dataclasses are one schema per concept: same field names,
types and defaults, so a notebook and the launchpad get the same run or simulation from the same input."""

import dataclasses
import typing

import pytest

from trading_assets.compute.folds import FoldConfig
from trading_assets.compute.indicators.spec import Entry
from trading_assets.compute.simulator import SimConfig
from trading_assets.compute.targets import TargetConfig
from trading_assets.compute.thresholds import ThresholdRule
from trading_assets.compute.training import Hyperparameters
from trading_assets.compute.walkforward import WalkforwardSpec
from trading_assets.indicators.config import IndicatorEntryConfig
from trading_assets.launchpad import derived_config
from trading_assets.simulation.assets import SweepConfig
from trading_assets.simulation.config import SimulationConfig, SimulationSettings
from trading_assets.simulation.service import SimulationSpec
from trading_assets.walkforward.config import (
    FoldSettings,
    HyperparameterSettings,
    TargetSettings,
    ThresholdSettings,
    WalkforwardConfig,
)

# (form, its dataclasses, dataclass fields the form leaves out, fields the form takes as another type)
PAIRS = [
    (TargetSettings, (TargetConfig,), set(), {}),
    (FoldSettings, (FoldConfig,), {"horizon"}, {"train": str, "test": str, "step": str | None}),
    (HyperparameterSettings, (Hyperparameters,), set(), {}),
    (ThresholdSettings, (ThresholdRule,), set(), {}),
    (SimulationSettings, (SimulationSpec, SimConfig), {"run", "sim", "bars_per_year"}, {}),
]


@pytest.mark.parametrize(
    ("form", "sources", "left_out", "as_text"), PAIRS, ids=[form.__name__ for form, *_ in PAIRS]
)
def test_each_form_field_has_its_dataclass_fields_name_type_and_default(form, sources, left_out, as_text):
    expected = {}
    for source in sources:
        hints = typing.get_type_hints(source)
        for f in dataclasses.fields(source):
            if f.name not in left_out:
                default = None if f.default is dataclasses.MISSING else f.default
                expected[f.name] = (as_text.get(f.name, hints[f.name]), default)
    found = {
        name: (field.annotation, None if field.is_required() else field.default)
        for name, field in form.model_fields.items()
    }
    assert list(found) == list(expected)
    assert found == expected
    assert all(field.description for field in form.model_fields.values())


def test_the_sweep_forms_trading_rules_have_the_simulators_types_and_defaults():
    hints = typing.get_type_hints(SimConfig)
    shared = {f.name: (hints[f.name], f.default) for f in dataclasses.fields(SimConfig)}
    found = {
        name: (field.annotation, field.default)
        for name, field in SweepConfig.model_fields.items()
        if name in shared
    }
    assert set(found) == {"fee_bps", "slippage_bps", "fill", "direction"}
    assert found == {name: shared[name] for name in found}


def test_a_simulation_left_at_its_defaults_is_the_compute_librarys_default_simulation():
    assert SimulationConfig(run="btc25_run1").spec() == SimulationSpec(run="btc25_run1", sim=SimConfig())


def test_a_fee_left_out_is_one_basis_point_for_the_launchpad_and_a_notebook_alike():
    # Stored job requests that leave fee_bps out have always meant the launchpad's 1 bp.
    assert SimulationConfig(run="btc25_run1").spec().sim.fee_bps == SimConfig().fee_bps == 1.0


def test_a_walkforward_run_left_at_its_defaults_is_the_compute_librarys_default_spec():
    config = WalkforwardConfig(dataset="btc25", indicator_version=1, folds={"train": "5000", "test": "1000"})
    expected = WalkforwardSpec(target=TargetConfig(), folds=FoldConfig(train=5000, test=1000))
    assert config.spec() == expected


def test_an_indicator_entry_form_has_the_fields_of_a_set_entry():
    assert list(IndicatorEntryConfig.model_fields) == [f.name for f in dataclasses.fields(Entry)]


@pytest.mark.parametrize(
    ("descriptions", "problem"),
    [
        ({"kind": "k", "horizon": "h"}, r"fields without a description \['dead_zone'\]"),
        (
            {"kind": "k", "horizon": "h", "dead_zone": "d", "horizont": "typo"},
            r"descriptions without a field \['horizont'\]",
        ),
    ],
)
def test_a_form_is_refused_when_its_descriptions_and_the_dataclass_fields_differ(descriptions, problem):
    with pytest.raises(ValueError, match=problem):
        derived_config(
            "Target", (TargetConfig,), descriptions, module=__name__, doc="What the models predict."
        )
