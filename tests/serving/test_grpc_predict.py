"""The real model server's gRPC face (KServe v2 / Triton `inference.GRPCInferenceService`),
called with `tritonclient.grpc` unchanged, and answering as its HTTP face does."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sklearn.linear_model import LogisticRegression
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.serving.conftest import Data, Server, start
from tests.support.postgres import free_port


@dataclass
class Faces:
    """One model server, with its HTTP face (`http`) and its gRPC face at `target`."""

    http: Server
    grpc_port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.http.log()


@pytest.fixture(scope="module")
def grpc_server(model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faces]:
    port = free_port()
    s = start(model_dirs, tmp_path_factory.mktemp("grpc") / "server.log", "--grpc-port", str(port))
    try:
        yield Faces(s, port)
    finally:
        s.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def client(grpc_server: Faces) -> Iterator[tgrpc.InferenceServerClient]:
    c = tgrpc.InferenceServerClient(grpc_server.target)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def http_client(grpc_server: Faces) -> thttp.InferenceServerClient:
    return thttp.InferenceServerClient(f"127.0.0.1:{grpc_server.http.port}")


def grpc_input(name: str, array: np.ndarray, datatype: str) -> tgrpc.InferInput:
    tensor = tgrpc.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def http_input(name: str, array: np.ndarray, datatype: str) -> thttp.InferInput:
    tensor = thttp.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def refusal(attempt: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        attempt()
    return info.value


def test_live_ready_health_and_metadata(
    client: tgrpc.InferenceServerClient, http_client: thttp.InferenceServerClient, grpc_server: Faces
) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris") and client.is_model_ready("echo", "4")
    assert not client.is_model_ready("nope") and not client.is_model_ready("iris", "2")
    meta = client.get_server_metadata()
    assert meta.name == "atoll" and "binary_tensor_data" in meta.extensions
    for name in ("iris", "iris-onnx", "echo", "echo-text"):
        got = client.get_model_metadata(name)
        tensors = [
            [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in ts]
            for ts in (got.inputs, got.outputs)
        ]
        as_dict = {"name": got.name, "versions": list(got.versions), "platform": got.platform}
        assert {**as_dict, "inputs": tensors[0], "outputs": tensors[1]} == http_client.get_model_metadata(
            name
        )
    config = client.get_model_config("iris").config
    assert config.platform == "sklearn_joblib" and [i.name for i in config.input] == ["input__0"]
    # the standard gRPC health service: SERVING for the server and the inference service
    with grpc.insecure_channel(grpc_server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert ", gRPC on 127.0.0.1:" in grpc_server.log()


def test_infer_matches_http(
    client: tgrpc.InferenceServerClient,
    http_client: thttp.InferenceServerClient,
    logreg: LogisticRegression,
    iris_like: Data,
) -> None:
    x = iris_like.x[:40]
    answer = client.infer("iris", [grpc_input("input__0", x, "FP64")], request_id="req-1")
    assert answer.get_response().id == "req-1" and answer.get_response().model_version == "1"
    over_http = http_client.infer("iris", [http_input("input__0", x, "FP64")])
    np.testing.assert_array_equal(answer.as_numpy("output__0"), over_http.as_numpy("output__0"))
    np.testing.assert_array_equal(answer.as_numpy("output__0"), logreg.predict(x))
    # ONNX: two outputs, one asked for
    x32 = x.astype(np.float32)
    only = client.infer(
        "iris-onnx",
        [grpc_input("X", x32, "FP32")],
        outputs=[tgrpc.InferRequestedOutput("probabilities")],
        model_version="1",
    )
    assert [o.name for o in only.get_response().outputs] == ["probabilities"]
    http_probs = http_client.infer("iris-onnx", [http_input("X", x32, "FP32")]).as_numpy("probabilities")
    np.testing.assert_array_equal(only.as_numpy("probabilities"), http_probs)
    # BYTES both ways
    words = np.array([["héllo".encode(), b""], [b"a,b", b"x" * 300]], dtype=object)
    echoed = client.infer("echo-text", [grpc_input("text", words, "BYTES")]).as_numpy("text")
    np.testing.assert_array_equal(echoed, words)


def test_typed_contents_as_well_as_raw(grpc_server: Faces) -> None:
    """Clients other than tritonclient may send InferTensorContents instead of raw bytes."""
    request = service_pb2.ModelInferRequest(model_name="echo")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[2, 4])
    tensor.contents.fp32_contents.extend(range(8))
    text = service_pb2.ModelInferRequest(model_name="echo-text")
    words = text.inputs.add(name="text", datatype="BYTES", shape=[1, 2])
    words.contents.bytes_contents.extend(["hé".encode(), b"lo"])
    with grpc.insecure_channel(grpc_server.target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        answer = stub.ModelInfer(request, timeout=10)
        out = np.frombuffer(answer.raw_output_contents[0], dtype=np.float32)
        assert list(answer.outputs[0].shape) == [2, 4] and out.tolist() == list(range(8))
        assert (
            stub.ModelInfer(text, timeout=10).raw_output_contents[0]
            == b"\x03\x00\x00\x00h\xc3\xa9\x02\x00\x00\x00lo"
        )
        words.contents.bytes_contents[0] = b"\xff"
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(text, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "BYTES elements must be UTF-8 text" in (info.value.details() or "")


def test_bad_input_is_invalid_argument_with_the_http_message(
    client: tgrpc.InferenceServerClient, http_client: thttp.InferenceServerClient, iris_like: Data
) -> None:
    x = iris_like.x[:2]
    cases = [
        ("input__0", x[:, :3], "FP64", "shape [2, 3], the model expects [-1, 4]"),
        ("input__0", x.astype(np.float32), "FP32", "datatype 'FP32', the model expects FP64"),
        ("features", x, "FP64", "unexpected input 'features'"),
    ]
    for name, data, datatype, message in cases:
        over_grpc = refusal(lambda: client.infer("iris", [grpc_input(name, data, datatype)]))  # noqa: B023
        over_http = refusal(lambda: http_client.infer("iris", [http_input(name, data, datatype)]))  # noqa: B023
        assert over_grpc.status() == str(grpc.StatusCode.INVALID_ARGUMENT)
        assert message in over_grpc.message() and over_grpc.message() == over_http.message()
    wrong_output = refusal(
        lambda: client.infer(
            "iris", [grpc_input("input__0", x, "FP64")], outputs=[tgrpc.InferRequestedOutput("proba")]
        )
    )
    assert wrong_output.status() == str(grpc.StatusCode.INVALID_ARGUMENT)
    assert "unexpected output 'proba'" in wrong_output.message()


def test_unknown_model_is_not_found(client: tgrpc.InferenceServerClient, iris_like: Data) -> None:
    tensor = grpc_input("input__0", iris_like.x[:2], "FP64")
    nope = refusal(lambda: client.infer("nope", [tensor]))
    assert nope.status() == str(grpc.StatusCode.NOT_FOUND)
    assert nope.message() == "Request for unknown model: 'nope' is not found"
    version = refusal(lambda: client.infer("iris", [tensor], model_version="7"))
    assert version.status() == str(grpc.StatusCode.NOT_FOUND) and "'iris' version 7" in version.message()
    meta = refusal(lambda: client.get_model_metadata("nope"))
    assert meta.status() == str(grpc.StatusCode.NOT_FOUND)


def test_message_over_the_limit_is_refused(client: tgrpc.InferenceServerClient) -> None:
    big = np.zeros((16 * 1024 * 1024 // 32 + 1, 4), dtype=np.float64)  # 16 MiB + 32 bytes of tensor
    refused = refusal(lambda: client.infer("iris", [grpc_input("input__0", big, "FP64")]))
    assert refused.status() == str(grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert "larger than max" in refused.message()
    assert client.is_server_live() and client.is_model_ready("iris")  # the server goes on


def test_sigterm_stops_both_faces_and_a_taken_port_fails(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    port = free_port()
    s = start({"echo": model_dirs["echo"]}, tmp_path / "server.log", "--grpc-port", str(port))
    try:
        c = tgrpc.InferenceServerClient(f"127.0.0.1:{port}")
        assert c.is_server_ready()
        c.close()
        assert s.stop(signal.SIGTERM) == 0
        for p in (s.port, port):
            with socket.socket() as sock:
                assert sock.connect_ex(("127.0.0.1", p)) != 0
    finally:
        s.stop(signal.SIGKILL)
    # a gRPC port already taken: the server says so and exits 2, rather than share or wander
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(AssertionError, match="exited with 2"):
            start(
                {"echo": model_dirs["echo"]},
                tmp_path / "taken.log",
                "--grpc-port",
                str(taken.getsockname()[1]),
            )
    assert "cannot listen for gRPC" in (tmp_path / "taken.log").read_text()
