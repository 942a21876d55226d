"""Runtimes run Workloads; this package knows nothing of tenancy or jobs."""
