"""`atoll doctor` on this machine: database, data dir, limits, CPUs/GPUs, the server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.cli import Cli
from tests.support.postgres import free_port
from tests.support.server import RunningServer

pytestmark = pytest.mark.e2e


def server_env(server: RunningServer) -> dict[str, str]:
    """The ATOLL_* settings the server runs with, so doctor looks at the same installation."""
    env = {k: v for k, v in server.env.items() if k.startswith("ATOLL_")}
    env["ATOLL_URL"] = server.url
    return env


def test_doctor_reports_a_healthy_installation(server: RunningServer, tmp_path: Path) -> None:
    report = Cli(tmp_path, env=server_env(server)).json("doctor")
    db = report["database"]
    assert db["ok"] is True and db["status"] == "ok" and db["backend"] == "sqlite"
    assert db["revision"] == db["head"] and db["head"]
    assert report["dataDir"]["path"] == str(server.data_dir) and report["dataDir"]["writable"]
    assert report["limits"]["mechanism"] in ("cgroup-v2", "cgroup-v1", "rlimit")
    compute = report["compute"]
    assert compute["cpus"] > 0 and compute["memoryGb"] > 0
    assert isinstance(compute["gpus"], list)
    if shutil.which("nvidia-smi") is None:
        assert compute["gpus"] == []
        assert "GPU configurations" in compute["gpuNote"]
    assert report["server"]["ok"] is True and report["server"]["url"] == server.url
    # The isolation in force, kind by kind: this server's data dir is in pytest's root-only tmp,
    # so its workloads cannot run as their projects' users (and nothing that needs them follows).
    iso = {row["what"]: row for row in report["isolation"]}
    assert set(iso) == {"files and users", "processes and /tmp", "network"}
    if server.data_dir.parent.stat().st_mode & 0o001 == 0:
        assert iso["files and users"]["inForce"] is False
        assert "not traversable" in iso["files and users"]["detail"]
        assert iso["network"]["inForce"] is False
    table = Cli(tmp_path, env=server_env(server)).ok("doctor").out
    assert "isolation: network" in table


def test_doctor_on_a_fresh_machine(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    # ATOLL_DATA_PLANE, a leftover of the former Python gateway, is ignored: HAProxy it is.
    env = {"ATOLL_DATA_DIR": str(tmp_path / "data"), "ATOLL_URL": url, "ATOLL_DATA_PLANE": "python"}
    cli = Cli(tmp_path / "config", env=env)
    report = cli.json("doctor")
    assert report["dataPlane"]["kind"] == "haproxy" and "not running" in report["dataPlane"]["message"]
    assert report["database"]["ok"] is True and report["database"]["status"] == "not created yet"
    assert not (tmp_path / "data").exists()  # doctor creates nothing
    assert report["server"]["ok"] is False and "cannot reach" in report["server"]["message"]
    assert "no Docker daemon" in report["images"]["message"]
    table = cli.ok("doctor").out
    assert "database" in table and "not created yet" in table and "gpus" in table
    docker = {"ATOLL_DOCKER_HOST": "unix:///nowhere.sock", "ATOLL_IMAGE_REGISTRY_PORT": "8899"}
    images = cli.json("doctor", env=docker)["images"]["message"]
    assert "built on unix:///nowhere.sock" in images and "127.0.0.1:8899" in images
    assert "3 per community" in images


def test_doctor_fails_when_the_database_is_unusable(tmp_path: Path) -> None:
    env = {
        "ATOLL_DATA_DIR": str(tmp_path / "data"),
        "ATOLL_DATABASE_URL": f"postgresql://atoll:secret@127.0.0.1:{free_port()}/atoll",
        "ATOLL_URL": f"http://127.0.0.1:{free_port()}",
    }
    r = Cli(tmp_path / "config", env=env).run("doctor", "--format", "json")
    assert r.code == 1, r
    report = json.loads(r.out)
    assert report["ok"] is False and report["database"]["ok"] is False
    assert "cannot connect" in report["database"]["message"]
    assert "secret" not in r.out  # the password is masked
