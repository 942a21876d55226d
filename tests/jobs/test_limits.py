"""Project limits act on running jobs (spec §7.2), through the real controllers and runtime."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.jobs.conftest import Submit, V, read_log, wait_for

LONG = "cmd: echo started; sleep 600\ncloud-instance-types: [s1.1]\n"


@pytest.fixture
def fresh_project(api: TestClient, project: dict[str, Any]) -> dict[str, Any]:
    import uuid

    name = f"lim-{uuid.uuid4().hex[:8]}"
    return dict(api.post(f"{V}/projects", json={"communityId": project["communityId"], "name": name}).json())


def _submit_to(api: TestClient, project_id: str, config: str) -> dict[str, Any]:
    r = api.post(f"{V}/projects/{project_id}/jobs", json={"config": config})
    assert r.status_code == 201, r.text
    return dict(api.post(f"{V}/jobs/{r.json()['job']['id']}/execute").json())


def test_balance_running_out_stops_the_job(api: TestClient, fresh_project: dict[str, Any]) -> None:
    pid = fresh_project["id"]
    api.patch(f"{V}/projects/{pid}/limits", json={"balance": 3})  # s1.1: 1 unit/s → about 3 s
    job = wait_for(api, _submit_to(api, pid, LONG)["id"])
    assert job["status"] == "ERROR"
    assert job["statusDetails"] == "project balance is insufficient"
    assert "project balance is insufficient" in read_log(api, job["id"], "system")
    assert api.get(f"{V}/projects/{pid}/limits").json()["balance"] <= 0
    # With no balance left, a new job does not start at all.
    job = wait_for(api, _submit_to(api, pid, LONG)["id"])
    assert job["status"] == "ERROR" and "balance" in job["statusDetails"]


def test_max_units_per_execution_stops_the_job(api: TestClient, fresh_project: dict[str, Any]) -> None:
    pid = fresh_project["id"]
    api.patch(f"{V}/projects/{pid}/limits", json={"maxUnitsPerExecution": 2})
    job = wait_for(api, _submit_to(api, pid, LONG)["id"])
    assert job["status"] == "ERROR" and "maxUnitsPerExecution 2" in job["statusDetails"]


def test_max_units_per_hour_refuses_a_start(api: TestClient, fresh_project: dict[str, Any]) -> None:
    pid = fresh_project["id"]
    api.patch(f"{V}/projects/{pid}/limits", json={"maxUnitsPerHour": 3000})  # s1.1 costs 3600/hour
    job = wait_for(api, _submit_to(api, pid, LONG)["id"])
    assert job["status"] == "ERROR" and "maxUnitsPerHour" in job["statusDetails"]


def test_usage_is_recorded(api: TestClient, submit: Submit, project: dict[str, Any]) -> None:
    job = wait_for(api, submit("cmd: sleep 1.5\ncloud-instance-types: [s1.1]\n")["id"])
    assert job["status"] == "SUCCESS"
    usage = api.get(f"{V}/projects/{project['id']}/usage").json()
    assert usage["units"] >= 2  # at least 2 s of s1.1, rounded up


def test_out_of_memory_is_an_error_that_says_so(
    api: TestClient, app: FastAPI, fresh_project: dict[str, Any]
) -> None:
    r = api.put(f"{V}/configurations/t1.tiny", json={"vcpu": 1, "ramGb": 0.25, "unitsPerSecond": 1})
    assert r.status_code == 200, r.text
    cfg = (
        "cmd: python3 -c \"b = bytearray(2048 * 1024 * 1024); print('allocated', len(b))\"\n"
        "cloud-instance-types: [t1.tiny]\n"
    )
    job = wait_for(api, _submit_to(api, fresh_project["id"], cfg)["id"])
    assert job["status"] == "ERROR", job
    assert "allocated" not in read_log(api, job["id"])
    if app.state.services.local_runtime.limits.mechanism.startswith("cgroup"):
        assert "memory limit" in job["statusDetails"], job  # the kernel's OOM killer, named
    else:  # rlimits only: the allocation itself fails inside the program
        assert "MemoryError" in read_log(api, job["id"], "stderr")
