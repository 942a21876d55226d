"""Request and response bodies of models, nodes and aliases (spec §6, §8.1)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from atoll.api.bounds import (
    MAX_COMMAND_ARGS,
    MAX_HEADERS,
    MAX_ITEMS,
    MAX_TEXT,
    Count,
    Description,
    EnvVars,
    Id,
    Name,
    Port,
    Seconds,
    Short,
    Text,
)
from atoll.api.schemas import ApiModel, Input, Timestamp

# A command-line argument may hold a small script (`python -c "…"`).
Arg = Annotated[str, Field(max_length=64 * 1024)]
UrlPath = Annotated[str, Field(max_length=256)]


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
    type: Literal["HTTP", "GRPC", "http", "grpc"] | None = None
    service: Annotated[str, Field(max_length=255)] | None = None  # GRPC: the service asked about
    path: UrlPath | None = None
    port: Port | None = None
    timeout_s: Seconds | None = Field(default=None, alias="timeoutS")
    interval_s: Seconds | None = Field(default=None, alias="intervalS")
    healthy_threshold: Count | None = None
    unhealthy_threshold: Count | None = None

    def as_spec(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(by_alias=True).items() if v is not None}


class TelemetryIn(Input):
    path: UrlPath = "/metrics"
    port: Port | None = None


class EndpointIn(Input):
    """How the data plane talks to the instances (domain/node_endpoint.py has the bounds)."""

    type: Literal["HTTP", "HTTP2", "GRPC", "http", "http2", "grpc"] | None = None
    timeout_s: int | None = Field(default=None, alias="timeoutS", ge=1, le=86_400)
    idle_timeout_s: int | None = Field(default=None, alias="idleTimeoutS", ge=1, le=86_400)
    max_concurrency: int | None = Field(default=None, ge=0, le=10_000)
    queue_length: int | None = Field(default=None, ge=0, le=100_000)
    queue_timeout_s: int | None = Field(default=None, alias="queueTimeoutS", ge=1, le=600)
    max_body_mb: int | None = Field(default=None, ge=1, le=1024)

    def as_spec(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(by_alias=True).items() if v is not None}


class NodeCreate(Input):
    name: Name
    description: Description = ""
    configuration: Short | None = None
    min_instances: Count | None = None
    max_instances: Count | None = None
    models: list[Text] | None = Field(
        default=None, max_length=MAX_ITEMS, description="Model ids, names (latest) or name:version"
    )
    command: list[Arg] | None = Field(
        default=None, max_length=MAX_COMMAND_ARGS, description="argv of a server listening on $PORT"
    )
    image: str | None = Field(default=None, max_length=512)
    port: Port | None = Field(default=None, description="The port an image's server listens on")
    env: EnvVars | None = None
    health_check: HealthCheckIn | None = None
    telemetry: TelemetryIn | None = None
    endpoint: EndpointIn | None = None


class NodeUpdate(Input):
    name: Name | None = None
    description: Description | None = None
    configuration: Short | None = None
    min_instances: Count | None = None
    max_instances: Count | None = None
    models: list[Text] | None = Field(default=None, max_length=MAX_ITEMS)
    command: list[Arg] | None = Field(default=None, max_length=MAX_COMMAND_ARGS)
    image: str | None = Field(default=None, max_length=512)
    port: Port | None = None
    env: EnvVars | None = None
    health_check: HealthCheckIn | None = None
    telemetry: TelemetryIn | None = None
    endpoint: EndpointIn | None = None


class InstanceOut(ApiModel):
    id: str
    status: str
    detail: str
    revision: int
    port: int | None
    grpc_port: int | None = None  # a model server's KServe v2 / Triton gRPC face (model nodes only)
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
    node_id: Id
    weight: Count


# Alias names may carry DataSphere's "datasphere.user." prefix before the name itself.
AliasName = Annotated[str, Field(max_length=128)]
Metadata = Annotated[dict[Name, Text], Field(max_length=MAX_ITEMS)]


class AliasCreate(Input):
    name: AliasName
    nodes: list[AliasNodeIn] = Field(max_length=MAX_ITEMS)
    metadata: Metadata = Field(default_factory=dict)
    public: bool = False


class AliasUpdate(Input):
    nodes: list[AliasNodeIn] | None = Field(default=None, max_length=MAX_ITEMS)
    metadata: Metadata | None = None
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
    path: str = Field(default="/", max_length=MAX_TEXT)
    body: Any = Field(default=None, description="A string is sent as is, anything else as JSON (≤16 MB)")
    headers: dict[Annotated[str, Field(max_length=256)], Text] = Field(
        default_factory=dict, max_length=MAX_HEADERS
    )


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


class InstanceRunOut(ApiModel):
    """One run of a node instance (a crash restarts it as a new run with its own log)."""

    run: int = Field(description="0 is the latest run, 1 the one before it, …")
    workload_id: str
    state: str
    exit_code: int | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    reason: str = Field(description='Why it ended ("exited with code 3", a failed check…), or "running"')
