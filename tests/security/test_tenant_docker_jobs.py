"""A job of project B with `env.docker` attacks the data dir from inside its container: through the
outputs Atoll collects as root, and by looking for Atoll's files. One real root `atoll up` with a
private dockerd; each project's containers run as the project's uid on its own Docker network.

Skipped, with the reason, where Docker or root is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.docker import Dockerd, dockerd_or_skip
from tests.support.server import RunningServer
from tests.support.tenants import finish, job_config, logs, new_project, root_server, submit

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="per-project users need a root server")


@pytest.fixture(scope="module")
def docker_srv() -> Iterator[tuple[RunningServer, Dockerd]]:
    with dockerd_or_skip() as d, root_server("atoll-secd-", {"ATOLL_DOCKER_HOST": d.url}) as server:
        yield server, d


def test_a_container_job_reaches_nothing_of_atoll(docker_srv: tuple[RunningServer, Dockerd]) -> None:
    srv, d = docker_srv
    data = srv.data_dir
    secret_key = (data / "secret.key").read_bytes()
    with srv.api() as api:
        a, b = new_project(api, "dock-a"), new_project(api, "dock-b")
        home = job_config("echo A-private > $DS_PROJECT_HOME/x", "flags: [attach-project-disk]\n")
        assert finish(api, submit(api, a, home))["status"] == "SUCCESS"
        cmd = (
            f"ls {data} 2>&1; cat {data}/secret.key 2>&1; id -u; "
            f"rm -rf lnk && ln -s {data} lnk && ln -s {data}/secret.key direct && mkfifo fifo && echo planted"
        )
        outputs = ["lnk/secret.key", "lnk/atoll.db", f"lnk/projects/{a}/home/x", "direct", "fifo", "lnk"]
        extra = f"env:\n  docker: {d.image}\noutputs:\n" + "".join(f"  - {o}\n" for o in outputs)
        job = finish(api, submit(api, b, job_config(cmd, extra)), timeout=120)
        out = logs(api, job["id"], "stdout", "stderr")
        system = logs(api, job["id"], "system")
        assert job["status"] == "SUCCESS", (job["statusDetails"], out, system)
        assert "running in a container of image" in system and "planted" in out
        # Inside, the data dir is not there at all; the job runs as the project's uid, not root.
        assert secret_key.decode(errors="replace")[:16] not in out
        assert logs(api, job["id"], "stdout").splitlines()[-2] not in ("0", ""), out
        errors = {e["path"]: e["error"] for e in job["fileErrors"]}
        assert set(errors) == set(outputs) and set(errors.values()) == {"NOT_A_REGULAR_FILE"}, (
            errors,
            job["outputFiles"],
        )
        for o in job.get("outputFiles") or []:
            content = api.get(f"/jobs/{job['id']}/files/{o['sha256']}").content
            assert secret_key not in content and b"A-private" not in content
    assert b in _project_networks(d)  # the container ran on its project's own network


def _project_networks(d: Dockerd) -> set[str]:
    c = d.client()
    try:
        return {
            str(n.attrs["Labels"].get("atoll.project"))
            for n in c.networks.list(filters={"label": "atoll.network"})
        }
    finally:
        c.close()
