"""Indicator set specs: what a valid set means, and the errors a person gets for an invalid one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trading_assets.compute.indicators import (
    DEFAULT_SET_FILE,
    REGISTRY,
    Param,
    SpecError,
    compute_set,
    default_spec,
    indicator,
    load_set_file,
    parse_spec,
    spec_from_json,
)


def spec_of(*entries: dict, name: str = "test"):
    return parse_spec({"name": name, "indicators": list(entries)})


def test_single_output_uses_the_column_name_and_multi_output_appends_the_output():
    spec = spec_of(
        {"indicator": "rsi", "params": {"n": 14}, "column": "rsi_14"},
        {"indicator": "macd", "column": "macd"},
    )
    assert spec.column_names == ("rsi_14", "macd_line", "macd_signal", "macd_hist")
    # Defaults are filled in: MACD 12/26/9, so the line warms up for 25 bars and the signal for 33.
    assert spec.lookbacks == (14, 25, 33, 33)
    assert spec.max_lookback == 33


def test_outputs_keeps_only_the_listed_outputs_in_declaration_order():
    spec = spec_of({"indicator": "bbands", "column": "bb", "outputs": ["bandwidth", "pctb"]})
    assert spec.column_names == ("bb_pctb", "bb_bandwidth")


def test_the_column_defaults_to_the_indicator_name():
    assert spec_of({"indicator": "obv"}).column_names == ("obv",)


def test_explicit_defaults_and_omitted_ones_are_the_same_set():
    implicit = spec_of({"indicator": "rsi", "column": "r"})
    explicit = spec_of({"indicator": "rsi", "params": {"n": 14.0}, "column": "r", "outputs": ["value"]})
    assert implicit.to_json() == explicit.to_json()
    assert implicit.sha256 == explicit.sha256


def test_a_changed_parameter_is_a_different_set():
    assert (
        spec_of({"indicator": "rsi", "params": {"n": 14}}).sha256
        != spec_of({"indicator": "rsi", "params": {"n": 15}}).sha256
    )


def test_the_canonical_json_loads_back_to_the_same_spec():
    spec = default_spec()
    again = spec_from_json(spec.to_json())
    assert again == spec
    assert json.loads(spec.to_json())["name"] == "default"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"indicator": "rsii"}, "unknown indicator 'rsii'; did you mean rsi"),
        ({"indicator": "rsi", "params": {"period": 14}}, "unknown parameter(s) ['period']; it takes: n"),
        ({"indicator": "rsi", "params": {"n": 1}}, "parameter 'n' must be >= 2, got 1"),
        ({"indicator": "rsi", "params": {"n": 14.5}}, "parameter 'n' must be a whole number, got 14.5"),
        ({"indicator": "rsi", "params": {"n": "14"}}, "parameter 'n' must be a number, got '14'"),
        ({"indicator": "rsi", "params": {"n": True}}, "parameter 'n' must be a number, got True"),
        ({"indicator": "bbands", "params": {"k": float("nan")}}, "parameter 'k' must be finite"),
        ({"indicator": "macd", "params": {"fast": 26, "slow": 12}}, "macd: "),
        ({"indicator": "rsi", "column": "Select"}, "field 'column'"),
        ({"indicator": "rsi", "column": "select"}, "reserved SQL word"),
        ({"indicator": "rsi", "column": "ts"}, "column 'ts' is the timestamp"),
        ({"indicator": "macd", "outputs": ["line", "lines"]}, "field 'outputs'"),
        ({"indicator": "rsi", "lookback": 3}, "unknown key(s) ['lookback']"),
        ({"column": "x"}, "field 'indicator' must name an indicator"),
        ("rsi", "expected a mapping"),
    ],
)
def test_a_bad_entry_is_refused_naming_the_entry_and_the_problem(entry, message):
    with pytest.raises(SpecError) as err:
        spec_of({"indicator": "sma"}, entry, name="mine")
    assert str(err.value).startswith("indicator set: entry 2")
    assert message in str(err.value)


def test_a_duplicate_column_names_both_entries():
    with pytest.raises(SpecError, match=r"entry 3: duplicate column 'x_line' \(entry 1 has it too\)"):
        spec_of(
            {"indicator": "sma", "column": "x_line"},
            {"indicator": "ema", "column": "y"},
            {"indicator": "macd", "column": "x"},
        )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a mapping"),
        ({"indicators": [{"indicator": "sma"}]}, "'name' must be a non-empty string"),
        ({"name": "x", "indicators": []}, "'indicators' must be a non-empty list"),
        (
            {"name": "x", "indicators": [{"indicator": "sma"}], "datasets": ["btc"]},
            "unknown key(s) ['datasets']",
        ),
    ],
)
def test_a_bad_set_is_refused(data, message):
    with pytest.raises(SpecError, match=None) as err:
        parse_spec(data)
    assert message in str(err.value)


def test_a_yaml_file_error_names_the_file_the_entry_and_its_line(tmp_path: Path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\n"
        "datasets: [btc25]\n"
        "indicators:\n"
        "  - {indicator: sma, column: a}\n"
        "  - indicator: rsi\n"
        "    params: {n: 0}\n"
    )
    with pytest.raises(SpecError) as err:
        load_set_file(path)
    assert str(err.value) == f"{path}: entry 2 (line 5): rsi: parameter 'n' must be >= 2, got 0"


def test_a_file_must_say_which_datasets_and_name_them_validly(tmp_path: Path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nindicators: [{indicator: sma}]\n")
    with pytest.raises(SpecError, match="'datasets' must be a non-empty list"):
        load_set_file(path)
    path.write_text("name: mine\ndatasets: [BTC]\nindicators: [{indicator: sma}]\n")
    with pytest.raises(SpecError, match="'datasets': dataset name 'BTC' is not a valid name"):
        load_set_file(path)


def test_a_json_file_loads_like_yaml(tmp_path: Path):
    path = tmp_path / "mine.json"
    path.write_text(
        json.dumps({"name": "m", "datasets": ["btc", "eth", "btc"], "indicators": [{"indicator": "sma"}]})
    )
    loaded = load_set_file(path)
    assert loaded.datasets == ("btc", "eth")
    assert loaded.spec.column_names == ("sma",)


def test_a_syntax_error_names_the_file(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"broken\.yaml: not valid YAML"):
        load_set_file(path)


def test_the_default_set_file_is_valid_and_covers_the_library():
    assert DEFAULT_SET_FILE.name == "default.yaml"
    spec = default_spec()
    used = {e.indicator for e in spec.entries}
    assert used == set(REGISTRY.names())


def test_a_users_own_indicator_is_declared_with_a_decorator_and_used_in_a_set():
    with REGISTRY.scoped():

        @indicator(inputs=("high", "low"), params={"n": Param(int, 3, min=1)}, lookback=lambda n: n - 1)
        def range_mean(high, low, n):
            """Mean of (high - low) over n bars."""
            span = high - low
            out = np.full(span.shape, np.nan)
            for i in range(n - 1, span.size):
                out[i] = span[i - n + 1 : i + 1].mean()
            return out

        spec = spec_of({"indicator": "range_mean", "params": {"n": 2}, "column": "rng"})
        high = np.array([2.0, 4.0, 6.0])
        low = np.array([1.0, 1.0, 1.0])
        values = compute_set(spec, {"high": high, "low": low}).values
        np.testing.assert_array_equal(values["rng"], [np.nan, 2.0, 4.0])
        assert spec.lookbacks == (1,)
    assert "range_mean" not in REGISTRY


def test_the_indicator_guide_documents_every_built_in_with_its_warm_up():
    guide = (Path(__file__).parents[2] / "docs" / "indicators.md").read_text()
    documented = {
        line.split("|")[1].strip().strip("`") for line in guide.splitlines() if line.startswith("| `")
    }
    assert documented == {name for name in REGISTRY.names() if REGISTRY.get(name).builtin}


def test_a_renamed_set_is_the_same_set():
    indicators = [{"indicator": "rsi", "params": {"n": 14}}]
    assert (
        parse_spec({"name": "a", "indicators": indicators}).sha256
        == parse_spec({"name": "b", "indicators": indicators}).sha256
    )


def test_a_key_given_twice_is_refused_in_yaml_and_json(tmp_path: Path):
    path = tmp_path / "twice.yaml"
    path.write_text("name: x\ndatasets: [btc]\nindicators:\n  - {indicator: rsi, params: {n: 5, n: 7}}\n")
    with pytest.raises(SpecError, match=r"(?s)twice\.yaml: not valid YAML: .*key 'n' appears twice.*line 4"):
        load_set_file(path)
    path = tmp_path / "twice.json"
    path.write_text('{"name": "x", "name": "y", "datasets": ["btc"], "indicators": [{"indicator": "rsi"}]}')
    with pytest.raises(SpecError, match=r"twice\.json: not valid JSON: key\(s\) \['name'\] appear twice"):
        load_set_file(path)


def test_a_json_file_error_names_the_entry_line(tmp_path: Path):
    path = tmp_path / "mine.json"
    entries = '[\n{"indicator": "sma"},\n{"indicator": "x"}\n]'
    path.write_text(f'{{"name": "m", "datasets": ["btc"], "indicators": {entries}}}')
    with pytest.raises(SpecError, match=r"mine\.json: entry 2 \(line 3\): unknown indicator 'x'"):
        load_set_file(path)


def test_a_negative_warm_up_is_refused_when_the_set_is_validated():
    with REGISTRY.scoped():

        @indicator(lookback=lambda n: n - 2, params={"n": Param(int, 1, min=1)})
        def broken(close, n):
            return close

        with pytest.raises(
            SpecError, match=r"entry 1: broken: lookback of 'value' must be a whole number >= 0, got -1"
        ):
            spec_of({"indicator": "broken"})
