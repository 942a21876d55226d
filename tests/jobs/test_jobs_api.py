"""Jobs end to end through the REST API with the real controllers and local runtime."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.jobs.conftest import Submit, V, read_log, wait_for

UPPER = """
name: upper
cmd: tr a-z A-Z < ${INPUT} > ${OUTPUT}; echo done; echo warned >&2
inputs:
  - data.txt: INPUT
outputs:
  - result.txt: OUTPUT
cloud-instance-types: [s1.1]
"""


def test_job_runs_and_returns_outputs(api: TestClient, submit: Submit) -> None:
    job = submit(UPPER, {"data.txt": (b"hello atoll\n", "INPUT")})
    assert job["status"] == "PREPARING"
    job = wait_for(api, job["id"])
    assert job["status"] == "SUCCESS", job
    assert job["returnCode"] == 0 and job["actualCloudInstanceType"] == "s1.1"
    assert job["dataExpiresAt"] and job["dataTtlDays"] == 14
    assert read_log(api, job["id"]) == "done\n"
    assert read_log(api, job["id"], "stderr") == "warned\n"
    assert "preparing job" in read_log(api, job["id"], "system")
    (out,) = job["outputFiles"]
    assert out["path"] == "result.txt" and out["var"] == "OUTPUT"
    r = api.get(f"{V}/jobs/{job['id']}/files/{out['sha256']}")
    assert r.status_code == 200 and r.content == b"HELLO ATOLL\n"


def test_inputs_are_uploaded_once(api: TestClient, project: dict[str, Any]) -> None:
    from tests.jobs.conftest import file_ref

    r = api.post(
        f"{V}/projects/{project['id']}/jobs",
        json={"config": UPPER, "inputs": [file_ref("data.txt", b"hello atoll\n", "INPUT")]},
    )
    assert r.status_code == 201 and r.json()["missingFiles"] == []  # sent by the test above


def test_failing_program_is_an_error_with_its_code(api: TestClient, submit: Submit) -> None:
    job = wait_for(api, submit("cmd: echo about to fail; exit 3\ncloud-instance-types: s1.1\n")["id"])
    assert job["status"] == "ERROR" and job["returnCode"] == 3
    assert "code 3" in job["statusDetails"]


def test_missing_output_is_reported(api: TestClient, submit: Submit) -> None:
    cfg = "cmd: 'true'\noutputs: [never.txt]\ncloud-instance-types: s1.1\n"
    job = wait_for(api, submit(cfg)["id"])
    assert job["status"] == "SUCCESS"
    assert job["fileErrors"] == [{"path": "never.txt", "error": "NOT_FOUND"}]


def test_secrets_reach_the_job_and_never_its_log(
    api: TestClient, submit: Submit, project: dict[str, Any]
) -> None:
    value = "tiger-lily-4242"
    api.post(f"{V}/projects/{project['id']}/secrets", json={"name": "API_TOKEN", "value": value})
    cfg = (
        'cmd: test "$API_TOKEN" = tiger-lily-4242 && echo "token is $API_TOKEN"\ncloud-instance-types: s1.1\n'
    )
    job = wait_for(api, submit(cfg)["id"])
    assert job["status"] == "SUCCESS", job
    log = read_log(api, job["id"])
    assert value not in log and "token is ***" in log


def test_unsupported_keys_are_refused(api: TestClient, project: dict[str, Any]) -> None:
    cfg = "cmd: echo\ns3-mounts: [abcdefghij0123456789]\n"
    r = api.post(f"{V}/projects/{project['id']}/jobs", json={"config": cfg})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "s3-mounts"
    assert r.json()["detail"].count("s3-mounts") == 1
    before = api.get(f"{V}/projects/{project['id']}/jobs").json()["items"]
    r = api.post(f"{V}/projects/{project['id']}/jobs", json={"config": "name: x\n"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cmd"
    assert api.get(f"{V}/projects/{project['id']}/jobs").json()["items"] == before


def test_cancel_a_running_job(api: TestClient, submit: Submit) -> None:
    job = submit("cmd: echo started; sleep 600\ncloud-instance-types: s1.1\n")
    wait_for(api, job["id"], ("EXECUTING",))
    r = api.post(f"{V}/jobs/{job['id']}/cancel", json={"graceful": False})
    assert r.status_code == 200 and r.json()["status"] == "CANCELLING"
    job = wait_for(api, job["id"])
    assert job["status"] == "CANCELLED"
    assert api.post(f"{V}/jobs/{job['id']}/cancel", json={}).status_code == 409


def test_graceful_cancel_sends_the_configured_signal(api: TestClient, submit: Submit) -> None:
    cfg = (
        "cmd: trap 'echo got SIGUSR1; exit 0' USR1; echo ready; while true; do sleep 0.1; done\n"
        "graceful-shutdown: {signal: SIGUSR1, timeout: 20s}\ncloud-instance-types: s1.1\n"
    )
    job = submit(cfg)
    wait_for(api, job["id"], ("EXECUTING",))
    api.post(f"{V}/jobs/{job['id']}/cancel", json={"graceful": True})
    job = wait_for(api, job["id"])
    assert job["status"] == "CANCELLED"
    assert "got SIGUSR1" in read_log(api, job["id"])


def test_fork_with_new_args(api: TestClient, submit: Submit) -> None:
    cfg = "cmd: echo range=${RANGE}\nargs: {RANGE: '0'}\ncloud-instance-types: s1.1\n"
    parent = wait_for(api, submit(cfg)["id"])
    assert read_log(api, parent["id"]) == "range=0\n"
    r = api.post(f"{V}/jobs/{parent['id']}/fork", json={"args": {"RANGE": "5"}})
    assert r.status_code == 201, r.text
    child = r.json()["job"]
    assert child["parentJobId"] == parent["id"]
    api.post(f"{V}/jobs/{child['id']}/execute")
    child = wait_for(api, child["id"])
    assert read_log(api, child["id"]) == "range=5\n"
    r = api.post(f"{V}/jobs/{parent['id']}/fork", json={"args": {"NOPE": "1"}})
    assert r.status_code == 422


def test_data_ttl(api: TestClient, submit: Submit) -> None:
    job = wait_for(api, submit("cmd: 'true'\ncloud-instance-types: s1.1\n")["id"])
    r = api.put(f"{V}/jobs/{job['id']}/data-ttl", json={"days": None})
    assert r.json()["dataTtlDays"] is None and r.json()["dataExpiresAt"] is None
    r = api.put(f"{V}/jobs/{job['id']}/data-ttl", json={"days": 0})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "days"
    r = api.put(f"{V}/jobs/{job['id']}/data-ttl", json={"days": 30})
    assert r.json()["dataTtlDays"] == 30


def test_no_configuration_can_run_it(api: TestClient, submit: Submit) -> None:
    job = wait_for(api, submit("cmd: echo\ncloud-instance-types: [c1.80]\n")["id"])
    assert job["status"] == "ERROR" and "c1.80" in job["statusDetails"]


def test_project_default_configuration_when_the_config_names_none(
    api: TestClient, project: dict[str, Any]
) -> None:
    import uuid

    prj = api.post(
        f"{V}/projects",
        json={
            "communityId": project["communityId"],
            "name": f"dflt-{uuid.uuid4().hex[:6]}",
            "settings": {"defaultConfiguration": "s1.2"},
        },
    ).json()
    r = api.post(f"{V}/projects/{prj['id']}/jobs", json={"config": "cmd: echo default\n"})
    api.post(f"{V}/jobs/{r.json()['job']['id']}/execute")
    job = wait_for(api, r.json()["job"]["id"])
    assert job["status"] == "SUCCESS" and job["actualCloudInstanceType"] == "s1.2"


def test_project_disk_and_progress(api: TestClient, submit: Submit) -> None:
    cfg = (
        "cmd: >\n"
        "  echo kept > ${DS_PROJECT_HOME}/note.txt &&\n"
        '  echo \'{"progress": 42, "message": "halfway"}\' >> $JOB_PROGRESS_FILENAME &&\n'
        "  cat ${DS_PROJECT_HOME}/note.txt\n"
        "flags: [attach-project-disk]\ncloud-instance-types: [s1.1]\n"
    )
    job = wait_for(api, submit(cfg)["id"])
    assert job["status"] == "SUCCESS", job
    assert read_log(api, job["id"]) == "kept\n"
    assert job["progress"] == {"progress": 42, "message": "halfway"}
    # The project disk outlives the job: the next job of the project sees the file.
    job = wait_for(
        api,
        submit(
            "cmd: cat ${DS_PROJECT_HOME}/note.txt\nflags: [attach-project-disk]\n"
            "cloud-instance-types: [s1.1]\n"
        )["id"],
    )
    assert read_log(api, job["id"]) == "kept\n"


def test_expired_data_is_cleared(api: TestClient, app: FastAPI, submit: Submit) -> None:
    from datetime import UTC, datetime, timedelta

    from atoll.store.tables import Job

    job = wait_for(api, submit(UPPER, {"data.txt": (b"expire me\n", "INPUT")})["id"])
    (out,) = job["outputFiles"]
    with app.state.db.transaction() as s:
        row = s.get(Job, job["id"])
        assert row is not None
        row.data_expires_at = datetime.now(UTC) - timedelta(seconds=1)
    deadline = time.monotonic() + 30
    while not api.get(f"{V}/jobs/{job['id']}").json()["dataCleared"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert api.get(f"{V}/jobs/{job['id']}/files/{out['sha256']}").status_code == 404
    r = api.post(f"{V}/jobs/{job['id']}/fork", json={})
    assert r.status_code == 409 and "cleared" in r.json()["detail"]


def test_executable_inputs_keep_their_bit(api: TestClient, project: dict[str, Any]) -> None:
    import hashlib
    import io
    import zipfile

    script = b"#!/bin/sh\necho from script\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("tool.sh")
        info.external_attr = 0o755 << 16
        z.writestr(info, b"#!/bin/sh\necho from dir\n")
    archive = buf.getvalue()
    cfg = "cmd: ./run.sh && ./tools/tool.sh\ninputs: [run.sh, tools]\ncloud-instance-types: [s1.1]\n"
    refs = [
        {
            "path": "run.sh",
            "sha256": hashlib.sha256(script).hexdigest(),
            "size": len(script),
            "executable": True,
        },
        {"path": "tools", "sha256": hashlib.sha256(archive).hexdigest(), "size": len(archive), "isDir": True},
    ]
    r = api.post(f"{V}/projects/{project['id']}/jobs", json={"config": cfg, "inputs": refs})
    assert r.status_code == 201, r.text
    for data in (script, archive):
        api.put(f"{V}/projects/{project['id']}/blobs/{hashlib.sha256(data).hexdigest()}", content=data)
    api.post(f"{V}/jobs/{r.json()['job']['id']}/execute")
    job = wait_for(api, r.json()["job"]["id"])
    assert job["status"] == "SUCCESS", (job, read_log(api, job["id"], "stderr"))
    assert read_log(api, job["id"]) == "from script\nfrom dir\n"


def test_unknown_instance_type_is_refused_at_create(api: TestClient, project: dict[str, Any]) -> None:
    r = api.post(
        f"{V}/projects/{project['id']}/jobs",
        json={"config": "cmd: echo\ncloud-instance-types: [s1.1, x9.9]\n"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cloud-instance-types[1]"


def test_log_chunks_never_split_a_character() -> None:
    from atoll.api.routes_jobs import utf8_complete

    text = "héllo — ✓ 𝄞".encode()
    for cut in range(len(text) + 1):
        keep = utf8_complete(text[:cut])
        text[:keep].decode()  # never raises: whole characters only
        assert cut - keep < 4


def test_a_project_with_running_work_is_not_deleted(api: TestClient, project: dict[str, Any]) -> None:
    import uuid

    prj = api.post(
        f"{V}/projects", json={"communityId": project["communityId"], "name": f"del-{uuid.uuid4().hex[:6]}"}
    ).json()
    r = api.post(
        f"{V}/projects/{prj['id']}/jobs", json={"config": "cmd: sleep 600\ncloud-instance-types: [s1.1]\n"}
    )
    job_id = r.json()["job"]["id"]
    api.post(f"{V}/jobs/{job_id}/execute")
    wait_for(api, job_id, ("EXECUTING",))
    r = api.delete(f"{V}/projects/{prj['id']}")
    assert r.status_code == 409 and "workload" in r.json()["detail"]
    api.post(f"{V}/jobs/{job_id}/cancel", json={})
    wait_for(api, job_id)
    assert api.delete(f"{V}/projects/{prj['id']}").status_code == 204


def test_outputs_must_be_regular_files(api: TestClient, submit: Submit) -> None:
    cfg = "cmd: mkfifo pipe.out && ln -s /etc/hostname link.out\noutputs: [pipe.out, link.out]\n"
    job = wait_for(api, submit(cfg + "cloud-instance-types: [s1.1]\n")["id"])
    assert job["status"] == "SUCCESS", job
    assert job["outputFiles"] == []
    assert {e["error"] for e in job["fileErrors"]} == {"NOT_A_REGULAR_FILE"}


def test_cancel_while_preparing_never_starts_the_program(
    api: TestClient, app: FastAPI, submit: Submit
) -> None:
    from atoll.store.tables import WorkloadRow

    # Execute prepares and starts a job at once (no tick to wait for): the cancel right behind it
    # finds it preparing, queued or just started; in every case the program never gets to print.
    job = submit("cmd: bash -c 'sleep 2; echo should-not-run'\ncloud-instance-types: [s1.1]\n")
    r = api.post(f"{V}/jobs/{job['id']}/cancel", json={})
    assert r.status_code == 200 and r.json()["status"] in ("CANCELLED", "CANCELLING")
    job = wait_for(api, job["id"])
    assert job["status"] == "CANCELLED"
    time.sleep(1)  # a few controller ticks: nothing may start behind the cancel
    assert api.get(f"{V}/jobs/{job['id']}").json()["status"] == "CANCELLED"
    assert "should-not-run" not in read_log(api, job["id"])
    with app.state.db.session() as s:
        wl = s.query(WorkloadRow).filter_by(owner_id=job["id"]).one_or_none()
        assert wl is None or wl.state in ("EXITED", "FAILED", "LOST")


def test_zip_bombs_are_refused(api: TestClient, project: dict[str, Any]) -> None:
    import hashlib
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.bin", b"\0" * 1024)
        # What a bomb's directory says: 11 GB once unpacked (the check reads it before writing).
        z.infolist()[0].file_size = 11 * 1024**3
    archive = buf.getvalue()
    sha = hashlib.sha256(archive).hexdigest()
    cfg = "cmd: ls data\ninputs: [data]\ncloud-instance-types: [s1.1]\n"
    ref = {"path": "data", "sha256": sha, "size": len(archive), "isDir": True}
    r = api.post(f"{V}/projects/{project['id']}/jobs", json={"config": cfg, "inputs": [ref]})
    api.put(f"{V}/projects/{project['id']}/blobs/{sha}", content=archive)
    api.post(f"{V}/jobs/{r.json()['job']['id']}/execute")
    job = wait_for(api, r.json()["job"]["id"])
    assert job["status"] == "ERROR" and "more than 10 GB" in job["statusDetails"]


def test_jobs_page_newest_first_and_oldest_first(api: TestClient, app: FastAPI) -> None:
    org = api.get(f"{V}/organizations").json()["items"][0]["id"]
    com = api.post(f"{V}/communities", json={"organizationId": org, "name": "pages-com"}).json()
    prj = api.post(f"{V}/projects", json={"communityId": com["id"], "name": "pages-prj"}).json()
    made = [
        api.post(f"{V}/projects/{prj['id']}/jobs", json={"config": f"name: n{i}\ncmd: echo {i}\n"}).json()[
            "job"
        ]["id"]
        for i in range(5)
    ]

    def walk(order: str | None) -> list[str]:
        seen, token = [], None
        while True:
            params = {
                "pageSize": 2,
                **({"order": order} if order else {}),
                **({"pageToken": token} if token else {}),
            }
            body = api.get(f"{V}/projects/{prj['id']}/jobs", params=params).json()
            seen += [j["id"] for j in body["items"]]
            token = body.get("nextPageToken")
            if not token:
                return seen

    assert walk(None) == walk("oldest") == made
    assert walk("newest") == made[::-1]
    r = api.get(f"{V}/projects/{prj['id']}/jobs", params={"order": "sideways"})
    assert r.status_code == 422 and "order" in r.text
