"""The model server's gRPC face: KServe v2 / Triton's `inference.GRPCInferenceService` and the
standard `grpc.health.v1.Health`, so that `tritonclient.grpc` works unchanged.

It runs on the HTTP face's event loop (grpc.aio) and calls the same `ModelServer`: models run
inline there as for HTTP, one at a time, and requests are checked, counted and refused alike.
Imported only when the server is started with --grpc-port: it needs grpcio, protobuf and
tritonclient[grpc] (the generated stubs), which `SERVING_REQUIREMENTS` installs.
"""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from atoll.serving.app import ModelServer, config
from atoll.serving.grpcproto import infer_response, model_config, model_metadata, read_infer
from atoll.serving.protocol import RequestError, ServedModel

SERVICE = "inference.GRPCInferenceService"

# The gRPC status of each HTTP status the shared code refuses with.
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}


async def _refuse(context: Any, error: RequestError) -> NoReturn:
    await context.abort(_CODES.get(error.status, grpc.StatusCode.INTERNAL), str(error))
    raise AssertionError("context.abort returns only by raising")  # for the type checker


class InferenceService(service_pb2_grpc.GRPCInferenceServiceServicer):
    """The RPCs tritonclient.grpc uses; the others answer UNIMPLEMENTED (the generated base)."""

    def __init__(self, app: ModelServer) -> None:
        self.app = app
        meta = app.server_meta
        self._server_meta = service_pb2.ServerMetadataResponse(
            name=meta["name"], version=meta["version"], extensions=meta["extensions"]
        )

    def _model(self, name: str, version: str) -> ServedModel:
        return self.app.find(name, version or None)  # "" asks for the one version served

    async def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 - the proto's names
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return service_pb2.ServerReadyResponse(ready=self.app.ready)

    async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        # As Triton answers: an unknown model is not ready, rather than an error.
        try:
            model = self._model(request.name, request.version)
        except RequestError:
            return service_pb2.ModelReadyResponse(ready=False)
        return service_pb2.ModelReadyResponse(ready=self.app.ready and model.run is not None)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._server_meta

    async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        try:
            return model_metadata(self._model(request.name, request.version))
        except RequestError as e:
            await _refuse(context, e)

    async def ModelConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        try:
            return model_config(config(self._model(request.name, request.version)))
        except RequestError as e:
            await _refuse(context, e)

    async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        try:
            model = self._model(request.model_name, request.model_version)
            return self.app.infer(
                model,
                lambda: read_infer(request, model),
                lambda request_id, results, selected: infer_response(model, request_id, results, selected),
            )
        except RequestError as e:
            await _refuse(context, e)


class GrpcServer:
    """The gRPC face of `app`, plaintext (h2c), with messages up to `max_message` bytes each way."""

    def __init__(self, app: ModelServer, max_message: int) -> None:
        self.health = health.aio.HealthServicer()
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", max_message),
                ("grpc.max_send_message_length", max_message),
                # A port taken by another process must fail to bind, not be shared with it.
                ("grpc.so_reuseport", 0),
            ]
        )
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(app), self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (port 0 picks a free one); the bound port. OSError if it cannot."""
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = self._server.add_insecure_port(address)
        except RuntimeError as e:  # grpcio raises this where older versions returned 0
            raise OSError(f"cannot bind {address}: {e}") from None
        if not bound:
            raise OSError(f"cannot bind {address}")
        await self.set_serving(False)
        await self._server.start()
        return int(bound)

    async def set_serving(self, ready: bool) -> None:
        """What Health.Check says, for the server ("") and the inference service: ready or not."""
        statuses = health_pb2.HealthCheckResponse
        status = statuses.SERVING if ready else statuses.NOT_SERVING
        for service in ("", SERVICE):
            await self.health.set(service, status)

    async def stop(self, grace: float) -> None:
        """Refuse new RPCs; those in flight have `grace` seconds to finish, then are cancelled."""
        await self.health.enter_graceful_shutdown()
        await self._server.stop(grace)
