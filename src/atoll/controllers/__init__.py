"""Reconcile loops that drive Workloads from the desired state in the database (asyncio)."""
