"""The recorder's disk spool: closed bars the store could not take, kept on local disk until it can.

One file per table, `<directory>/<table>.bars` (the table name from `naming`, so a file name is always a
valid table name), of fixed-size records appended in the order the bars were recorded:

    ts (int64, ms since the epoch) | open high low close volume (5 x float64) | CRC-32 of those 48 bytes

all little-endian, 52 bytes a record. `append` returns only after the records are flushed and fsynced, so
a bar the recorder has spooled survives a kill -9 or a power cut. A kill in the middle of an append leaves
at most one torn record at the end of the file: it is found when the file is opened (a length that is not
a whole number of records, or a last record whose checksum does not match), logged as a warning, and cut
off, so that later appends start on a record boundary. That bar was never reported spooled, so the
recorder still has it to write.

`read` gives the bars in timestamp order with duplicates collapsed (a bar spooled twice, after a restart
caught it up again, is one bar; the later copy wins). `drop_through` removes what the store has taken,
and is called only after the store's write returned: the remaining records go to a new file that replaces
the old one by rename (atomic), and an empty spool is deleted. A kill between the store's write and the
drop leaves the bars spooled, so they are written again: harmless, the store's writes are idempotent.

Only the tables asked for are opened; any other file in the directory is left alone.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from trading_assets import naming

log = logging.getLogger(__name__)

Bar = tuple[int, float, float, float, float, float]

_BODY = struct.Struct("<q5d")
_CRC = struct.Struct("<I")
RECORD_BYTES = _BODY.size + _CRC.size
SUFFIX = ".bars"


class SpoolError(RuntimeError):
    """The spool could not be written or read (the disk full, a permission, a corrupt record)."""


class Spool:
    """The spooled bars of each table under `directory` (created on first append)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        # Each opened table's bars by ts, the file's content as last synced: counting and the newest bar
        # never need to read the file again.
        self._bars: dict[str, dict[int, Bar]] = {}

    def path(self, table: str) -> Path:
        return self.directory / f"{naming.table_name(table)}{SUFFIX}"

    def append(self, table: str, bars: Iterable[Sequence[float]]) -> None:
        """Add `bars` (ts ms, open, high, low, close, volume) at the end of the table's spool, durably."""
        spooled = self._load(table)
        rows = [_bar(b) for b in bars]
        if not rows:
            return
        data = b"".join(_record(row) for row in rows)
        path = self.path(table)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            created = not path.exists()
            with path.open("ab") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            if created:
                _fsync_dir(self.directory)
        except OSError as err:
            raise SpoolError(f"spool {path}: cannot append {len(rows)} bars: {err}") from None
        for row in rows:
            spooled[row[0]] = row

    def read(self, table: str) -> list[Bar]:
        """The table's spooled bars in timestamp order, one per timestamp."""
        spooled = self._load(table)
        return [spooled[ts] for ts in sorted(spooled)]

    def count(self, table: str) -> int:
        """Bars spooled for the table (distinct timestamps)."""
        return len(self._load(table))

    def last_ms(self, table: str) -> int | None:
        """The newest spooled bar's timestamp, or None when nothing is spooled."""
        spooled = self._load(table)
        return max(spooled) if spooled else None

    def drop_through(self, table: str, ts_ms: int) -> int:
        """Remove the bars with ts <= `ts_ms` (the store has taken them); return how many were removed."""
        spooled = self._load(table)
        keep = {ts: bar for ts, bar in spooled.items() if ts > ts_ms}
        removed = len(spooled) - len(keep)
        if not removed:
            return 0
        path = self.path(table)
        try:
            if keep:
                fresh = path.with_name(path.name + ".new")
                with fresh.open("wb") as file:
                    file.write(b"".join(_record(keep[ts]) for ts in sorted(keep)))
                    file.flush()
                    os.fsync(file.fileno())
                fresh.replace(path)
            else:
                path.unlink(missing_ok=True)
            _fsync_dir(self.directory)
        except OSError as err:
            raise SpoolError(f"spool {path}: cannot drop the bars the store took: {err}") from None
        self._bars[naming.table_name(table)] = keep
        return removed

    def _load(self, table: str) -> dict[int, Bar]:
        table = naming.table_name(table)
        if table not in self._bars:
            self._bars[table] = self._read_file(self.path(table))
        return self._bars[table]

    def _read_file(self, path: Path) -> dict[int, Bar]:
        # A `.new` file is a drop that was killed before its rename: the old file still holds every bar.
        path.with_name(path.name + ".new").unlink(missing_ok=True)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as err:
            raise SpoolError(f"spool {path}: cannot read it: {err}") from None
        whole = len(data) - len(data) % RECORD_BYTES
        bars: dict[int, Bar] = {}
        for offset in range(0, whole, RECORD_BYTES):
            body = data[offset : offset + _BODY.size]
            (crc,) = _CRC.unpack_from(data, offset + _BODY.size)
            if zlib.crc32(body) == crc:
                bar = _BODY.unpack(body)
                bars[bar[0]] = bar
            elif offset + RECORD_BYTES == whole and whole == len(data):
                whole = offset  # the last record, torn inside: cut it off below like a short one
            else:
                raise SpoolError(
                    f"spool {path}: record {offset // RECORD_BYTES} has a bad checksum (the file is "
                    "damaged); move it aside to go on without its bars"
                )
        if whole != len(data):
            log.warning(
                "spool %s: a torn record at the end (%d bytes, killed while appending) is ignored",
                path,
                len(data) - whole,
            )
            try:
                with path.open("r+b") as file:
                    file.truncate(whole)
                    os.fsync(file.fileno())
            except OSError as err:
                raise SpoolError(f"spool {path}: cannot cut off its torn record: {err}") from None
        return bars


def _bar(values: Sequence[float]) -> Bar:
    ts, o, h, lo, c, v = values
    return int(ts), float(o), float(h), float(lo), float(c), float(v)


def _record(bar: Bar) -> bytes:
    body = _BODY.pack(*bar)
    return body + _CRC.pack(zlib.crc32(body))


def _fsync_dir(directory: Path) -> None:
    """A created, renamed or deleted file is durable only once its directory is synced."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
