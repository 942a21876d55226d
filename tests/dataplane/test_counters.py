"""HAProxy counts each node's and alias's responses by latency bucket and status (stick-table
counters Atoll reads each second), and logs only a status it does not count: against a real
HAProxy and upstream, and the parsing and differencing Atoll does on what it reads."""

from __future__ import annotations

import httpx

from atoll.dataplane import counters
from atoll.dataplane.proxy import HAProxyPlane
from atoll.domain.deploy_metrics import LATENCY_BUCKETS
from tests.dataplane.conftest import base_plan, client
from tests.runtime.conftest import wait_for


def test_the_buckets_are_the_charts() -> None:
    assert counters.LATENCY_BOUNDS_S == LATENCY_BUCKETS
    ranges = counters.latency_map().splitlines()
    assert ranges[0] == "0:1000 0" and ranges[1] == "1001:2500 1" and ranges[-1] == "10000001: 13"


def test_a_reading_after_a_reload_counts_from_zero() -> None:
    before = {"node_a": [5] + [0] * (counters.SLOTS - 1)}
    grown = {"node_a": [7] + [0] * (counters.SLOTS - 1)}
    assert counters.delta(grown, before)["node_a"].buckets[0] == 2
    fresh = {"node_a": [1] + [0] * (counters.SLOTS - 1)}  # a new worker: lower than before
    assert counters.delta(fresh, before)["node_a"].requests == 1
    assert counters.delta(before, before) == {}


def test_haproxy_counts_by_node_alias_bucket_and_code(plane: HAProxyPlane, upstream: int) -> None:
    plane.apply(base_plan(upstream))
    c = client(plane)
    wait_for(lambda: c.get("/alias/pub/").status_code == 200, 10, "the first route")
    start = {t: counters.parse_table(plane.admin.ask(f"show table {t}")) for t in (counters.NODE_TABLE,)}
    for _ in range(5):
        assert c.get("/alias/pub/x").status_code == 200
    assert c.get("/alias/pub/slow?s=0.3").status_code == 200
    assert c.get("/alias/pub/status?code=404").status_code == 404
    assert c.get("/alias/pub/status?code=418").status_code == 418  # not a counted code
    nodes = counters.delta(
        counters.parse_table(plane.admin.ask(f"show table {counters.NODE_TABLE}")),
        start[counters.NODE_TABLE],
    )
    n1 = nodes["node_n1"]
    assert n1.requests == 8 and n1.codes == {200: 6, 404: 1}
    assert n1.buckets[8] == 1  # the 0.3 s one: over 0.25 s, up to 0.5 s
    aliases = counters.parse_table(plane.admin.ask(f"show table {counters.ALIAS_TABLE}"))
    assert sum(aliases["pub"][: counters.BUCKETS]) >= 8
    # The uncounted status is logged, and only it.
    ring = plane.admin.ask("show events atoll_requests")
    lines = [line for line in ring.splitlines() if "node_n1" in line]
    assert len(lines) == 1 and lines[0].startswith("pub|node_n1|418|"), ring
    assert httpx.get(f"http://127.0.0.1:{plane.port}/healthz").status_code == 200
