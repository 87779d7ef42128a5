"""Dagster resources: time-series stores, catalogs, the migration runner. No asset imports here."""
