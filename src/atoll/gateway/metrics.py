"""Per-node and per-alias request metrics of the gateway (spec §6.4 names).

The data plane counts requests itself (dataplane/counters.py); this adds its readings up.
``/metrics`` renders the running totals in Prometheus text format (through prometheus-client,
so scrapers get the standard exposition):
``node_requests``, ``node_http_codes`` and ``node_grpc_codes`` (label ``code``: the HTTP status,
the gRPC status's name), ``node_request_durations`` (a histogram, seconds) with labels ``node_id``
and ``node_name``, and the ``alias_*`` series with ``alias_name``.
The current 10-second bucket is also written to the store every few seconds (``DeployMetric``)
for the node and alias pages' charts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import delete, select

from atoll.dataplane.counters import Counts
from atoll.domain.deploy_metrics import BUCKET_S, LATENCY_BUCKETS
from atoll.store.db import Database
from atoll.store.tables import DeployMetric

KEEP_DAYS = 7
# The time a request in each latency bucket is taken to have taken (for the histogram's sum and
# the node controller's load average): the middle of the bucket (15 s for the last, open one).
_LOWS, _HIGHS = (0.0, *LATENCY_BUCKETS), (*LATENCY_BUCKETS, 2 * LATENCY_BUCKETS[-1])
TYPICAL_S = tuple((lo + hi) / 2 for lo, hi in zip(_LOWS, _HIGHS, strict=True))


@dataclass
class Stats:
    requests: int = 0
    codes: dict[int, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    seconds: float = 0.0
    grpc_codes: dict[str, int] = field(default_factory=dict)  # gRPC status name → responses

    def add(self, counts: Counts) -> None:
        """Requests by latency bucket, HTTP status and gRPC status."""
        self.requests += counts.requests
        self.buckets = [a + b for a, b in zip(self.buckets, counts.buckets, strict=True)]
        self.seconds += sum(n * TYPICAL_S[i] for i, n in enumerate(counts.buckets) if n)
        _add_to(self.codes, counts.codes)
        _add_to(self.grpc_codes, counts.grpc_codes)


@dataclass
class _Labels:
    kind: str  # node | alias
    id: str
    name: str


class Recorder:
    def __init__(self, gateway_id: str) -> None:
        self.gateway_id = gateway_id
        self.totals: dict[str, Stats] = {}  # "node:<id>" / "alias:<id>" → since the start
        self.window: dict[str, Stats] = {}  # ... in the current bucket
        self.window_at = _bucket_start()
        self.names: dict[str, _Labels] = {}

    def add(self, key: str, kind: str, target_id: str, name: str, counts: Counts) -> None:
        """Count what the data plane counted since the last reading (totals are folded in per
        bucket)."""
        w = self.window.get(key)
        if w is None:
            w = self.window[key] = Stats()
            if key not in self.names:
                self.names[key] = _Labels(kind, target_id, name)
        w.add(counts)

    def current_totals(self) -> dict[str, Stats]:
        """Totals since the start: the folded buckets plus the current one."""
        out: dict[str, Stats] = {}
        for source in (self.totals, self.window):
            for key, st in list(source.items()):
                acc = out.setdefault(key, Stats())
                _fold(acc, st)
        return out

    # --- Prometheus exposition ------------------------------------------------------------

    def exposition(self) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self))
        return generate_latest(registry)

    # --- rollups into the store -------------------------------------------------------------

    def take_window(self) -> tuple[datetime, dict[str, Stats], bool]:
        """The current bucket's stats; a new bucket begins when the clock passed its end
        (third value True: the returned bucket is complete and its window was reset)."""
        at, window = self.window_at, self.window
        now_at = _bucket_start()
        if now_at != at:
            self.window, self.window_at = {}, now_at
            for key, st in window.items():
                _fold(self.totals.setdefault(key, Stats()), st)
            return at, window, True
        return at, dict(window), False


def _add_to(acc: dict[Any, int], more: dict[Any, int]) -> None:
    for k, n in more.items():
        acc[k] = acc.get(k, 0) + n


def _fold(acc: Stats, st: Stats) -> None:
    acc.requests += st.requests
    _add_to(acc.codes, st.codes)
    _add_to(acc.grpc_codes, st.grpc_codes)
    acc.buckets = [a + b for a, b in zip(acc.buckets, st.buckets, strict=True)]
    acc.seconds += st.seconds


def flush(db: Database, gateway_id: str, at: datetime, window: dict[str, Stats], prune: bool) -> None:
    """Write (or rewrite) this gateway's rows for the bucket starting ``at``."""
    if not window and not prune:
        return
    with db.transaction() as s:
        existing = {
            m.target: m
            for m in s.scalars(
                select(DeployMetric).where(DeployMetric.bucket_at == at, DeployMetric.gateway == gateway_id)
            )
        }
        for key, st in window.items():
            row = existing.get(key)
            if row is None:
                row = DeployMetric(target=key, gateway=gateway_id, bucket_at=at)
                s.add(row)
            row.requests = st.requests
            row.codes = {str(k): v for k, v in st.codes.items()}
            row.buckets = list(st.buckets)
            row.seconds = st.seconds
        if prune:
            cutoff = datetime.fromtimestamp(at.timestamp() - KEEP_DAYS * 86400, UTC)
            s.execute(delete(DeployMetric).where(DeployMetric.bucket_at < cutoff))


def _bucket_start() -> datetime:
    now = datetime.now(UTC).timestamp()
    return datetime.fromtimestamp(now - now % BUCKET_S, UTC)


class _Collector(Collector):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def collect(self) -> Iterator[Metric]:
        for kind, labels in (("node", ["node_id", "node_name"]), ("alias", ["alias_name"])):
            requests = CounterMetricFamily(f"{kind}_requests", f"Requests to the {kind}", labels=labels)
            codes = CounterMetricFamily(
                f"{kind}_http_codes", f"Responses by HTTP code, per {kind}", labels=[*labels, "code"]
            )
            grpc_codes = CounterMetricFamily(
                f"{kind}_grpc_codes", f"gRPC responses by status code, per {kind}", labels=[*labels, "code"]
            )
            durations = HistogramMetricFamily(
                f"{kind}_request_durations",
                f"Request latency through the gateway (s), per {kind}",
                labels=labels,
            )
            for key, st in self.rec.current_totals().items():
                lab = self.rec.names[key]
                if lab.kind != kind:
                    continue
                values = [lab.id, lab.name] if kind == "node" else [lab.name]
                requests.add_metric(values, st.requests)
                for code, n in sorted(st.codes.items()):
                    codes.add_metric([*values, str(code)], n)
                for name, n in sorted(st.grpc_codes.items()):
                    grpc_codes.add_metric([*values, name], n)
                cumulative, acc = [], 0
                for bound, n in zip((*map(str, LATENCY_BUCKETS), "+Inf"), st.buckets, strict=True):
                    acc += n
                    cumulative.append((bound, acc))
                durations.add_metric(values, cumulative, st.seconds)
            yield requests
            yield codes
            yield grpc_codes
            yield durations
