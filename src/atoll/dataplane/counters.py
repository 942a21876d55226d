"""What HAProxy counts itself for Atoll's metrics, and how Atoll reads it.

Each response an instance gives is counted in one stick table, under a key that says everything
the metrics need: ``<alias>|<backend>|<HTTP status>|<gRPC status>|<latency bucket>``. That is
three rules per response (build the key, track it, add one); counting a bucket and a status per
rule, as before, took ~75 rule evaluations per response, which the gateway's median latency paid.
Atoll reads the table each second and adds up what grew.

A request the node's rules refuse (413 body too big, 429 every instance busy) is counted the
same way before its answer. HAProxy's own 503, 504 and 502 pass no rule that can count (HAProxy
2.6, which a setting may name, cannot count after the response): only what went wrong is logged
(`option dontlog-normal`), one line with the same fields in a ring in HAProxy's memory, which
Atoll follows; a logged response the rules counted already (a 5xx from an instance) carries its
key after a space, and Atoll leaves it out.

The latency is from the request's arrival (so time held for a first instance counts) to the
response's headers: for a streamed answer, its first byte. The gRPC status is the response
headers' ``grpc-status`` (a call that fails before any message: "trailers-only"), else OK for a
gRPC response: HAProxy 2.8 cannot read trailers, so a stream that fails after its first message
counts as OK.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import grpc

# The chart and Prometheus buckets (domain/deploy_metrics.LATENCY_BUCKETS; a test keeps the two
# equal): bucket i holds latencies up to LATENCY_BOUNDS_S[i], the last one anything longer.
LATENCY_BOUNDS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BUCKETS = len(LATENCY_BOUNDS_S) + 1
TABLE = "atoll_counts"
# gRPC's status codes by number (0 OK … 16 UNAUTHENTICATED), the label values of node_grpc_codes.
GRPC_CODES = {code.value[0]: code.name for code in grpc.StatusCode}


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
    """One alias's or node's responses: by latency bucket, HTTP status and gRPC status."""

    buckets: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    codes: dict[int, int] = field(default_factory=dict)
    grpc_codes: dict[str, int] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(self.buckets)


@dataclass(frozen=True)
class Key:
    alias: str  # "" when the request named a node
    backend: str
    status: int
    grpc: str  # a GRPC_CODES name, "" for a response that is not gRPC
    bucket: int


def parse_key(text: str) -> Key | None:
    """A table key or a log line (``-`` or nothing for an absent field); None if malformed."""
    parts = text.strip().split("|")
    if len(parts) != 5 or not parts[1].startswith("node_"):
        return None
    alias, backend, status, grpc_status, bucket = ("" if p == "-" else p for p in parts)
    if not (status.isdigit() and bucket.isdigit() and int(bucket) < BUCKETS):
        return None
    name = GRPC_CODES.get(int(grpc_status), "") if grpc_status.isdigit() else ""
    return Key(alias, backend, int(status), name, int(bucket))


def parse_table(text: str) -> dict[str, int]:
    """`show table` lines (``0x…: key=pub|node_x|200||3 use=0 exp=… gpc0=6``) → key → count."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, count = "", -1
        for word in line.split():
            name, _, value = word.partition("=")
            if name == "key":
                key = value
            elif name == "gpc0" and value.isdigit():
                count = int(value)
        if key and count >= 0:
            out[key] = count
    return out


def delta(now: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """What was counted between two readings, per key. A key that is new, or whose count went
    down, is a new table entry (HAProxy reloaded, or the entry expired and came back): all of
    its count is new."""
    out: dict[str, int] = {}
    for key, n in now.items():
        old = before.get(key, 0)
        grown = n - old if n >= old else n
        if grown:
            out[key] = grown
    return out


def uncounted(lines: Iterable[str]) -> dict[str, int]:
    """Log lines (``<fields> <key or ->``) of responses the counters did not count → their
    fields → how many."""
    out: dict[str, int] = {}
    for line in lines:
        fields, _, key = line.strip().partition(" ")
        if key in ("", "-"):
            out[fields] = out.get(fields, 0) + 1
    return out


def tally(counted: dict[str, int]) -> dict[tuple[str, str], Counts]:
    """Counted keys (or log lines, each counting one) → (alias, backend) → their Counts."""
    out: dict[tuple[str, str], Counts] = {}
    for text, n in counted.items():
        key = parse_key(text)
        if key is None:
            continue
        c = out.setdefault((key.alias, key.backend), Counts())
        c.buckets[key.bucket] += n
        c.codes[key.status] = c.codes.get(key.status, 0) + n
        if key.grpc:
            c.grpc_codes[key.grpc] = c.grpc_codes.get(key.grpc, 0) + n
    return out
