"""The Ray runtime: workloads as actors on a Ray cluster (runtime.py) running each on its node's
local runtime (host.py); a private cluster for development and tests (cluster.py)."""
