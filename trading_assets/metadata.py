"""Metadata values the assets share."""

import base64

import dagster as dg


def png_md(alt: str, png: bytes) -> dg.MetadataValue:
    """A PNG shown inline in the UI's metadata panel (markdown with a data URI)."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")
