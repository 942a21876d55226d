"""Jobs through Atoll on the two-node Ray cluster: placement follows the configuration's resources
(CPU work on the GPU-less head first, the T4 configuration on the node that has one), a
configuration no node can host waits with that reason, and the jobs acceptance tests of the CLI
pass on Ray (imported below: they run here, on this package's Ray-backed server)."""

from __future__ import annotations

import time

from tests.e2e.conftest import admin, server  # noqa: F401 - fixtures of the imported tests
from tests.e2e.test_cli_jobs import (  # noqa: F401 - re-run on the ray runtime
    PROJECT,
    ProjectCli,
    _job,
    _wait,
    cli,
    project_id,
    test_cancel_and_download_while_running,
    test_execute_streams_logs_and_downloads_outputs,
    test_failing_program_exits_non_zero_with_one_line,
)
from tests.ray.conftest import GPU_NODE, HEAD
from tests.support.server import RunningServer

WHERE = 'echo "host=$HOST gpus=[$CUDA_VISIBLE_DEVICES]"'


def _execute(c: ProjectCli, name: str, configuration: str) -> str:
    """Start a job printing where it runs on ``configuration``, without waiting; its id."""
    (c.cwd / "config.yaml").write_text(
        f"name: {name}\ncmd: '{WHERE}'\ncloud-instance-types: [{configuration}]\n"
    )
    return c.ok("job", "execute", "-p", PROJECT, "-c", "config.yaml", "--async").out.strip()


def _stdout(c: ProjectCli, job_id: str) -> str:
    c.ok("job", "attach", "--id", job_id, "--log-dir", f"logs-{job_id}")
    return (c.cwd / f"logs-{job_id}" / "stdout.txt").read_text()


def test_placement_follows_the_configurations_resources(
    cli: ProjectCli,  # noqa: F811
    server: RunningServer,  # noqa: F811
) -> None:
    cpu_job = _execute(cli, "cpu-work", "s1.1")
    gpu_job = _execute(cli, "t4-work", "gt4.1")
    assert _wait(server, cpu_job)["status"] == "SUCCESS"
    assert _wait(server, gpu_job)["status"] == "SUCCESS"
    # CPU work goes to the node without GPUs; the T4 configuration to the node that has a T4, with
    # the GPU Ray assigned to it and nothing else.
    assert _stdout(cli, cpu_job) == f"host={HEAD} gpus=[]\n"
    assert _stdout(cli, gpu_job) == f"host={GPU_NODE} gpus=[0]\n"


def test_a_configuration_no_node_can_host_stays_queued_with_the_reason(
    cli: ProjectCli,  # noqa: F811
    server: RunningServer,  # noqa: F811
) -> None:
    # c1.4 needs 32 GB on one machine: the cluster has 40 GB, but 20 GB per node.
    job_id = _execute(cli, "too-big", "c1.4")
    deadline = time.monotonic() + 30
    job = _job(server, job_id)
    while "no node of the cluster" not in job["statusDetails"] and time.monotonic() < deadline:
        time.sleep(0.2)
        job = _job(server, job_id)
    assert "c1.4: needs 4 vCPU, 32 GB on one machine" in job["statusDetails"], job
    time.sleep(2)  # several scheduler ticks: it still waits, it does not fail
    assert _job(server, job_id)["status"] not in ("SUCCESS", "ERROR", "CANCELLED")
    cli.ok("job", "cancel", "--id", job_id)
    assert _wait(server, job_id)["status"] == "CANCELLED"
