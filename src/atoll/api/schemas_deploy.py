"""Request and response bodies of models, nodes and aliases (spec §6, §8.1)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from atoll.api.schemas import ApiModel, Input, Timestamp


class ModelOut(ApiModel):
    id: str
    project_id: str
    name: str
    version: int
    description: str
    format: str
    meta: dict[str, Any] = Field(description="meta.json: class, libraries, inputs and outputs")
    size: int
    source: str
    created_by_id: str | None = Field(default=None, validation_alias="created_by")
    created_at: Timestamp


class HealthCheckIn(Input):
    path: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    timeout_s: float | None = Field(default=None, alias="timeoutS")
    interval_s: float | None = Field(default=None, alias="intervalS")
    healthy_threshold: int | None = None
    unhealthy_threshold: int | None = None

    def as_spec(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(by_alias=True).items() if v is not None}


class TelemetryIn(Input):
    path: str = "/metrics"
    port: int | None = Field(default=None, ge=1, le=65535)


class NodeCreate(Input):
    name: str
    description: str = ""
    configuration: str | None = None
    min_instances: int | None = None
    max_instances: int | None = None
    models: list[str] | None = Field(default=None, description="Model ids, names (latest) or name:version")
    command: list[str] | None = Field(default=None, description="argv of a server listening on $PORT")
    image: str | None = None
    port: int | None = Field(default=None, description="The port an image's server listens on")
    env: dict[str, str] | None = None
    health_check: HealthCheckIn | None = None
    telemetry: TelemetryIn | None = None


class NodeUpdate(Input):
    name: str | None = None
    description: str | None = None
    configuration: str | None = None
    min_instances: int | None = None
    max_instances: int | None = None
    models: list[str] | None = None
    command: list[str] | None = None
    image: str | None = None
    port: int | None = None
    env: dict[str, str] | None = None
    health_check: HealthCheckIn | None = None
    telemetry: TelemetryIn | None = None


class InstanceOut(ApiModel):
    id: str
    status: str
    detail: str
    revision: int
    port: int | None
    restarts: int
    workload_id: str | None
    created_at: Timestamp
    healthy_at: Timestamp | None = None
    host: str = "127.0.0.1"  # where it listens: its Ray node's address on the ray runtime


class NodeOut(ApiModel):
    id: str
    project_id: str
    name: str
    description: str
    kind: Literal["model", "command", "image"]
    spec: dict[str, Any]
    configuration: str
    min_instances: int
    max_instances: int
    revision: int
    status: str
    detail: str
    suspended: bool = False
    instances: list[InstanceOut] = Field(default_factory=list)
    created_by_id: str | None = Field(default=None, validation_alias="created_by")
    created_at: Timestamp
    updated_at: Timestamp


class AliasNodeIn(Input):
    node_id: str
    weight: int


class AliasCreate(Input):
    name: str
    nodes: list[AliasNodeIn]
    metadata: dict[str, str] = Field(default_factory=dict)
    public: bool = False


class AliasUpdate(Input):
    nodes: list[AliasNodeIn] | None = None
    metadata: dict[str, str] | None = None
    public: bool | None = None


class AliasNodeOut(ApiModel):
    node_id: str
    node_name: str
    weight: int
    status: str


class AliasOut(ApiModel):
    id: str
    project_id: str
    name: str
    nodes: list[AliasNodeOut]
    metadata: dict[str, str]
    public: bool
    created_by_id: str | None = None
    created_at: Timestamp
    updated_at: Timestamp


class TestRequest(Input):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "POST"
    path: str = "/"
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)


class TestResponse(ApiModel):
    status: int
    headers: dict[str, str]
    body: str
    elapsed_ms: float
    instance_id: str


class MetricPoint(ApiModel):
    at: Timestamp
    requests_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    codes: dict[str, int]


class MetricsOut(ApiModel):
    target: str
    bucket_s: int
    points: list[MetricPoint]
