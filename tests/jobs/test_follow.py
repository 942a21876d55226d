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


def events(api: TestClient, url: str) -> list[Any]:
    """Every `news` event of a server-sent event stream, until the server ends it."""
    import json

    got, kind = [], ""
    with api.stream("GET", url) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                assert kind == "news"
                got.append(json.loads(line.removeprefix("data: ")))
    return got


def test_an_event_stream_carries_the_whole_run(api: TestClient, submit: Submit) -> None:
    job = submit("cmd: bash -c 'echo a; sleep 1; echo b >&2; sleep 1; echo c'\n")
    news = events(api, f"{V}/jobs/{job['id']}/events")
    out = {s: "".join(c["data"] for n in news for c in n["chunks"] if c["stream"] == s) for s in STREAMS}
    assert out["stdout"] == "a\nc\n" and out["stderr"] == "b\n"
    assert news[-1]["eof"] is True and news[-1]["job"]["status"] == "SUCCESS"
    assert all(not n["eof"] for n in news[:-1])
    # One event per line or state change: the stream waited between them.
    assert len(news) <= 15, len(news)
    # From the end's offsets, a stream has nothing but the end to say.
    ends = {c["stream"]: c["offset"] for n in news for c in n["chunks"]}
    query = "&".join(f"{s}={o}" for s, o in ends.items())
    again = events(api, f"{V}/jobs/{job['id']}/events?{query}")
    assert len(again) == 1 and again[0]["eof"] is True and again[0]["chunks"] == []


def test_an_event_stream_ends_after_its_duration(api: TestClient, submit: Submit) -> None:
    job = submit("cmd: sleep 30\n")
    try:
        news = events(api, f"{V}/jobs/{job['id']}/events?duration=0")
        assert len(news) == 1 and news[0]["eof"] is False  # the state now, then the end of the stream
        assert api.get(f"{V}/jobs/nope/events").status_code == 404
        assert api.get(f"{V}/jobs/{job['id']}/events", params={"duration": 3601}).status_code == 422
    finally:
        api.post(f"{V}/jobs/{job['id']}/cancel", json={})
        wait_for(api, job["id"])
