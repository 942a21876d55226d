"""The local runtime: workloads as supervised process trees on this machine (runtime.py), with
their supervisor (shim.py), per-project sandbox, network namespaces and relay, cgroups, and warm
pools. Kept light: the supervisor imports from here at every workload start."""
