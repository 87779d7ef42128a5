"""The catalog's numbered SQL migrations, one folder per dialect, shipped as package data."""
