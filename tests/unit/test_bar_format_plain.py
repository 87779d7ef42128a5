"""The fast reader's plain-layout path (numba kernels, parallel chunks): it reads what it reads exactly as
Arrow's CSV reader does, whatever the chunking, and hands every other file to that reader."""

import numpy as np
import pytest

from trading_assets.compute.bar_format import (
    BarFileError,
    ReadOptions,
    detect_format,
    fast,
    plain,
    read_bars,
    reference_rows,
)
from trading_assets.compute.bar_format.fast import _read_text_columns
from trading_assets.compute.bar_format.plain import read_plain_columns

MT4 = "".join(
    f"2025.01.{1 + i // 1440:02d},{i // 60 % 24:02d}:{i % 60:02d},{100 + i % 7}.25,{102 + i % 5}.5,"
    f"{99 - i % 3}.125,{100 + i % 4}.0,{i % 11}.0625\n"
    for i in range(3000)
)

HEADER = "Date,Time,Open,High,Low,Close,Volume\n"
TOHLCV = "time,open,high,low,close,volume\n"
PLAIN = {
    "mt4.txt": MT4,
    "header_seconds.csv": HEADER + "2025-01-01,00:00:00,1,2,0.5,1.5,3\n"
    "2025-01-01,00:00:30,-1.25,2,-3.5,0,0.001\n",
    "mt5.csv": "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
    "2025.01.02\t09:30:00\t1.1\t1.2\t1.0\t1.15\t42\t7\t3\n"
    "2025.01.02\t09:31:00\t1.15\t1.3\t1.1\t1.2\t4\t8\t3\n",
    "ninja.txt": "20250102 093000;5900,25;5901,5;5899;5900,75;1200\n"
    "20250102 093100;5900,75;5902;5900;5901;80\n",
    "one_column.csv": "timestamp,open,high,low,close,volume\n"
    "2024-02-29 23:59:59,1,2,0.5,1.5,3\n2024-03-01 00:00:00,1,2,0.5,1.5,3\n",
    "daily.csv": "date,open,high,low,close,volume\n"
    "2025-01-02,10,11,9,10.5,100\n2025-01-03,10,11,9,10.5,100\n",
    "epoch_s.csv": TOHLCV + "1735689600,1,2,0.5,1.5,3\n1735689660,1,2,0.5,1.5,3\n",
    "epoch_ms.csv": TOHLCV + "1735689600000,1,2,0.5,1.5,3\n1735689660000,1,2,0.5,1.5,3\n",
    "epoch_ns.csv": TOHLCV + "1735689600000000999,1,2,0.5,1.5,3\n9223372036854775807,1,2,0.5,1.5,3\n",
    "crlf_blank_lines.csv": HEADER.replace("\n", "\r\n") + "\r\n2025-01-01,00:00,1,2,0.5,1.5,3\r\n\n\r\n"
    "2025-01-01,00:01,1,2,0.5,1.5,3\r\n\r\n",
    "no_final_newline.txt": "2025.01.01,00:00,1,2,0.5,1.5,3\n2025.01.01,00:01,1,2,0.5,1.5,3",
    "timestamp_last.csv": "3,1.5,0.5,2,1,2025-01-01 00:00\n4,1.5,0.5,2,1,2025-01-01 00:01\n",
}
OPTIONS = {
    "timestamp_last.csv": {
        "columns": {"volume": 0, "close": 1, "low": 2, "high": 3, "open": 4, "timestamp": 5}
    },
}


@pytest.fixture(autouse=True)
def plain_for_every_size(monkeypatch):
    """read_bars tries the plain path on small files too (by default they are Arrow's)."""
    monkeypatch.setattr(fast, "_PLAIN_MIN_BYTES", 0)


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def options(name: str, **extra) -> ReadOptions:
    return ReadOptions.from_dict({**OPTIONS.get(name, {}), **extra})


def bits(table) -> list[np.ndarray]:
    return [np.asarray(c.to_numpy()).view(np.int64) for c in table.columns]


def assert_same(a, b) -> None:
    assert a.schema == b.schema
    for x, y in zip(bits(a), bits(b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_layouts_give_arrows_columns_bit_for_bit(tmp_path, name):
    path = write(tmp_path, name, PLAIN[name])
    fmt = detect_format(path, options(name))
    got = read_plain_columns(path, fmt)
    assert got is not None, "the plain path should read this layout"
    assert_same(got, _read_text_columns(path, fmt))


@pytest.mark.parametrize("name", sorted(PLAIN))
@pytest.mark.parametrize("timezone", ["UTC", "Europe/Berlin"])
def test_plain_layouts_read_like_the_reference_reader(tmp_path, name, timezone):
    path = write(tmp_path, name, PLAIN[name])
    parsed = read_bars(path, options(name, timezone=timezone))
    expected = reference_rows(path, parsed.format, set(range(parsed.table.num_rows)))
    ts = parsed.table.column("ts").cast("int64").to_pylist()
    values = [parsed.table.column(f).to_pylist() for f in ("open", "high", "low", "close", "volume")]
    assert [(t, tuple(v)) for t, *v in zip(ts, *values, strict=True)] == [
        expected[r] for r in sorted(expected)
    ]


def test_every_chunking_reads_the_same_rows(tmp_path):
    # Chunks start at every possible byte: inside fields, at CRs, at blank lines, in the last line.
    lines = [
        f"2025-01-01,00:{m:02d},-{m}.5,{m}.25,-{m + 1},0,{m}" + ("\r\n" if m % 3 else "\n") for m in range(12)
    ]
    lines[4:4] = ["\n", "\r\n"]
    path = write(tmp_path, "x.csv", HEADER + "".join(lines) + "\n")
    fmt = detect_format(path)
    whole = read_plain_columns(path, fmt)
    assert whole is not None and whole.num_rows == 12
    for chunk_bytes in range(1, path.stat().st_size + 2):
        assert_same(read_plain_columns(path, fmt, chunk_bytes), whole)


def test_many_chunks_of_a_long_file_keep_row_order(tmp_path):
    path = write(tmp_path, "x.txt", MT4)
    fmt = detect_format(path)
    for chunk_bytes in (97, 4096, 65536):
        assert_same(read_plain_columns(path, fmt, chunk_bytes), _read_text_columns(path, fmt))


def test_values_round_to_the_same_double_as_python_float(tmp_path):
    rng = np.random.default_rng(11)
    texts = []
    for _ in range(20_000):
        digits = int(rng.integers(1, 16))
        mantissa = str(int(rng.integers(1, 10**digits)))
        point = int(rng.integers(0, len(mantissa) + 1))
        text = (mantissa[:point] or "0") + ("." + mantissa[point:] if mantissa[point:] else "")
        texts.append(("-" if rng.random() < 0.3 else "") + text if len(text.replace(".", "")) <= 15 else "1")
    body = "".join(f"{1_700_000_000 + i},{t},{t},{t},{t},{t}\n" for i, t in enumerate(texts))
    path = write(tmp_path, "x.csv", "time,open,high,low,close,volume\n" + body)
    got = read_plain_columns(path, detect_format(path))
    assert got is not None
    expected = np.array([float(t) for t in texts])
    np.testing.assert_array_equal(got.column("open").to_numpy().view(np.int64), expected.view(np.int64))


NOT_PLAIN = {
    "sixteen_digits.txt": "2025.01.01,00:00,1.234567890123456,2,0.5,1.5,3\n",
    "exponent.txt": "2025.01.01,00:00,1e2,200,50,150,3\n",
    "quoted.csv": HEADER + '"2025-01-01","00:00",1,2,0.5,1.5,3\n',
    "unpadded_date.txt": "2025.1.5,00:00,1,2,0.5,1.5,3\n",
    "no_leading_digit.txt": "2025.01.01,00:00,.5,2,0.5,1.5,3\n",
    "trailing_point.txt": "2025.01.01,00:00,1.,2,0.5,1.5,3\n",
    "iso_fractions.csv": "timestamp,open,high,low,close,volume\n2025-01-01T00:00:00.250Z,1,2,0.5,1.5,3\n",
    "whitespace.prn": "2025-01-01 00:00:00  1.0  2.0  0.5  1.5  3\n",
    # Arrow reads 29 February 2025 as 1 March: the plain path leaves such a date to it (and to the checks).
    "leap_day_in_2025.txt": "2025.01.01,00:00,1,2,0.5,1.5,3\n2025.02.29,00:00,1,2,0.5,1.5,3\n",
    "seconds_over_the_minute.csv": HEADER + "2025-01-01,00:00:00,1,2,0.5,1.5,3\n"
    "2025-01-01,00:00:30,1,2,0.5,1.5,3\n2025-01-01,00:00:60,1,2,0.5,1.5,3\n",
}


@pytest.mark.parametrize("name", sorted(NOT_PLAIN))
def test_other_layouts_are_left_to_the_arrow_reader(tmp_path, name):
    path = write(tmp_path, name, NOT_PLAIN[name])
    fmt = detect_format(path)
    assert read_plain_columns(path, fmt) is None
    try:
        expected = _read_text_columns(path, fmt)
    except Exception as err:  # the Arrow reader refuses it: read_bars reports that, not the plain path
        with pytest.raises(BarFileError):
            read_bars(path)
        assert err is not None
    else:
        parsed = read_bars(path)
        assert parsed.table.column("open").to_pylist() == expected.column("open").to_pylist()


@pytest.fixture
def small_chunks(monkeypatch):
    """read_bars splits even a small file into many chunks."""
    monkeypatch.setattr(plain, "_MIN_CHUNK_BYTES", 64)


def test_a_bad_value_in_a_later_chunk_is_named_by_its_line(tmp_path, small_chunks):
    lines = MT4.splitlines(keepends=True)
    lines[2899] = lines[2899].replace(".0625", ".06x5")
    path = write(tmp_path, "x.txt", "".join(lines))
    with pytest.raises(BarFileError, match=r"x\.txt line 2900, field 'volume \(column 7\)'.*'\d+\.06x5'"):
        read_bars(path)


def test_an_unreadable_date_in_a_later_chunk_is_named_by_its_line(tmp_path, small_chunks):
    lines = MT4.splitlines(keepends=True)
    lines[2500] = "2025.01.32" + lines[2500][10:]
    path = write(tmp_path, "x.txt", "".join(lines))
    with pytest.raises(
        BarFileError, match=r"x\.txt line 2501, field 'timestamp \(columns 1-2\)'.*2025\.01\.32"
    ):
        read_bars(path)


def test_a_short_line_in_a_later_chunk_is_named_by_its_line(tmp_path, small_chunks):
    lines = MT4.splitlines(keepends=True)
    lines[2999] = lines[2999].rsplit(",", 1)[0] + "\n"
    path = write(tmp_path, "x.txt", "".join(lines))
    with pytest.raises(BarFileError, match=r"x\.txt line 3000: has 6 fields, expected 7"):
        read_bars(path)
