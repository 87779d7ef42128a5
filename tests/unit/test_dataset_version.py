"""A dataset's version names its bars: the source content and how it was read, not the gap calendar."""

import hashlib
from datetime import UTC, datetime

from trading_assets.compute.bar_format import ReadOptions
from trading_assets.records import DatasetRecord


def record(read: ReadOptions, sha: str = "ab" * 32) -> DatasetRecord:
    day = datetime(2024, 1, 2, tzinfo=UTC)
    return DatasetRecord(
        name="spy",
        source_file="/x/spy.csv",
        source_sha256=sha,
        bar_interval_s=86_400,
        row_count=1,
        first_ts=day,
        last_ts=day,
        table_name="spy",
        columns=("open", "high", "low", "close", "volume"),
        read_options=read.to_json(),
    )


def test_the_version_hashes_the_source_and_the_reading_options():
    read = ReadOptions(timezone="America/New_York")
    expected = hashlib.sha256(f"{'ab' * 32}\n{read.to_json()}".encode()).hexdigest()
    assert record(read).version == expected


def test_a_calendar_alone_does_not_change_the_version():
    plain = record(ReadOptions(timezone="America/New_York"))
    on_calendar = record(ReadOptions(timezone="America/New_York", calendar="XNYS"))
    assert on_calendar.read_options != plain.read_options
    assert on_calendar.version == plain.version
    assert record(ReadOptions(calendar="24/7")).version == record(ReadOptions()).version


def test_what_changes_the_bars_changes_the_version():
    base = record(ReadOptions(calendar="XNYS"))
    assert record(ReadOptions(timezone="Europe/Berlin", calendar="XNYS")).version != base.version
    assert record(ReadOptions(calendar="XNYS"), sha="cd" * 32).version != base.version
