import json
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trading_assets.compute.bar_format import (
    BarFileError,
    ColumnMapping,
    ReadOptions,
    detect_format,
    read_bars,
    reference_rows,
)


def us(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1_000_000)


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def rows(path, options=None):
    table = read_bars(path, options).table
    ts = table.column("ts").cast(pa.int64()).to_pylist()
    return [
        (t, *vals)
        for t, *vals in zip(ts, *(table.column(c).to_pylist() for c in table.column_names[1:]), strict=True)
    ]


def test_metatrader4_history_export(tmp_path):
    path = write(
        tmp_path,
        "btc25.txt",
        "2025.01.01,00:00,94000.00,94012.35,93990.10,94005.20,12.3456\n"
        "2025.01.01,00:01,94005.20,94010.00,94000.00,94001.00,1.5\n",
    )
    assert rows(path) == [
        (us(2025, 1, 1, 0, 0), 94000.0, 94012.35, 93990.1, 94005.2, 12.3456),
        (us(2025, 1, 1, 0, 1), 94005.2, 94010.0, 94000.0, 94001.0, 1.5),
    ]


def test_metatrader5_tab_export_with_header_ignores_extra_columns(tmp_path):
    path = write(
        tmp_path,
        "eurusd.csv",
        "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
        "2025.01.02\t09:30:00\t1.1\t1.2\t1.0\t1.15\t42\t7\t3\n",
    )
    parsed = read_bars(path)
    assert parsed.format.ignored == ("<TICKVOL>", "<SPREAD>")
    assert rows(path) == [(us(2025, 1, 2, 9, 30), 1.1, 1.2, 1.0, 1.15, 7.0)]


def test_ninjatrader_semicolons_with_decimal_commas(tmp_path):
    path = write(tmp_path, "es.txt", "20250102 093000;5900,25;5901,5;5899;5900,75;1200\n")
    assert rows(path) == [(us(2025, 1, 2, 9, 30), 5900.25, 5901.5, 5899.0, 5900.75, 1200.0)]


def test_iso_timestamps_with_fractions_and_offsets(tmp_path):
    path = write(
        tmp_path,
        "x.csv",
        "timestamp,open,high,low,close,volume\n"
        "2025-01-01T00:00:00.250Z,1,2,0.5,1.5,3\n"
        "2025-01-01T00:00:01.250Z,1,2,0.5,1.5,3\n",
    )
    assert [r[0] for r in rows(path)] == [us(2025, 1, 1) + 250_000, us(2025, 1, 1, 0, 0, 1) + 250_000]


@pytest.mark.parametrize(
    ("stamp", "unit"), [("1735689600", "s"), ("1735689600000", "ms"), ("1735689600000000", "us")]
)
def test_epoch_timestamps(tmp_path, stamp, unit):
    path = write(tmp_path, "x.csv", f"time,open,high,low,close,volume\n{stamp},1,2,0.5,1.5,3\n")
    assert detect_format(path).time_kind == f"epoch_{unit}"
    assert rows(path)[0][0] == us(2025, 1, 1)


def test_whitespace_aligned_columns(tmp_path):
    path = write(
        tmp_path,
        "x.prn",
        "  2025-01-01 00:00:00    1.0   2.0  0.5   1.5   3\n"
        "  2025-01-01 00:01:00   10.0  20.0  5.0  15.0  30\n",
    )
    assert rows(path)[1] == (us(2025, 1, 1, 0, 1), 10.0, 20.0, 5.0, 15.0, 30.0)


def test_byte_order_mark_and_crlf(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(
        b"\xef\xbb\xbfDate,Time,Open,High,Low,Close,Volume\r\n2025-01-01,00:00,1,2,0.5,1.5,3\r\n"
    )
    assert rows(path) == [(us(2025, 1, 1), 1.0, 2.0, 0.5, 1.5, 3.0)]


def test_parquet_with_naive_timestamps_in_a_source_time_zone(tmp_path):
    path = tmp_path / "x.parquet"
    pq.write_table(
        pa.table(
            {
                "datetime": pa.array([datetime(2025, 7, 1, 12, 0)], pa.timestamp("ms")),
                "open": [1.0],
                "high": [2.0],
                "low": [0.5],
                "close": [1.5],
                "volume": [3.0],
            }
        ),
        path,
    )
    assert rows(path, ReadOptions(timezone="America/New_York")) == [
        (us(2025, 7, 1, 16, 0), 1.0, 2.0, 0.5, 1.5, 3.0)
    ]


def test_local_time_zone_is_converted_to_utc(tmp_path):
    path = write(tmp_path, "x.txt", "2025.01.15,10:00,1,2,0.5,1.5,3\n2025.07.15,10:00,1,2,0.5,1.5,3\n")
    got = [r[0] for r in rows(path, ReadOptions(timezone="Europe/Berlin"))]
    assert got == [us(2025, 1, 15, 9, 0), us(2025, 7, 15, 8, 0)]  # CET then CEST


def test_repeated_hour_after_dst_fall_back_is_resolved_by_order(tmp_path):
    # Europe/Berlin, 2025-10-26: 02:00-02:59 happens twice (CEST, then CET).
    lines = ["2025.10.26,01:30", "2025.10.26,02:30", "2025.10.26,02:30", "2025.10.26,03:30"]
    path = write(tmp_path, "x.txt", "".join(f"{ln},1,2,0.5,1.5,3\n" for ln in lines))
    got = [r[0] for r in rows(path, ReadOptions(timezone="Europe/Berlin"))]
    assert got == [
        us(2025, 10, 25, 23, 30),
        us(2025, 10, 26, 0, 30),
        us(2025, 10, 26, 1, 30),
        us(2025, 10, 26, 2, 30),
    ]


def test_wall_time_inside_a_dst_gap_is_refused_with_its_line(tmp_path):
    path = write(tmp_path, "x.txt", "2025.03.30,01:30,1,2,0.5,1.5,3\n2025.03.30,02:30,1,2,0.5,1.5,3\n")
    with pytest.raises(BarFileError, match=r"x.txt line 2, field 'timestamp \(columns 1-2\)'.*DST gap"):
        read_bars(path, ReadOptions(timezone="Europe/Berlin"))


def test_day_month_ambiguity_needs_a_format(tmp_path):
    path = write(tmp_path, "x.csv", "01/02/2025,10:00,1,2,0.5,1.5,3\n")
    with pytest.raises(BarFileError, match="day/month and month/day"):
        read_bars(path)
    assert rows(path, ReadOptions(datetime_format="%d/%m/%Y %H:%M"))[0][0] == us(2025, 2, 1, 10, 0)


def test_column_mapping_by_name_and_by_position(tmp_path):
    named = write(tmp_path, "a.csv", "when,o,h,l,c,qty\n2025-01-01 00:00,1,2,0.5,1.5,3\n")
    mapping = ColumnMapping(timestamp="when", volume="qty")
    assert rows(named, ReadOptions(columns=mapping)) == [(us(2025, 1, 1), 1.0, 2.0, 0.5, 1.5, 3.0)]
    positional = write(tmp_path, "b.csv", "3,1.5,0.5,2,1,2025-01-01 00:00\n")
    mapping = ColumnMapping(volume=0, close=1, low=2, high=3, open=4, timestamp=5)
    assert rows(positional, ReadOptions(columns=mapping)) == [(us(2025, 1, 1), 1.0, 2.0, 0.5, 1.5, 3.0)]


def test_unknown_header_column_is_refused_unless_ignored(tmp_path):
    path = write(
        tmp_path, "x.csv", "timestamp,open,high,low,close,volume,mood\n2025-01-01 00:00,1,2,0.5,1.5,3,ok\n"
    )
    with pytest.raises(BarFileError, match=r"x.csv line 1: unknown columns \['mood'\]"):
        read_bars(path)
    assert read_bars(path, ReadOptions(columns=ColumnMapping(ignore=("mood",)))).table.num_rows == 1


def test_missing_column_is_named(tmp_path):
    path = write(tmp_path, "x.csv", "timestamp,open,high,low,close\n2025-01-01 00:00,1,2,0.5,1.5\n")
    with pytest.raises(BarFileError, match="missing columns: volume"):
        read_bars(path)


def test_unparsable_value_names_line_and_field(tmp_path):
    path = write(
        tmp_path,
        "x.csv",
        "Date,Time,Open,High,Low,Close,Volume\n"
        "2025-01-01,00:00,1,2,0.5,1.5,3\n"
        "2025-01-01,00:01,1,2,0.5,oops,3\n",
    )
    with pytest.raises(
        BarFileError, match=r"x.csv line 3, field 'Close': close value 'oops' is not a number"
    ):
        read_bars(path)


def test_short_line_is_named(tmp_path):
    path = write(tmp_path, "x.txt", "2025.01.01,00:00,1,2,0.5,1.5,3\n2025.01.01,00:01,1,2,0.5,1.5\n")
    with pytest.raises(BarFileError, match=r"x\.txt line 2: has 6 fields, expected 7"):
        read_bars(path)


def test_unparsable_timestamp_names_line_and_field(tmp_path):
    path = write(
        tmp_path,
        "x.txt",
        "2025.01.01,00:00,1,2,0.5,1.5,3\n2025.01.01,00:01,1,2,0.5,1.5,3\n2025.01.32,00:02,1,2,0.5,1.5,3\n",
    )
    with pytest.raises(
        BarFileError, match=r"x.txt line 3, field 'timestamp \(columns 1-2\)'.*'2025.01.32 00:02'"
    ):
        read_bars(path)


def test_empty_file_and_bad_time_zone(tmp_path):
    with pytest.raises(BarFileError, match="empty"):
        read_bars(write(tmp_path, "e.txt", "\n\n"))
    with pytest.raises(BarFileError, match="unknown time zone 'Mars/Olympus'"):
        read_bars(
            write(tmp_path, "x.txt", "2025.01.01,00:00,1,2,0.5,1.5,3\n"), ReadOptions(timezone="Mars/Olympus")
        )


def test_fast_reader_agrees_with_the_reference_reader_on_every_row(tmp_path):
    rng = np.random.default_rng(7)
    n = 3000
    start = datetime(2025, 3, 29, 22, 0)  # crosses the Europe/Berlin spring-forward gap in UTC terms only
    close = 100 + np.cumsum(rng.normal(0, 0.5, n))
    spread = rng.uniform(0, 1, n)
    lines = []
    for i in range(n):
        t = datetime.fromtimestamp(start.timestamp() + 60 * i, UTC)
        lines.append(
            f"{t:%Y.%m.%d},{t:%H:%M},{close[i]:.3f},{close[i] + spread[i]:.3f},"
            f"{close[i] - spread[i]:.3f},{close[i]:.3f},{rng.uniform(0, 9):.4f}\n"
        )
    path = write(tmp_path, "x.txt", "".join(lines))
    parsed = read_bars(path)
    expected = reference_rows(path, parsed.format, set(range(n)))
    assert rows(path) == [(ts, *vals) for _, (ts, vals) in sorted(expected.items())]


def test_reading_options_round_trip_through_json():
    options = ReadOptions(
        timezone="Asia/Tokyo",
        columns=ColumnMapping(timestamp="when", volume=6, ignore=("mood",)),
        datetime_format="%d/%m/%Y %H:%M",
    )
    assert ReadOptions.from_dict(json.loads(options.to_json())) == options
    assert ReadOptions().to_json() == '{"timezone": "UTC"}'
    with pytest.raises(ValueError, match="unknown reading option keys"):
        ReadOptions.from_dict({"tz": "UTC"})


def test_reference_reader_resolves_the_repeated_dst_hour_like_the_fast_reader(tmp_path):
    # Europe/Berlin 2025-10-26: every minute from 01:00 to 04:00 local, with 02:00-02:59 written twice.
    walls = [f"01:{m:02d}" for m in range(60)] + [f"02:{m:02d}" for m in range(60)] * 2
    walls += [f"03:{m:02d}" for m in range(60)]
    path = write(tmp_path, "x.txt", "".join(f"2025.10.26,{w},1,2,0.5,1.5,3\n" for w in walls))
    options = ReadOptions(timezone="Europe/Berlin")
    fast = [r[0] for r in rows(path, options)]
    assert fast == [us(2025, 10, 25, 23, 0) + 60_000_000 * i for i in range(240)]
    reference = reference_rows(path, read_bars(path, options).format, {0, 60, 119, 120, 179, 239})
    assert {i: ts for i, (ts, _) in reference.items()} == {i: fast[i] for i in reference}


def test_parquet_reference_reader_resolves_the_repeated_dst_hour(tmp_path):
    path = tmp_path / "x.parquet"
    walls = [datetime(2025, 10, 26, 2, 30), datetime(2025, 10, 26, 2, 30)]
    one = [1.0, 1.0]
    pq.write_table(
        pa.table(
            {
                "timestamp": pa.array(walls, pa.timestamp("us")),
                "open": one,
                "high": [2.0, 2.0],
                "low": [0.5, 0.5],
                "close": one,
                "volume": one,
            }
        ),
        path,
    )
    options = ReadOptions(timezone="Europe/Berlin")
    fast = [r[0] for r in rows(path, options)]
    assert fast == [us(2025, 10, 26, 0, 30), us(2025, 10, 26, 1, 30)]
    reference = reference_rows(path, read_bars(path, options).format, {1})
    assert reference[1][0] == fast[1]


def test_decimal_comma_is_detected_when_the_last_line_has_only_whole_numbers(tmp_path):
    path = write(
        tmp_path,
        "x.txt",
        "20250102 093000;5900,25;5901,5;5899;5900,75;1200\n20250102 093100;5900;5901;5899;5900;1\n",
    )
    assert rows(path)[0][1:] == (5900.25, 5901.5, 5899.0, 5900.75, 1200.0)


def pandas_export(tmp_path, name: str, index) -> tuple:
    """What a Python user exports: `DataFrame.to_csv()` of a time-indexed frame (first header cell empty)."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "open": [1.0, 2.0],
            "high": [2.0, 3.0],
            "low": [0.5, 1.5],
            "close": [1.5, 2.5],
            "volume": [7.0, 8.0],
        },
        index=index,
    )
    path = tmp_path / name
    frame.to_csv(path)
    return path, [
        (int(t.value // 1000), *row)
        for t, row in zip(frame.index, frame.itertuples(index=False), strict=True)
    ]


@pytest.mark.parametrize(
    "index",
    [
        ["2025-01-02", "2025-01-03"],  # daily dates
        ["2025-01-02 09:30:00", "2025-01-02 09:31:00"],  # intraday date-times
        ["2025-01-02 09:30:00+00:00", "2025-01-02 09:31:00+00:00"],  # a tz-aware index
    ],
)
def test_pandas_to_csv_of_a_time_indexed_frame_imports_without_a_sidecar(tmp_path, index):
    import pandas as pd

    path, expected = pandas_export(tmp_path, "spy.csv", pd.DatetimeIndex(index))
    assert path.read_text().startswith(",open,high,low,close,volume\n")
    assert rows(path) == expected
    fmt = read_bars(path).format
    assert reference_rows(path, fmt, {0, 1}) == {i: (t, tuple(v)) for i, (t, *v) in enumerate(expected)}


def test_a_bad_date_in_a_pandas_export_names_the_index_column(tmp_path):
    text = ",open,high,low,close,volume\n2025-01-02,1,2,0.5,1.5,7\n2025-01-3x,1,2,0.5,1.5,7\n"
    path = write(tmp_path, "spy.csv", text)
    with pytest.raises(BarFileError, match=r"spy\.csv line 3, field 'timestamp \(column 1\)'"):
        read_bars(path)
