"""The Docker runtime: workloads as containers (runtime.py), their logs (logs.py) and one Docker
network per project (networks.py)."""
