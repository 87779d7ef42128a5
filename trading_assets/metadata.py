"""Metadata values the assets share."""

import base64
import functools
import os

import dagster as dg

from resources.migrations import POSTGRES, discover_migrations

# Where the dashboard is (`trading-assets serve`), for the links from an asset's metadata to its page.
DASHBOARD_URL_ENV = "TRADING_DASHBOARD_URL"
DEFAULT_DASHBOARD_URL = "http://127.0.0.1:8000"

# Every run carries the catalog schema its code expects (the newest migration), so a run's record says which
# schema it was written for; the exporter sets the catalog's applied version beside the same figure.
SCHEMA_VERSION_TAG = "trading/schema_version"


@functools.cache
def schema_version() -> str:
    """The newest migration's version (both dialects number theirs alike, as test_migrations checks)."""
    return discover_migrations(POSTGRES)[-1].version


def job_tags(kind: str | None = None) -> dict[str, str]:
    """A job's tags, which every run of it carries: the schema version, and its kind (`trading/kind`)."""
    tags = {SCHEMA_VERSION_TAG: schema_version()}
    return tags if kind is None else {"trading/kind": kind, **tags}


def dashboard_url(path: str) -> dg.MetadataValue:
    """A link to the dashboard page at `path` (TRADING_DASHBOARD_URL, default http://127.0.0.1:8000)."""
    base = os.environ.get(DASHBOARD_URL_ENV) or DEFAULT_DASHBOARD_URL
    return dg.MetadataValue.url(f"{base.rstrip('/')}{path}")


def png_md(alt: str, png: bytes) -> dg.MetadataValue:
    """A PNG shown inline in the UI's metadata panel (markdown with a data URI)."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")
