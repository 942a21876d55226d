"""A node from a Docker image (spec §6.1 "From Docker image"): two containers of one image, each
published on its own loopback port, balanced by the gateway. Needs a real dockerd (skips when
this machine cannot run one)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.deploy.conftest import FAST, gateway_ready, set_alias, wait_for, wait_healthy
from tests.notebooks.conftest import new_project
from tests.support.docker import Dockerd, dockerd_or_skip
from tests.support.server import RunningServer, start_server


@pytest.fixture(scope="module")
def docker_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Dockerd]]:
    with contextlib.ExitStack() as stack:
        d = stack.enter_context(dockerd_or_skip())
        srv = start_server(
            tmp_path_factory.mktemp("docker-nodes") / "data", extra_env={**FAST, "ATOLL_DOCKER_HOST": d.url}
        )
        stack.callback(srv.stop)
        yield srv, d


def test_image_node_runs_containers_behind_an_alias(docker_server: tuple[RunningServer, Dockerd]) -> None:
    server, d = docker_server
    pid = new_project(server, "images")["id"]
    body: dict[str, Any] = {
        "name": "web",
        "image": d.image,
        "command": ["python3", "-m", "http.server", "8000", "--bind", "0.0.0.0"],
        "port": 8000,
        "minInstances": 2,
        "configuration": "s1.1",
        "healthCheck": {"path": "/", "intervalS": 0.5},
    }
    with server.api() as api:
        r = api.post(f"/projects/{pid}/nodes", json=body)
        assert r.status_code == 201, r.text
        node = r.json()
        assert node["kind"] == "image"
        bad = api.post(f"/projects/{pid}/nodes", json={**body, "name": "noport", "port": None})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "port"
    node = wait_healthy(server, pid, node["id"], count=2, timeout=120)
    ports = {i["port"] for i in node["instances"]}
    assert len(ports) == 2  # one loopback port per container, both onto the image's port 8000
    names = _running(d)
    assert {f"atoll-{i['workloadId']}" for i in node["instances"]} <= names
    set_alias(server, pid, "web", {node["id"]: 100}, create=True)
    gateway_ready(server, "web", server.admin_token)
    for _ in range(6):
        r = httpx.get(
            server.gateway_url + "/alias/web/", headers={"authorization": f"Bearer {server.admin_token}"}
        )
        assert r.status_code == 200 and "Directory listing" in r.text
    with server.api() as api:
        assert api.post(f"/projects/{pid}/nodes/{node['id']}:suspend").status_code == 200
    ours = {f"atoll-{i['workloadId']}" for i in node["instances"]}

    def stopped() -> bool:
        return not _running(d) & ours

    wait_for("the containers stopped", stopped, timeout=60)


def test_an_image_health_check_port_of_its_own(docker_server: tuple[RunningServer, Dockerd]) -> None:
    """healthCheck.port names the image's own port (DataSphere's form has one): it is published
    on a loopback port of its own and checked there; /ok exists only on that port."""
    server, d = docker_server
    pid = new_project(server, "image-health")["id"]
    serve = (
        "mkdir -p /tmp/h && touch /tmp/h/ok && "
        "(python3 -m http.server 8001 --bind 0.0.0.0 --directory /tmp/h &) && "
        "exec python3 -m http.server 8000 --bind 0.0.0.0"
    )
    body = {
        "name": "checked-aside",
        "image": d.image,
        "command": ["sh", "-c", serve],
        "port": 8000,
        "configuration": "s1.1",
        "healthCheck": {"path": "/ok", "port": 8001, "intervalS": 0.5},
    }
    with server.api() as api:
        r = api.post(f"/projects/{pid}/nodes", json=body)
        assert r.status_code == 201, r.text
    node = wait_healthy(server, pid, r.json()["id"], timeout=120)
    with server.api() as api:
        assert api.post(f"/projects/{pid}/nodes/{node['id']}:suspend").status_code == 200


def test_job_with_env_docker_runs_in_a_container(docker_server: tuple[RunningServer, Dockerd]) -> None:
    """env.docker (spec §5.4): the job's command runs in the image; outputs come back as usual."""
    server, d = docker_server
    pid = new_project(server, "docker-jobs")["id"]
    config = (
        "name: in-docker\n"
        "cmd: cat /etc/debian_version > release.txt && echo in-container\n"
        f"env:\n  docker: {d.image}\n"
        "outputs:\n  - release.txt\n"
        "cloud-instance-types: s1.1\n"
    )
    with server.api() as api:
        r = api.post(f"/projects/{pid}/jobs", json={"config": config})
        assert r.status_code == 201, r.text
        job_id = r.json()["job"]["id"]
        assert api.post(f"/jobs/{job_id}/execute").status_code == 200
        job = wait_for(
            "the job",
            lambda: (j := api.get(f"/jobs/{job_id}").json())["status"] in ("SUCCESS", "ERROR") and j,
            timeout=120,
        )
        system = api.get(f"/jobs/{job_id}/logs", params={"stream": "system"}).json()["data"]
        assert job["status"] == "SUCCESS", f"{job['statusDetails']}\n{system}"
        assert f"running in a container of image {d.image}" in system
        assert "in-container" in api.get(f"/jobs/{job_id}/logs").json()["data"]
        out = job["outputFiles"][0]
        release = api.get(f"/jobs/{job_id}/files/{out['sha256']}").text
        assert release.strip()[:2].isdigit()  # Debian's version, from inside the image


def _running(d: Dockerd) -> set[str]:
    """Names of the running containers, from one list call (docker-py's containers.list() inspects
    each one after listing, and fails on a container removed in between)."""
    return {name.lstrip("/") for c in d.client().api.containers() for name in c["Names"]}
