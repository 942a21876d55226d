"""The gateway's rolled-up request metrics of nodes and aliases, as series for the UI's charts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from atoll.store.tables import DeployMetric, as_utc, utcnow

# Upper bounds (s) of the latency histogram's buckets; the last bucket counts everything slower.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BUCKET_S = 10


@dataclass
class Point:
    at: datetime
    requests: int
    codes: dict[str, int]
    buckets: list[int]

    @property
    def requests_per_s(self) -> float:
        return self.requests / BUCKET_S

    def quantile_ms(self, q: float) -> float | None:
        v = percentile(self.buckets, q)
        return None if v is None else round(v * 1000, 3)


def percentile(buckets: list[int], q: float) -> float | None:
    """The q-quantile (0-1) of a latency histogram, interpolated within its bucket (seconds)."""
    total = sum(buckets)
    if total == 0:
        return None
    rank, acc = q * total, 0
    for i, n in enumerate(buckets):
        if n and acc + n >= rank:
            lo = LATENCY_BUCKETS[i - 1] if i > 0 else 0.0
            hi = LATENCY_BUCKETS[i] if i < len(LATENCY_BUCKETS) else LATENCY_BUCKETS[-1] * 2
            return lo + (hi - lo) * (rank - acc) / n
        acc += n
    return LATENCY_BUCKETS[-1]


def series(db: Session, target: str, minutes: int) -> list[Point]:
    """Buckets of the last ``minutes`` for ``node:<id>`` or ``alias:<id>``, summed over gateways;
    buckets without requests are there with zeros, so charts show the quiet too."""
    now = utcnow()
    since = now - timedelta(minutes=minutes)
    start = datetime.fromtimestamp(since.timestamp() - since.timestamp() % BUCKET_S, since.tzinfo)
    points: dict[datetime, Point] = {}
    t = start
    while t <= now:
        points[t] = Point(t, 0, {}, [0] * (len(LATENCY_BUCKETS) + 1))
        t += timedelta(seconds=BUCKET_S)
    rows = db.scalars(
        select(DeployMetric).where(DeployMetric.target == target, DeployMetric.bucket_at >= start)
    )
    for m in rows:
        at = as_utc(m.bucket_at)
        p = points.setdefault(at, Point(at, 0, {}, [0] * (len(LATENCY_BUCKETS) + 1)))
        p.requests += m.requests
        for code, n in (m.codes or {}).items():
            p.codes[code] = p.codes.get(code, 0) + int(n)
        for i, n in enumerate(m.buckets or []):
            if i < len(p.buckets):
                p.buckets[i] += int(n)
    return [points[k] for k in sorted(points)]
