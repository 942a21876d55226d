"""What HAProxy counts itself for Atoll's metrics: per node and per alias, requests by latency
bucket and by HTTP status, in stick-table counters (``gpc``) that Atoll reads each second.

Counting inside HAProxy costs a few integer compares per response; a log line per request, read
and parsed by Atoll, cost about 50 µs of CPU per request on the 2-core machine, which the
gateway's throughput paid for. A status outside COUNTED_CODES is rare: its response is still
logged (``<alias>|<backend>|<status>|<ms>``), and Atoll counts its code from that line.

The latency is from the request's arrival (so time held for a first instance counts) to the
response's headers: for a streamed answer, its first byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The chart and Prometheus buckets (domain/deploy_metrics.LATENCY_BUCKETS; a test keeps the two
# equal): bucket i holds latencies up to LATENCY_BOUNDS_S[i], the last one anything longer.
LATENCY_BOUNDS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COUNTED_CODES = (
    200, 201, 202, 204, 206, 301, 302, 304, 307, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429,
    500, 502, 503, 504,
)  # fmt: skip
BUCKETS = len(LATENCY_BOUNDS_S) + 1
SLOTS = BUCKETS + len(COUNTED_CODES)  # gpc slots per table entry
NODE_TABLE = "atoll_node_counts"  # keyed by backend name
ALIAS_TABLE = "atoll_alias_counts"  # keyed by alias name


def latency_map() -> str:
    """latency.map: microseconds (an integer range) → the bucket's index."""
    lines, low = [], 0
    for i, bound in enumerate(LATENCY_BOUNDS_S):
        high = round(bound * 1_000_000)
        lines.append(f"{low}:{high} {i}")
        low = high + 1
    lines.append(f"{low}: {len(LATENCY_BOUNDS_S)}")
    return "\n".join(lines) + "\n"


@dataclass
class Counts:
    buckets: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    codes: dict[int, int] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(self.buckets)


def parse_table(text: str) -> dict[str, list[int]]:
    """`show table` lines (``0x…: key=node_x use=0 exp=0 shard=0 gpc0=6 gpc1=1 …``) → key →
    its slots, in order."""
    out: dict[str, list[int]] = {}
    for line in text.splitlines():
        key, slots = "", [0] * SLOTS
        seen = 0
        for word in line.split():
            name, _, value = word.partition("=")
            if name == "key":
                key = value
            elif name.startswith("gpc") and name[3:].isdigit() and value.isdigit():
                i = int(name[3:])
                if i < SLOTS:
                    slots[i], seen = int(value), seen + 1
        if key and seen == SLOTS:
            out[key] = slots
    return out


def delta(now: dict[str, list[int]], before: dict[str, list[int]]) -> dict[str, Counts]:
    """What was counted between two readings, per key. A key whose counters went down is a new
    table (HAProxy reloaded: a new worker starts from zero): its counts are all new."""
    out: dict[str, Counts] = {}
    for key, slots in now.items():
        old = before.get(key)
        if old is None or any(a < b for a, b in zip(slots, old, strict=True)):
            old = [0] * SLOTS
        diff = [a - b for a, b in zip(slots, old, strict=True)]
        if any(diff):
            codes = {c: n for c, n in zip(COUNTED_CODES, diff[BUCKETS:], strict=True) if n}
            out[key] = Counts(diff[:BUCKETS], codes)
    return out
