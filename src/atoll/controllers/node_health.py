"""One health check of a node's instance: an HTTP GET of a path (2xx passes) or gRPC's standard
health service (grpc.health.v1 Check of a service: SERVING passes), as the node's healthCheck
says; and which port it (or a telemetry scrape) goes to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from atoll.store.tables import NodeInstance


@dataclass
class Check:
    instance_id: str
    host: str
    port: int
    timeout: float
    path: str = "/"
    grpc_service: str | None = None  # None: an HTTP check

    @classmethod
    def of(cls, inst: NodeInstance, host: str, hc: dict[str, Any], model: bool) -> Check:
        port = port_for(inst, hc)
        grpc_check = hc.get("type", "HTTP") == "GRPC"
        if grpc_check and model and not hc.get("port") and inst.grpc_port:
            port = inst.grpc_port  # a model server answers gRPC on its gRPC face
        return cls(
            inst.id,
            host,
            int(port or 0),
            float(hc["timeoutS"]),
            hc.get("path", "/"),
            str(hc.get("service", "")) if grpc_check else None,
        )

    def run(self, http: httpx.Client) -> tuple[bool, str]:
        return self._grpc() if self.grpc_service is not None else self._http(http)

    def _http(self, http: httpx.Client) -> tuple[bool, str]:
        try:
            r = http.get(f"http://{self.host}:{self.port}{self.path}", timeout=self.timeout)
        except httpx.HTTPError as e:
            return False, f"health check failed: {type(e).__name__}"
        if 200 <= r.status_code < 300:
            return True, ""
        return False, f"health check answered {r.status_code}"

    def _grpc(self) -> tuple[bool, str]:
        request = health_pb2.HealthCheckRequest(service=self.grpc_service or "")
        try:
            with grpc.insecure_channel(f"{self.host}:{self.port}") as channel:
                answer = health_pb2_grpc.HealthStub(channel).Check(request, timeout=self.timeout)
        except grpc.RpcError as e:
            return False, f"gRPC health check failed: {e.code().name}"
        if answer.status == health_pb2.HealthCheckResponse.SERVING:
            return True, ""
        return (
            False,
            f"gRPC health check answered {health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)}",
        )


def port_for(inst: NodeInstance, section: dict[str, Any] | None) -> int | None:
    """Where a health check or telemetry scrape goes: the instance's serving port, or the port
    the section names (an image's own port, published on a loopback port of its own)."""
    own = (section or {}).get("port")
    if not own:
        return inst.port
    return int((inst.side_ports or {}).get(str(own), own))
