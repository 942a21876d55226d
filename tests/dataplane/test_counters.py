"""HAProxy counts each instance's responses under one stick-table key (alias, node, status, gRPC
status, latency bucket) that Atoll reads each second, and logs its own answers: against a real
HAProxy and upstream, and the parsing, differencing and adding up Atoll does on what it reads."""

from __future__ import annotations

import httpx

from atoll.dataplane import counters
from atoll.dataplane.plan import NodePlan, Server
from atoll.dataplane.proxy import HAProxyPlane
from atoll.domain.deploy_metrics import LATENCY_BUCKETS
from tests.dataplane.conftest import TOKEN, base_plan, bearer, client
from tests.runtime.conftest import wait_for
from tests.support.postgres import free_port


def test_the_buckets_are_the_charts() -> None:
    assert counters.LATENCY_BOUNDS_S == LATENCY_BUCKETS
    ranges = counters.latency_map().splitlines()
    assert ranges[0] == "0:1000 0" and ranges[1] == "1001:2500 1" and ranges[-1] == "10000001: 13"


def test_a_reading_after_a_reload_counts_from_zero() -> None:
    before = {"pub|node_a|200||0": 5}
    assert counters.delta({"pub|node_a|200||0": 7}, before) == {"pub|node_a|200||0": 2}
    # A new worker (or an entry that expired and came back): lower than before, all of it is new.
    assert counters.delta({"pub|node_a|200||0": 1}, before) == {"pub|node_a|200||0": 1}
    assert counters.delta(before, before) == {}


def test_keys_and_log_lines_tally_by_alias_and_node() -> None:
    tallies = counters.tally(
        {
            "pub|node_a|200||0": 4,
            "pub|node_a|404||3": 1,
            "|node_a|200|14|1": 2,  # x-node-id, a gRPC UNAVAILABLE before any message
            "-|node_a_grpc|429||0": 1,  # a log line (absent fields are "-")
            "pub|node_a|200||99": 3,  # malformed: no such bucket
            "pub|gateway|404||0": 3,  # not a node's
            "pub|node_a|200|0": 1,  # a field short
        }
    )
    assert set(tallies) == {("pub", "node_a"), ("", "node_a"), ("", "node_a_grpc")}
    pub = tallies["pub", "node_a"]
    assert pub.requests == 5 and pub.codes == {200: 4, 404: 1} and pub.buckets[3] == 1 and not pub.grpc_codes
    assert tallies["", "node_a"].grpc_codes == {"UNAVAILABLE": 2}
    assert tallies["", "node_a_grpc"].codes == {429: 1}


def test_log_lines_the_counters_counted_are_left_out() -> None:
    lines = [
        "pub|node_a|503||2 -",  # HAProxy's own 503: counted from its line
        "pub|node_a|503||2 pub|node_a|503||2",  # an instance's 503, counted already
        "|node_a|504||13 ",
    ]
    assert counters.uncounted(lines) == {"pub|node_a|503||2": 1, "|node_a|504||13": 1}


def test_haproxy_counts_by_node_alias_bucket_and_code(plane: HAProxyPlane, upstream: int) -> None:
    plan = base_plan(upstream, max_body_bytes=1 << 20)
    # n3's instance is gone (nothing listens on its port): HAProxy answers 503 itself.
    plan.nodes["n3"] = NodePlan("n3", "prj1", (Server("i3", "127.0.0.1", free_port()),))
    plane.apply(plan)
    c = client(plane)
    wait_for(lambda: c.get("/alias/pub/").status_code == 200, 10, "the first route")
    start = counters.parse_table(plane.admin.ask(f"show table {counters.TABLE}"))
    for _ in range(5):
        assert c.get("/alias/pub/x").status_code == 200
    assert c.get("/alias/pub/slow?s=0.3").status_code == 200
    assert c.get("/alias/pub/status?code=404").status_code == 404
    assert c.get("/alias/pub/status?code=418").status_code == 418
    assert c.get("/node/n1/status?code=503", headers=bearer(TOKEN)).status_code == 503  # the instance's
    assert c.post("/alias/pub/x", content=b"x" * (2 << 20)).status_code == 413  # refused by n1's rules
    assert c.get("/node/n3/", headers=bearer(TOKEN)).status_code == 503  # HAProxy's own
    now = counters.parse_table(plane.admin.ask(f"show table {counters.TABLE}"))
    tallies = counters.tally(counters.delta(now, start))
    pub = tallies["pub", "node_n1"]
    assert pub.requests == 9 and pub.codes == {200: 6, 404: 1, 418: 1, 413: 1}, pub
    assert pub.buckets[8] == 1  # the 0.3 s one: over 0.25 s, up to 0.5 s
    assert tallies["", "node_n1"].codes == {503: 1}
    assert ("", "node_n3") not in tallies
    # Only what went wrong is logged: the instance's 503 (counted already, so left out) and
    # HAProxy's own 503, counted from its line.
    ring = plane.admin.ask("show events atoll_requests").splitlines()
    logged = counters.tally(counters.uncounted(line for line in ring if "|node_" in line))
    assert set(logged) == {("", "node_n3")}, ring
    assert logged["", "node_n3"].codes == {503: 1} and logged["", "node_n3"].requests == 1
    assert httpx.get(f"http://127.0.0.1:{plane.port}/healthz").status_code == 200
