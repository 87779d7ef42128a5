"""Metadata values the assets share."""

import base64
import os

import dagster as dg

# Where the dashboard is (`trading-assets serve`), for the links from an asset's metadata to its page.
DASHBOARD_URL_ENV = "TRADING_DASHBOARD_URL"
DEFAULT_DASHBOARD_URL = "http://127.0.0.1:8000"


def dashboard_url(path: str) -> dg.MetadataValue:
    """A link to the dashboard page at `path` (TRADING_DASHBOARD_URL, default http://127.0.0.1:8000)."""
    base = os.environ.get(DASHBOARD_URL_ENV) or DEFAULT_DASHBOARD_URL
    return dg.MetadataValue.url(f"{base.rstrip('/')}{path}")


def png_md(alt: str, png: bytes) -> dg.MetadataValue:
    """A PNG shown inline in the UI's metadata panel (markdown with a data URI)."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")
