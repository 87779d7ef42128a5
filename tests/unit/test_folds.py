"""Walkforward folds, worked out by hand."""

import re
from datetime import timedelta

import numpy as np
import pytest

from trading_assets.compute.folds import (
    Fold,
    FoldConfig,
    FoldError,
    causality_problems,
    format_length,
    make_folds,
    parse_length,
)

MINUTE = 60_000_000


def rows(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) * MINUTE


def windows(folds: list[Fold]) -> list[tuple[tuple[tuple[int, int], ...], tuple[int, int]]]:
    return [(f.train, f.test) for f in folds]


def test_sliding_folds_over_20_bars():
    # train 6, purge 2 (horizon 2), test 4: the first test starts at 6 + 2 = 8; each fold moves by 4.
    folds = make_folds(rows(20), FoldConfig(train=6, test=4, horizon=2))
    assert windows(folds) == [
        (((0, 6),), (8, 12)),
        (((4, 10),), (12, 16)),
        (((8, 14),), (16, 20)),
    ]
    assert [f.number for f in folds] == [0, 1, 2]


def test_expanding_folds_keep_the_first_row():
    folds = make_folds(rows(20), FoldConfig(train=6, test=4, horizon=2, mode="expanding"))
    assert windows(folds) == [(((0, 6),), (8, 12)), (((0, 10),), (12, 16)), (((0, 14),), (16, 20))]
    assert [f.train_rows for f in folds] == [6, 10, 14]


def test_an_incomplete_last_test_window_is_not_a_fold():
    assert len(make_folds(rows(19), FoldConfig(train=6, test=4, horizon=2))) == 2


def test_the_embargo_removes_the_bars_after_each_test_window_from_later_training():
    # Fold 0 tests 8..11; with embargo 1, row 12 never trains a later fold. Fold 2 trains on 0..13 minus 12.
    folds = make_folds(rows(20), FoldConfig(train=6, test=4, horizon=2, mode="expanding", embargo=1))
    assert windows(folds) == [(((0, 6),), (8, 12)), (((0, 10),), (12, 16)), (((0, 12), (13, 14)), (16, 20))]
    np.testing.assert_array_equal(folds[2].train_index(), [*range(12), 13])


def test_a_larger_step_leaves_bars_between_test_windows_and_max_folds_stops_early():
    folds = make_folds(rows(30), FoldConfig(train=5, test=3, step=5, purge=1))
    assert [f.test for f in folds] == [(6, 9), (11, 14), (16, 19), (21, 24), (26, 29)]
    assert len(make_folds(rows(30), FoldConfig(train=5, test=3, step=5, max_folds=2))) == 2


def test_durations_are_measured_on_timestamps_so_a_gap_counts_as_time():
    # Bars each minute, except that minutes 10..19 are missing (a gap of 10 minutes).
    minutes = np.array([*range(10), *range(20, 40)], dtype=np.int64)
    ts = minutes * MINUTE
    config = FoldConfig(train=timedelta(minutes=10), test=timedelta(minutes=5), horizon=1)
    folds = make_folds(ts, config)
    # Train: minutes 0..9 (rows 0..9); purge 1 bar (row 10 = minute 20); test minutes 21..25 (rows 11..15).
    assert folds[0].train == ((0, 10),)
    assert folds[0].test == (11, 16)
    # The next test starts 5 minutes later (minute 26, row 16); its sliding train is the 10 minutes
    # before its purged row 15 (minute 25): minutes 16..24, i.e. rows 10..14 (the gap holds no bars).
    assert folds[1].test == (16, 21)
    assert folds[1].train == ((10, 15),)
    assert causality_problems(folds, horizon=1, purge=1) == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (FoldConfig(train=0, test=4), "train must be positive"),
        (FoldConfig(train=6, test=-1), "test must be positive"),
        (FoldConfig(train=6, test=4, step=2), "step 2 is shorter than test 4: test windows would overlap"),
        (FoldConfig(train=6, test=timedelta(minutes=4)), "must all be bars or all durations, not a mix"),
        (
            FoldConfig(train=6, test=4, horizon=5, purge=2),
            "purge 2 bars is shorter than the target horizon 5",
        ),
        (FoldConfig(train=6, test=4, horizon=0), "horizon must be an integer >= 1"),
        (FoldConfig(train=6, test=4, embargo=-1), "embargo must be an integer >= 0"),
        (FoldConfig(train=6, test=4, mode="rolling"), "mode must be 'sliding' or 'expanding'"),
        (FoldConfig(train=6, test=4, max_folds=0), "max_folds must be at least 1"),
        (FoldConfig(train=True, test=4), "bar counts (int) or durations"),
    ],
)
def test_impossible_configs_are_refused_with_the_reason(config, message):
    with pytest.raises(FoldError) as err:
        make_folds(rows(100), config)
    assert message in str(err.value)


def test_too_little_data_says_how_much_the_first_fold_needs():
    with pytest.raises(
        FoldError, match=r"not enough data for one fold: 11 rows, and the first fold needs train 6"
    ):
        make_folds(rows(11), FoldConfig(train=6, test=4, horizon=2))
    with pytest.raises(FoldError, match="not enough data"):
        make_folds(rows(0), FoldConfig(train=6, test=4))


def test_causality_problems_name_the_fold_and_rows():
    leaky = [Fold(number=3, train=((0, 9),), test=(10, 14))]
    problems = causality_problems(leaky, horizon=2, purge=2)
    assert problems == [
        "fold 3: last training row 8 + purge 2 >= test start 10",
        "fold 3: the label of training row 8 reaches row 10, inside the test window starting at 10",
    ]
    assert causality_problems(make_folds(rows(200), FoldConfig(train=50, test=20, horizon=3)), 3, 3) == []


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("500", 500),
        (500, 500),
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_a_length_is_a_bar_count_or_a_duration_with_a_unit(text, length):
    assert parse_length(text) == length
    assert type(parse_length(text)) is type(length)


@pytest.mark.parametrize("text", ["", "30 d", "3.5h", "-5", "10y", "d", True, 2.0, None])
def test_a_length_that_is_neither_is_refused_naming_the_text(text):
    with pytest.raises(FoldError, match=f"length {re.escape(repr(text))} is neither a bar count"):
        parse_length(text)


@pytest.mark.parametrize(
    ("length", "text"),
    [
        (500, "500"),
        (timedelta(days=14), "2w"),
        (timedelta(days=30), "30d"),
        (timedelta(minutes=90), "90m"),
        (timedelta(hours=36), "36h"),
        (timedelta(seconds=61), "61s"),
    ],
)
def test_a_length_is_written_in_its_largest_whole_unit_and_reads_back_the_same(length, text):
    assert format_length(length) == text
    assert parse_length(format_length(length)) == length


def test_a_duration_below_whole_seconds_cannot_be_written():
    with pytest.raises(
        FoldError, match=r"length datetime.timedelta\(microseconds=1500\) must be a bar count"
    ):
        format_length(timedelta(milliseconds=1.5))
