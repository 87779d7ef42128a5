"""Plain-text tables and times, as `catalog` and `requests` print them."""

from collections.abc import Sequence
from datetime import datetime


def print_table(title: str, header: Sequence[str], rows: list[Sequence[object]]) -> None:
    """An aligned plain-text table, or a line saying there is none."""
    print(f"{title} ({len(rows)})")
    if not rows:
        print()
        return
    cells = [list(header)] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for row in cells:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    print()


def when(ts: datetime | None) -> str:
    return "-" if ts is None else f"{ts:%Y-%m-%d %H:%M}"


def span(first: datetime | None, last: datetime | None) -> str:
    return "-" if first is None else f"{when(first)} .. {when(last)}"
