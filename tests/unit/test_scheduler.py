"""Admission rules of the scheduler, on plain data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from atoll.controllers.scheduler import Cluster, ConfigInfo, Pool, ProjectState, Request, schedule

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CATALOG = {
    "s1.1": ConfigInfo("s1.1", 1, 2, units_per_second=1),
    "s1.2": ConfigInfo("s1.2", 2, 4, units_per_second=2),
    "c1.4": ConfigInfo("c1.4", 4, 32, units_per_second=4),
    "g1.1": ConfigInfo("g1.1", 1, 2, gpu_count=1, gpu_type="V100", units_per_second=72),
    "off.1": ConfigInfo("off.1", 1, 1, enabled=False),
}


def req(wid: str, *configs: str, project: str = "p1", community: str = "c1", t: int = 0) -> Request:
    return Request(wid, project, community, configs, T0 + timedelta(seconds=t))


def test_first_configuration_that_can_run_now_wins() -> None:
    pool = Pool(cpus=2, memory_gb=8)
    (d,) = schedule([req("w1", "c1.4", "s1.2")], pool, CATALOG, {}, {})
    assert (d.action, d.configuration) == ("start", "s1.2")
    assert "c1.4" not in (d.reason or "")


def test_waits_for_capacity_with_a_reason() -> None:
    pool = Pool(cpus=2, memory_gb=8, used_cpus=2)
    (d,) = schedule([req("w1", "s1.1")], pool, CATALOG, {}, {})
    assert d.action == "wait" and "waiting for capacity" in d.reason


def test_fails_when_nothing_can_ever_run() -> None:
    pool = Pool(cpus=2, memory_gb=8)
    (d,) = schedule([req("w1", "c1.4", "g1.1", "off.1", "nope.1")], pool, CATALOG, {}, {})
    assert d.action == "fail"
    for part in ("c1.4: needs 4 vCPU", "g1.1", "off.1: disabled", "nope.1: not in the catalogue"):
        assert part in d.reason


def test_gpus_are_assigned_by_type() -> None:
    pool = Pool(cpus=8, memory_gb=32, gpus={0: "Tesla V100", 1: "NVIDIA A100"})
    d1, d2 = schedule([req("w1", "g1.1"), req("w2", "g1.1", t=1)], pool, CATALOG, {}, {})
    assert (d1.action, d1.gpu_ids) == ("start", (0,))
    assert d2.action == "wait"


def test_community_allow_list_and_balance() -> None:
    pool = Pool(cpus=8, memory_gb=32)
    projects = {"p1": ProjectState(allowed={"s1.1"}), "p2": ProjectState(balance=0)}
    d1, d2 = schedule([req("w1", "s1.2"), req("w2", "s1.1", project="p2", t=1)], pool, CATALOG, projects, {})
    assert d1.action == "fail" and "not allowed" in d1.reason
    assert d2.action == "fail" and d2.reason == "project balance is insufficient"


def test_max_units_per_hour_refuses_or_waits() -> None:
    pool = Pool(cpus=8, memory_gb=32)
    # s1.2 costs 7200 units/hour: over a 5000 limit outright; s1.1 (3600) fits once.
    projects = {"p1": ProjectState(max_units_per_hour=5000)}
    d1, d2, d3 = schedule(
        [req("w1", "s1.2"), req("w2", "s1.1", t=1), req("w3", "s1.1", t=2)], pool, CATALOG, projects, {}
    )
    assert d1.action == "fail" and "maxUnitsPerHour" in d1.reason
    assert d2.action == "start"
    assert d3.action == "wait" and "already uses 3600" in d3.reason


def test_fair_across_communities() -> None:
    pool = Pool(cpus=2, memory_gb=8)
    queue = [
        req("a1", "s1.1", community="A", t=0),
        req("a2", "s1.1", community="A", t=1),
        req("b1", "s1.1", community="B", t=5),
    ]
    decisions = {d.workload_id: d.action for d in schedule(queue, pool, CATALOG, {}, {"A": 1.0})}
    # A already uses a vCPU: B's later job goes before A's queued ones.
    assert decisions["b1"] == "start"
    assert sorted(decisions.values()) == ["start", "start", "wait"]


def _cluster(elastic: bool = False) -> Cluster:
    return Cluster(
        [
            Pool(cpus=4, memory_gb=16, gpus={0: "Tesla V100"}, host="gpu-node"),
            Pool(cpus=2, memory_gb=16, host="cpu-node"),
        ],
        elastic=elastic,
    )


def test_on_a_cluster_cpu_work_fills_machines_without_gpus_first() -> None:
    cluster = _cluster()
    d1, d2, d3 = schedule(
        [req("w1", "s1.2"), req("w2", "s1.2", t=1), req("w3", "g1.1", t=2)], cluster, CATALOG, {}, {}
    )
    assert (d1.action, d1.host) == ("start", "cpu-node")
    assert (d2.action, d2.host) == ("start", "gpu-node")  # the CPU machine is full
    assert (d3.action, d3.host, d3.gpu_ids) == ("start", "gpu-node", (0,))


def test_on_a_cluster_a_workload_must_fit_one_machine() -> None:
    # c1.4 needs 32 GB: the cluster has 32 GB in all, but 16 GB per machine.
    (d,) = schedule([req("w1", "c1.4")], _cluster(), CATALOG, {}, {})
    assert d.action == "fail" and "more than any machine of this installation has" in d.reason
    # Machines may join an elastic cluster (Ray): it waits with the reason instead.
    (d,) = schedule([req("w1", "c1.4")], _cluster(elastic=True), CATALOG, {}, {})
    assert d.action == "wait" and "no node of the cluster has that: waiting for one" in d.reason


def test_running_work_is_held_on_its_machine() -> None:
    cluster = _cluster()
    cluster.hold(CATALOG["s1.2"], [], "cpu-node")
    (d,) = schedule([req("w1", "s1.2")], cluster, CATALOG, {}, {})
    assert (d.action, d.host) == ("start", "gpu-node")


def test_working_storage_is_reserved_per_machine() -> None:
    def wreq(wid: str, gb: float, t: int = 0) -> Request:
        return Request(wid, "p1", "c1", ("s1.1",), T0 + timedelta(seconds=t), storage_gb=gb)

    pool = Pool(cpus=8, memory_gb=32, storage_gb=150)
    d1, d2, d3, d4 = schedule(
        [wreq("w1", 100), wreq("w2", 100, 1), wreq("w3", 50, 2), wreq("w4", 200, 3)], pool, CATALOG, {}, {}
    )
    assert d1.action == "start" and d3.action == "start"  # 100 + 50 of 150
    assert d2.action == "wait" and "waiting for working storage (100 GB" in d2.reason
    assert d4.action == "fail" and "200 GB of working storage, more than this installation has" in d4.reason
    # Running work holds its reservation; a cluster places the job where the storage is free.
    busy = Pool(cpus=8, memory_gb=32, storage_gb=150, host="a")
    busy.hold(CATALOG["s1.1"], [], 120)
    free = Pool(cpus=8, memory_gb=32, storage_gb=150, host="b")
    (d,) = schedule([wreq("w5", 100)], Cluster([busy, free]), CATALOG, {}, {})
    assert (d.action, d.host) == ("start", "b")
