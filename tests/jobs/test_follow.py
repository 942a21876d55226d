"""Following a job by long polling (GET /jobs/{id}/follow): output arrives as it is written, the
call waits while nothing changes, the end comes with eof, and bad input changes nothing."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.jobs.conftest import Submit, V, wait_for

STREAMS = ("stdout", "stderr", "system")


def follow(api: TestClient, job_id: str, offsets: dict[str, int], state: str = "", wait: float = 0) -> Any:
    r = api.get(f"{V}/jobs/{job_id}/follow", params={**offsets, "state": state, "wait": wait})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_follower_gets_output_as_it_comes_and_the_end(api: TestClient, submit: Submit) -> None:
    job = submit("cmd: bash -c 'echo first; sleep 2; echo second'\n")
    offsets = dict.fromkeys(STREAMS, 0)
    seen = dict.fromkeys(STREAMS, "")
    state, calls, statuses = "", 0, []
    while True:
        news = follow(api, job["id"], offsets, state, wait=25)
        calls += 1
        for chunk in news["chunks"]:
            assert chunk["offset"] > offsets[chunk["stream"]]
            seen[chunk["stream"]] += chunk["data"]
            offsets[chunk["stream"]] = chunk["offset"]
        if news["state"] != state:
            statuses.append(news["job"]["status"])
        state = news["state"]
        if (
            "first" in seen["stdout"]
            and "second" not in seen["stdout"]
            and news["job"]["status"] == "EXECUTING"
        ):
            # Nothing new and the same state: an answer that does not wait is empty, not the end.
            quiet = follow(api, job["id"], offsets, state, wait=0)
            assert quiet["chunks"] == [] and quiet["eof"] is False and quiet["state"] == state
        if news["eof"]:
            break
    assert seen["stdout"] == "first\nsecond\n"
    assert news["job"]["status"] == "SUCCESS"
    assert statuses[-1] == "SUCCESS" and "EXECUTING" in statuses
    assert "exited with code 0" in seen["system"]
    # Each call waited for news: one per line or state change, not one per poll interval
    # (a follower that did not wait would have made hundreds of calls in the 2 s sleep).
    assert calls <= 15, calls
    # After the end, read again from 0: the same output, and eof only once it is all read.
    again = follow(api, job["id"], dict.fromkeys(STREAMS, 0))
    assert again["eof"] is False
    assert {c["stream"]: c["data"] for c in again["chunks"]}["stdout"] == "first\nsecond\n"
    end = follow(api, job["id"], {c["stream"]: c["offset"] for c in again["chunks"]} | {"stderr": 0})
    assert end["eof"] is True and end["chunks"] == []


def test_bad_input_names_the_field(api: TestClient, submit: Submit) -> None:
    job = submit("cmd: echo done\n")
    wait_for(api, job["id"])
    for params, field in (
        ({"wait": 26}, "wait"),
        ({"wait": -1}, "wait"),
        ({"stdout": -1}, "stdout"),
        ({"state": "x" * 65}, "state"),
        ({"limit": 0}, "limit"),
    ):
        r = api.get(f"{V}/jobs/{job['id']}/follow", params=params)
        assert r.status_code == 422, (params, r.text)
        assert field in r.text, (params, r.text)
    r = api.get(f"{V}/jobs/nope/follow")
    assert r.status_code == 404, r.text
