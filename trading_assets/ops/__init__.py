"""Operations: what keeps a deployment healthy and recoverable. The metrics exporter Prometheus scrapes
(Dagster instance, catalog, live services, GPU), and backups of the catalog, the Dagster storage, the
time-series store and the artifacts, with their restore and verification (docs/operations.md)."""
