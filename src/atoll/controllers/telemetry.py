"""Instances' own metrics (spec §6.4 "custom metrics"): scraped over HTTP GET at the node's
telemetry path (a model node's server exports Triton's ``nv_inference_*`` at /metrics), with the
labels ``node_id`` and ``instance_id`` added, and kept in memory for the node page and API.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

SCRAPE_S = 10.0
MAX_BYTES = 4 * 1024 * 1024


class TelemetryBoard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, dict[str, tuple[float, list[Metric] | str]]] = {}  # node → instance → …
        self._scraped: dict[str, float] = {}

    def due(self, instance_id: str) -> bool:
        now = time.monotonic()
        if now - self._scraped.get(instance_id, 0.0) < SCRAPE_S:
            return False
        self._scraped[instance_id] = now
        return True

    def scrape(self, http: httpx.Client, node_id: str, instance_id: str, url: str) -> None:
        """Fetch one instance's metrics; what went wrong is kept in its place, as text."""
        try:
            r = http.get(url, timeout=2.0)
            if r.status_code != 200:
                got: list[Metric] | str = f"telemetry answered {r.status_code}"
            elif len(r.content) > MAX_BYTES:
                got = "telemetry over 4 MB: not kept"
            else:
                got = list(text_string_to_metric_families(r.text))
                for fam in got:
                    for sample in fam.samples:
                        sample.labels.update(node_id=node_id, instance_id=instance_id)
        except (httpx.HTTPError, ValueError) as e:
            got = f"telemetry unreachable or not Prometheus text: {type(e).__name__}"
        with self._lock:
            self._latest.setdefault(node_id, {})[instance_id] = (time.time(), got)

    def keep_only(self, live: set[str]) -> None:
        with self._lock:
            for node_id in list(self._latest):
                for inst in [i for i in self._latest[node_id] if i not in live]:
                    del self._latest[node_id][inst]
                if not self._latest[node_id]:
                    del self._latest[node_id]

    def exposition(self, node_id: str) -> str:
        """The node's instances' latest metrics as one Prometheus text (errors as comments)."""
        with self._lock:
            per = dict(self._latest.get(node_id, {}))
        notes = [f"# instance {i}: {v}\n" for i, (_, v) in sorted(per.items()) if isinstance(v, str)]
        families = [f for _, v in per.values() if not isinstance(v, str) for f in v]
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed(_merge(families)))
        return "".join(notes) + generate_latest(registry).decode()


def _merge(families: list[Metric]) -> list[Metric]:
    """One family per name (instances export the same names)."""
    out: dict[str, Metric] = {}
    for f in families:
        have = out.get(f.name)
        if have is None:
            out[f.name] = have = Metric(f.name, f.documentation, f.type, f.unit)
        have.samples.extend(f.samples)
    return list(out.values())


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families
