from datetime import UTC, datetime

import numpy as np
import pytest

from trading_assets.compute import bar_checks
from trading_assets.compute.bar_checks import (
    BarRules,
    _rules,
    bar_interval_us,
    bars_report,
    validate_bars,
)
from trading_assets.compute.bar_format import BAR_FIELDS, BarFileError, read_bars
from trading_assets.compute.bar_format.kernels import all_rules_hold

GOOD = "2025.01.01,00:00,10,12,9,11,5\n2025.01.01,00:01,11,13,10,12,6\n"


@pytest.fixture(autouse=True, params=["masks", "fused pass first"])
def validation_path(request, monkeypatch):
    """Every test runs on small tables' path (the rules' masks) and on large tables' (the fused pass)."""
    if request.param == "fused pass first":
        monkeypatch.setattr(bar_checks, "_FUSED_MIN_ROWS", 0)


def check(tmp_path, text: str, name: str = "x.txt"):
    path = tmp_path / name
    path.write_text(text)
    return validate_bars(read_bars(path), path)


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        (
            "2025.01.01,00:02,11,nan,10,12,6",
            r"line 3, field 'high \(column 4\)': high is nan, not a finite number",
        ),
        ("2025.01.01,00:02,11,13,10,12,inf", r"line 3, field 'volume \(column 7\)': volume is inf"),
        ("2025.01.01,00:02,11,9,10,9.5,6", r"line 3, field 'high \(column 4\)': high 9 is below low 10"),
        (
            "2025.01.01,00:02,14,13,10,12,6",
            r"line 3, field 'open \(column 3\)': open 14 is outside \[low 10, high 13\]",
        ),
        ("2025.01.01,00:02,11,13,10,9,6", r"line 3, field 'close \(column 6\)': close 9 is outside"),
        ("2025.01.01,00:02,11,13,10,12,-1", r"line 3, field 'volume \(column 7\)': volume -1 is negative"),
        (
            "2025.01.01,00:01,11,13,10,12,6",
            r"line 3, field 'timestamp \(columns 1-2\)'.*repeats the previous bar",
        ),
        (
            "2025.01.01,00:00,11,13,10,12,6",
            r"line 3, field 'timestamp \(columns 1-2\)'.*is before the previous bar",
        ),
    ],
)
def test_each_rule_names_the_line_and_field(tmp_path, bad_line, message):
    with pytest.raises(BarFileError, match=message):
        check(tmp_path, GOOD + bad_line + "\n")


def test_the_error_counts_other_rows_with_the_same_problem(tmp_path):
    with pytest.raises(BarFileError, match=r"line 2, .*volume -1 is negative \(1 more rows like it\)"):
        check(
            tmp_path,
            "2025.01.01,00:00,10,12,9,11,5\n2025.01.01,00:01,11,13,10,12,-1\n2025.01.01,00:02,11,13,10,12,-2\n",
        )


def test_line_numbers_count_header_and_blank_lines(tmp_path):
    text = (
        "Date,Time,Open,High,Low,Close,Volume\n\n"
        "2025-01-01,00:00,10,12,9,11,5\n\n"
        "2025-01-01,00:01,11,9,10,9.5,6\n"
    )
    with pytest.raises(BarFileError, match=r"x\.csv line 5, field 'High'"):
        check(tmp_path, text, "x.csv")


def test_report_of_a_file_with_gaps(tmp_path):
    # 1-minute bars; 00:02 and 00:03 missing (one gap of 3 minutes), then 00:10-00:14 missing (6 minutes).
    minutes = [0, 1, 4, 5, 6, 7, 8, 9, 15]
    text = "".join(f"2025.01.01,00:{m:02d},10,12,9,11,5\n" for m in minutes)
    report = check(tmp_path, text)
    assert report.rows == 9
    assert report.interval_s == 60
    assert report.gap_count == 2
    assert report.missing_bars == 2 + 5
    assert report.largest_gap_s == 360
    assert report.largest_gap_after == datetime(2025, 1, 1, 0, 9, tzinfo=UTC)
    assert (report.first_ts, report.last_ts) == (
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(2025, 1, 1, 0, 15, tzinfo=UTC),
    )


def test_no_gaps():
    ts = np.arange(10) * 60_000_000
    report = bars_report(ts)
    assert (report.gap_count, report.missing_bars, report.largest_gap_s, report.largest_gap_after) == (
        0,
        0,
        0,
        None,
    )


def test_interval_is_the_most_common_step():
    minutes = np.array([0, 5, 10, 15, 16, 20, 25, 30, 90])
    assert bar_interval_us(minutes * 60_000_000) == 300_000_000


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("2025.01.01,00:02,1,2,0,1,6", r"line 3, field 'low \(column 5\)': low 0 is not a positive price"),
        ("2025.01.01,00:02,-1,-0.5,-2,-1,6", r"line 3, field 'low \(column 5\)': low -2 is not a positive"),
    ],
)
def test_prices_must_be_positive_by_default(tmp_path, bad_line, message):
    with pytest.raises(BarFileError, match=message + r".*allow_nonpositive_prices"):
        check(tmp_path, GOOD + bad_line + "\n")


def test_a_dataset_may_allow_nonpositive_prices_but_not_a_sign_flip_within_a_bar(tmp_path):
    spreads = "2025.01.01,00:00,-0.5,0,-1,-0.25,5\n2025.01.01,00:01,0,0.75,0,0.5,6\n"
    path = tmp_path / "spread.txt"
    path.write_text(spreads)
    allowed = BarRules(allow_nonpositive_prices=True)
    assert validate_bars(read_bars(path), path, allowed).rows == 2
    path.write_text(spreads + "2025.01.01,00:02,0.5,0.75,-0.25,0.5,6\n")
    with pytest.raises(
        BarFileError,
        match=r"spread\.txt line 3, field 'low \(column 5\)': prices change sign within the bar "
        r"\(low -0\.25, high 0\.75\)",
    ):
        validate_bars(read_bars(path), path, allowed)


@pytest.mark.parametrize("allow_nonpositive_prices", [False, True])
def test_the_fused_pass_finds_a_bad_row_exactly_when_a_rule_does(allow_nonpositive_prices):
    rng = np.random.default_rng(3)
    rules = _rules(BarRules(allow_nonpositive_prices=allow_nonpositive_prices))
    specials = [np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1e-300, 1e300]
    verdicts = set()
    for _ in range(500):
        n = int(rng.integers(1, 6))
        low = rng.uniform(0.5, 2, n) * rng.choice([1.0, -1.0])  # all positive, or all negative
        high = low + rng.uniform(0, 1, n)
        cols = {
            "open": rng.uniform(low, high),
            "high": high,
            "low": low,
            "close": rng.uniform(low, high),
            "volume": rng.uniform(0, 5, n),
            "ts": np.cumsum(rng.integers(1, 3, n)),
        }
        for _fault in range(int(rng.integers(0, 3))):  # none, one or two values changed anywhere
            field = str(rng.choice([*BAR_FIELDS, "ts"]))
            row = int(rng.integers(n))
            cols[field][row] = rng.integers(-2, 3) if field == "ts" else rng.choice(specials)
        by_rules = not any(rule.mask(cols).any() for rule in rules)
        fused = all_rules_hold(*(cols[f] for f in (*BAR_FIELDS, "ts")), allow_nonpositive_prices)
        assert fused == by_rules, cols
        verdicts.add(fused)
    assert verdicts == {True, False}
