"""The HTTP API (`trading-assets serve`): catalog, time series and job requests under /api/v1."""
