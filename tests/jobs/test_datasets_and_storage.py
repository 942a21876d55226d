"""Output datasets (a job's directory made a read-only dataset when it succeeds, then mounted by
later jobs) and extended working storage (reserved on the machine, enforced while the job runs)."""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from atoll.app import create_app
from tests.api.conftest import make_settings
from tests.jobs.conftest import Submit, V, read_log, wait_for
from tests.support.server import ADMIN_PASSWORD


@pytest.fixture(scope="module")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """Jobs may reserve 150 GB of working storage in all (thin: nothing is set aside on disk)."""
    settings = make_settings(
        tmp_path_factory.mktemp("data"), database_url, controller_tick_s=0.2, pool_storage_gb=150
    )
    application = create_app(settings)
    yield application
    application.state.db.dispose()


def _create(api: TestClient, project: dict[str, Any], config: str) -> Any:
    return api.post(f"{V}/projects/{project['id']}/jobs", json={"config": config, "inputs": []})


def test_output_dataset_is_made_read_only_and_mounted_by_later_jobs(
    api: TestClient, app: FastAPI, project: dict[str, Any], submit: Submit
) -> None:
    config = (
        "cmd: mkdir -p ${OUT}/sub && printf hello > ${OUT}/sub/a.txt && ln -s /etc/passwd ${OUT}/link\n"
        "output-datasets:\n"
        "  - {name: words, var: OUT, size: 1Gb, description: greetings, labels: {k: v}}\n"
        "cloud-instance-types: [s1.1]\n"
    )
    job = wait_for(api, submit(config)["id"])
    assert job["status"] == "SUCCESS", job
    [made] = job["outputDatasets"]
    assert (made["name"], made["sizeBytes"], made["error"]) == ("words", 5, None), made
    ds_id = made["id"]
    listed = api.get(f"{V}/projects/{project['id']}/datasets").json()["items"]
    [ds] = [d for d in listed if d["id"] == ds_id]
    assert (ds["name"], ds["description"], ds["labels"], ds["sizeGb"], ds["jobId"]) == (
        "words",
        "greetings",
        {"k": "v"},
        1,
        job["id"],
    )
    assert api.get(f"{V}/projects/{project['id']}/datasets/words").json()["id"] == ds_id
    # The job's page in the web UI (signed in with a session cookie) lists what was made.
    assert api.post(f"{V}/auth/sessions", json={"username": "admin", "password": ADMIN_PASSWORD}).is_success
    page = api.get(f"/jobs/{job['id']}")
    assert page.status_code == 200 and "Output datasets" in page.text and ds_id in page.text
    # Sealed: the link the job left is gone (never followed), files and dirs are read-only.
    root = Path(app.state.settings.data_dir) / "datasets" / ds_id
    assert sorted(p.name for p in root.iterdir()) == ["sub"]
    assert stat.S_IMODE((root / "sub" / "a.txt").stat().st_mode) == 0o440
    assert stat.S_IMODE((root / "sub").stat().st_mode) == 0o550
    assert "left out (not plain files): link" in read_log(api, job["id"], "system")

    # A later job mounts it by id, under its variable.
    reader = (
        "cmd: cat ${WORDS}/sub/a.txt\ndatasets:\n  - "
        + ds_id
        + ": {var: WORDS}\ncloud-instance-types: [s1.1]\n"
    )
    job2 = wait_for(api, submit(reader)["id"])
    assert job2["status"] == "SUCCESS", job2
    assert read_log(api, job2["id"]) == "hello"

    # The name is taken now; an unknown dataset is refused; both before anything is created.
    before = len(api.get(f"{V}/projects/{project['id']}/jobs").json()["items"])
    r = _create(api, project, config)
    assert r.status_code == 422 and "already has a dataset named 'words'" in r.text, r.text
    assert r.json()["errors"][0]["field"] == "output-datasets[0].name"
    r = _create(api, project, "cmd: ls ${d}\ndatasets:\n  - ds000000000000000000: {var: d}\n")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "datasets[0]", r.text
    assert len(api.get(f"{V}/projects/{project['id']}/jobs").json()["items"]) == before

    assert api.delete(f"{V}/projects/{project['id']}/datasets/{ds_id}").status_code == 204
    assert api.get(f"{V}/projects/{project['id']}/datasets/{ds_id}").status_code == 404
    assert not root.exists()


def test_a_dataset_over_its_declared_size_is_not_made(
    api: TestClient, project: dict[str, Any], submit: Submit
) -> None:
    config = (
        "cmd: truncate -s 2G ${BIG}/data.bin\n"
        "output-datasets:\n  - {name: too-big, var: BIG, size: 1Gb}\n"
        "cloud-instance-types: [s1.1]\n"
    )
    job = wait_for(api, submit(config)["id"])
    assert job["status"] == "SUCCESS", job
    [made] = job["outputDatasets"]
    assert made["id"] is None and "more than its declared size of 1 GB" in made["error"], made
    names = [d["name"] for d in api.get(f"{V}/projects/{project['id']}/datasets").json()["items"]]
    assert "too-big" not in names
    assert "dataset too-big was not created" in read_log(api, job["id"], "system")


def test_working_storage_is_reserved_and_a_job_past_it_is_stopped(
    api: TestClient, project: dict[str, Any], submit: Submit
) -> None:
    storage = "working-storage: {type: SSD, size: 100Gb}\ncloud-instance-types: [s1.1]\n"
    # A writes past its 100 GB after a few seconds (a sparse file: its size counts, not its blocks).
    a = submit("cmd: sleep 4; truncate -s 101G big.bin; sleep 120\n" + storage)
    wait_for(api, a["id"], ("EXECUTING",))
    # B needs 100 GB too; only 50 of the 150 are left while A runs: B waits and says why.
    b = submit("cmd: echo B ran\n" + storage)
    deadline = time.monotonic() + 30
    details = ""
    while time.monotonic() < deadline:
        details = api.get(f"{V}/jobs/{b['id']}").json()["statusDetails"]
        if "working storage" in details:
            break
        time.sleep(0.1)
    assert "s1.1: waiting for working storage (100 GB" in details
    a_done = wait_for(api, a["id"])
    assert a_done["status"] == "ERROR", a_done
    assert a_done["statusDetails"].startswith("working storage of 100 GB exceeded"), a_done
    b_done = wait_for(api, b["id"])
    assert b_done["status"] == "SUCCESS" and read_log(api, b["id"]) == "B ran\n", b_done
    # More than the machine has for working storage: refused with the reason, not queued forever.
    c = wait_for(
        api,
        submit("cmd: 'true'\nworking-storage: {type: SSD, size: 200Gb}\ncloud-instance-types: [s1.1]\n")[
            "id"
        ],
    )
    assert (
        c["status"] == "ERROR"
        and "200 GB of working storage, more than this installation has" in c["statusDetails"]
    ), c
