"""The `config.yaml` of spec §5.2, as DataSphere's docs write it (without spark, datasets and
s3-mounts, which need resources Atoll does not have), run with the real CLI on a real server.

It asks for a Docker image, GPU configurations [g2.1, g1.1], working storage, the project disk,
an auto-detected Python environment, an input from an absolute path and an output dataset. The
installation here: a private dockerd with the test image, one V100 declared with
ATOLL_GPUS_OVERRIDE (this machine has none; ATOLL_DOCKER_GPUS=env hands it to the container as
NVIDIA_VISIBLE_DEVICES, so no NVIDIA runtime is needed), and a pool big enough for g1.1. No A100
is there, so the fallback list picks g1.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.conftest import ENV_CACHE
from tests.e2e.cli import PYCACHE, Cli
from tests.e2e.test_cli_jobs import ProjectCli
from tests.support.docker import Dockerd, dockerd_or_skip
from tests.support.server import RunningServer, start_server

# Spec §5.2's example; <Docker_image_ID> is filled in with the image on this daemon.
EXAMPLE = """\
name: simple-python-script
desc: Program description
cmd: >
  python3 src/main.py --params ${PARAMS}
  --normalizer ${DS_PROJECT_HOME}/misc/norm.bin
  --model ${MODEL} --epochs 5
args:
  EPOCHS: "5"
inputs:
  - misc/logging.yaml
  - /usr/share/params.json:
      var: PARAMS
outputs:
  - data/model.bin: MODEL
  - other/metrics.png
env:
  vars:
    - DEVICE_COUNT: "8"
    - PYTHONBUFFERED
  docker: IMAGE
  python: auto
flags:
  - attach-project-disk
cloud-instance-types: [g2.1, g1.1]
working-storage: {type: SSD, size: 150Gb}
graceful-shutdown: {signal: SIGTERM, timeout: 15s}
output-datasets:
  - {name: job-test-dataset-1, var: OUT_DS, description: "Description", size: 100Gb, labels: {a: b}}
"""

MAIN = """\
import argparse
import json
import os
import sys

from utils import describe


def main():
    p = argparse.ArgumentParser()
    for name in ("--params", "--normalizer", "--model"):
        p.add_argument(name)
    p.add_argument("--epochs", type=int)
    a = p.parse_args()
    with open(a.params) as f:
        params = json.load(f)
    with open(a.normalizer, "rb") as f:
        norm = f.read()
    print(describe(params, norm, a.epochs))
    env = os.environ
    print("devices", env["DEVICE_COUNT"], env["CUDA_VISIBLE_DEVICES"], env["NVIDIA_VISIBLE_DEVICES"])
    print("configuration", env["ATOLL_CONFIGURATION"], "buffered", env["PYTHONBUFFERED"])
    print("in a container", os.path.exists("/.dockerenv"), "python", "%d.%d" % sys.version_info[:2])
    print("logging.yaml here", os.path.isfile("misc/logging.yaml"))
    with open(a.model, "wb") as f:
        f.write(b"weights:" + norm)
    os.makedirs("other", exist_ok=True)
    with open("other/metrics.png", "wb") as f:
        f.write(b"PNG metrics")


if __name__ == "__main__":
    main()
"""

UTILS = """\
def describe(params, norm, epochs):
    return "lr=%s norm=%s epochs=%d" % (params["lr"], norm.decode(), epochs)
"""

PARAMS = Path("/usr/share/params.json")


@pytest.fixture(scope="module")
def dockerd() -> Iterator[Dockerd]:
    with dockerd_or_skip() as d:
        yield d


@pytest.fixture(scope="module")
def server(dockerd: Dockerd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Atoll with a Docker daemon, a declared V100 and room for g1.1 and 150 GB of storage."""
    env = {
        "PYTHONDONTWRITEBYTECODE": "",
        "PYTHONPYCACHEPREFIX": str(PYCACHE),
        "ATOLL_ENVS_DIR": str(ENV_CACHE),
        "ATOLL_CONTROLLER_TICK_S": "0.2",
        "ATOLL_DOCKER_HOST": dockerd.url,
        "ATOLL_DOCKER_GPUS": "env",
        "ATOLL_GPUS_OVERRIDE": "Tesla V100-SXM2-32GB",
        "ATOLL_POOL_CPUS": "16",
        "ATOLL_POOL_MEMORY_GB": "64",
        "ATOLL_POOL_STORAGE_GB": "200",
    }
    srv = start_server(tmp_path_factory.mktemp("spec-example") / "data", extra_env=env)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def params_file() -> Iterator[Path]:
    """The example's absolute input path; created for the test when this machine lacks it."""
    if PARAMS.exists():
        yield PARAMS
        return
    PARAMS.write_text(json.dumps({"lr": 0.01}))
    try:
        yield PARAMS
    finally:
        PARAMS.unlink(missing_ok=True)


def test_spec_example_config_runs_unchanged(
    server: RunningServer, dockerd: Dockerd, admin: Cli, tmp_path: Path, params_file: Path
) -> None:
    admin.ok("community", "create", "spec")
    project = admin.json("project", "create", "example", "-c", "spec")
    # The project disk already holds the normalizer the example reads.
    home = server.data_dir / "projects" / project["id"] / "home"
    (home / "misc").mkdir(parents=True)
    (home / "misc" / "norm.bin").write_bytes(b"N1")
    (tmp_path / "misc").mkdir()
    (tmp_path / "misc" / "logging.yaml").write_text("version: 1\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text(MAIN)
    (tmp_path / "src" / "utils.py").write_text(UTILS)
    (tmp_path / "config.yaml").write_text(EXAMPLE.replace("IMAGE", dockerd.image))
    lr = json.loads(params_file.read_text())["lr"]

    cli = ProjectCli(admin, tmp_path)
    r = cli.ok(
        "project", "job", "execute", "-p", "spec/example", "-c", "config.yaml", env={"PYTHONBUFFERED": "1"}
    )
    out = r.out.splitlines()
    assert f"lr={lr} norm=N1 epochs=5" in out, str(r)
    # No A100 here: the fallback list ran it on g1.1 and its V100 (index 0) in the container.
    assert "devices 8 0 0" in out, str(r)
    assert "configuration g1.1 buffered 1" in out, str(r)
    assert "in a container True python 3.11" in out, str(r)
    assert "logging.yaml here True" in out, str(r)
    # Outputs land in the working dir, at their config paths.
    assert (tmp_path / "data" / "model.bin").read_bytes() == b"weights:N1"
    assert (tmp_path / "other" / "metrics.png").read_bytes() == b"PNG metrics"
    # The output dataset is reported as DataSphere's CLI does, and is in the project.
    text = r.out + r.err
    assert "Created datasets:" in text, str(r)
    [dataset] = admin.json("dataset", "list", "-p", "spec/example")
    assert f"* {dataset['id']} (job-test-dataset-1) size: 0.00 Gb" in text, str(r)
    assert dataset["name"] == "job-test-dataset-1" and dataset["labels"] == {"a": "b"}
    assert dataset["sizeGb"] == 100 and dataset["description"] == "Description"
    [job] = admin.json("job", "list", "-p", "spec/example")
    job = admin.json("job", "get", "--id", job["id"])
    assert job["status"] == "SUCCESS" and job["actualCloudInstanceType"] == "g1.1", job
    assert job["outputDatasets"][0]["id"] == dataset["id"]
    with server.api() as api:
        system = api.get(f"/jobs/{job['id']}/logs", params={"stream": "system"}).json()["data"]
    assert "working storage: 150 GB reserved" in system and "running in a container" in system, system

    # A later container job mounts the dataset by id: read-only, even for root in the container.
    mount = (
        f"cmd: ls -ld ${{D}} && touch ${{D}}/x\nenv:\n  docker: {dockerd.image}\n"
        f"datasets:\n  - {dataset['id']}: {{var: D}}\ncloud-instance-types: [s1.1]\n"
    )
    (tmp_path / "mount.yaml").write_text(mount)
    r = cli.run("job", "execute", "-p", "spec/example", "-c", "mount.yaml")
    assert r.code != 0 and "Read-only file system" in r.err, str(r)
