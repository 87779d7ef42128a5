"""Load tests of the platform with locust, on loopback and bounded in time (docs/operations/loadtest.md).

`make loadtest` (python -m loadtests.run) builds a small research state on the production profile, serves
it with `trading-assets serve` and `dagster-webserver`, runs each scenario of loadtests/scenarios/ for the
time loadtests/limits.yaml gives it, prints a table of figures against the limits and exits 1 when one is
missed.
"""
