"""The real model server (`python -m atoll.serving`) called with tritonclient and raw HTTP."""

from __future__ import annotations

import http.client
import json
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from sklearn.linear_model import LogisticRegression
from tritonclient.utils import InferenceServerException

from tests.serving.conftest import Data, Server, call, start


@pytest.fixture(scope="module")
def client(server: Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(f"127.0.0.1:{server.port}")


def infer_input(name: str, array: np.ndarray, datatype: str, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def metric(text: str, name: str, model: str) -> int:
    found = re.search(rf'^{name}{{model="{model}",version="\d+"}} (\d+)$', text, re.M)
    assert found, f"{name} for {model} not in /metrics"
    return int(found.group(1))


def test_health_and_metadata(client: triton.InferenceServerClient, server: Server) -> None:
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "atoll" and "binary_tensor_data" in meta["extensions"]
    assert client.get_model_metadata("iris") == {
        "name": "iris",
        "versions": ["1"],
        "platform": "sklearn_joblib",
        "inputs": [{"name": "input__0", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [{"name": "output__0", "datatype": "INT64", "shape": [-1]}],
    }
    onnx_meta = client.get_model_metadata("iris-onnx", model_version="1")
    assert onnx_meta["platform"] == "onnxruntime_onnx"
    assert [o["name"] for o in onnx_meta["outputs"]] == ["label", "probabilities"]
    assert client.get_model_metadata("echo")["versions"] == ["4"]  # from meta.json "version"
    assert client.is_model_ready("iris") and client.is_model_ready("echo", "4")
    assert not client.is_model_ready("nope") and not client.is_model_ready("iris", "2")
    assert "serving models iris(1), iris-onnx(1), echo(4), echo-text(1) on 127.0.0.1:" in server.log()


def test_sklearn_binary_and_json(
    client: triton.InferenceServerClient, logreg: LogisticRegression, iris_like: Data
) -> None:
    x = iris_like.x[:40]
    binary = client.infer("iris", [infer_input("input__0", x, "FP64")], request_id="req-1")
    assert binary.get_response()["id"] == "req-1"
    assert binary.get_output("output__0")["parameters"] == {"binary_data_size": 40 * 8}
    np.testing.assert_array_equal(binary.as_numpy("output__0"), logreg.predict(x))

    as_json = client.infer(
        "iris",
        [infer_input("input__0", x, "FP64", binary=False)],
        outputs=[triton.InferRequestedOutput("output__0", binary_data=False)],
        model_version="1",
    )
    out = as_json.get_output("output__0")
    assert "parameters" not in out and len(out["data"]) == 40 and "id" not in as_json.get_response()
    np.testing.assert_array_equal(as_json.as_numpy("output__0"), logreg.predict(x))


def test_onnx_outputs_by_request(
    client: triton.InferenceServerClient, onnx_model: Any, logreg: LogisticRegression, iris_like: Data
) -> None:
    import onnxruntime

    x = iris_like.x.astype(np.float32)
    label, proba = onnxruntime.InferenceSession(onnx_model.SerializeToString()).run(None, {"X": x})
    result = client.infer("iris-onnx", [infer_input("X", x, "FP32")])
    np.testing.assert_array_equal(result.as_numpy("label"), label)
    np.testing.assert_allclose(result.as_numpy("probabilities"), proba, rtol=1e-6)

    only = client.infer(
        "iris-onnx", [infer_input("X", x[:3], "FP32")], outputs=[triton.InferRequestedOutput("probabilities")]
    )
    assert [o["name"] for o in only.get_response()["outputs"]] == ["probabilities"]
    assert only.as_numpy("probabilities").shape == (3, 3) and only.as_numpy("label") is None

    zipped = client.infer(
        "iris-onnx",
        [infer_input("X", x[:5], "FP32")],
        request_compression_algorithm="gzip",
        response_compression_algorithm="deflate",
    )
    np.testing.assert_array_equal(zipped.as_numpy("label"), label[:5])


def test_noop_echoes(client: triton.InferenceServerClient) -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_array_equal(client.infer("echo", [infer_input("x", x, "FP32")]).as_numpy("y"), x)


def test_bytes_tensors_binary_and_json(client: triton.InferenceServerClient) -> None:
    words = np.array([["héllo".encode(), b""], [b"a,b", b"x" * 300]], dtype=object)
    for binary in (True, False):
        result = client.infer(
            "echo-text",
            [infer_input("text", words, "BYTES", binary=binary)],
            outputs=[triton.InferRequestedOutput("text", binary_data=binary)],
        )
        expected = words if binary else np.vectorize(bytes.decode, otypes=[object])(words)
        np.testing.assert_array_equal(result.as_numpy("text"), expected)


def test_errors(client: triton.InferenceServerClient, server: Server, iris_like: Data) -> None:
    x = iris_like.x[:2]

    def infer(model: str, name: str, data: np.ndarray, datatype: str, **kw: Any) -> Any:
        return lambda: client.infer(model, [infer_input(name, data, datatype)], **kw)

    cases: list[tuple[int, str, Any]] = [
        (404, "unknown model: 'nope'", infer("nope", "input__0", x, "FP64")),
        (404, "'iris' version 7 is not found", infer("iris", "input__0", x, "FP64", model_version="7")),
        (400, "shape [2, 3], the model expects [-1, 4]", infer("iris", "input__0", x[:, :3], "FP64")),
        (
            400,
            "datatype 'FP32', the model expects FP64",
            infer("iris", "input__0", x.astype(np.float32), "FP32"),
        ),
        (400, "unexpected input 'features'", infer("iris", "features", x, "FP64")),
        (
            400,
            "unexpected output 'proba'",
            infer("iris", "input__0", x, "FP64", outputs=[triton.InferRequestedOutput("proba")]),
        ),
    ]
    for status, message, attempt in cases:
        with pytest.raises(InferenceServerException) as info:
            attempt()
        assert info.value.status() == str(status) and message in info.value.message()

    def body(**tensor: Any) -> bytes:
        return json.dumps(
            {"inputs": [{"name": "input__0", "datatype": "FP64", "shape": [1, 4], **tensor}]}
        ).encode()

    url = server.url + "/v2/models/iris/infer"
    raw = [
        (b'{"inputs": [', "not valid JSON"),
        (b'{"inputs": {}}', "'inputs' must be a list"),
        (body(data=[1, 2]), "has 2 elements but its shape [1, 4] needs 4"),
        (body(data=["a", 1, 2, 3]), "'data' is not a FP64 array"),
        (body(shape=[1, -4], data=[1, 2, 3, 4]), "'shape' must be a list of non-negative integers"),
        (body(parameters={"binary_data_size": 32}), "runs past the end of the body"),
    ]
    for payload, message in raw:
        code, answer = call("POST", url, payload)
        assert code == 400 and message in json.loads(answer)["error"]
    assert call("GET", url)[0] == 405 and call("GET", server.url + "/v2/nothing")[0] == 404
    assert call("GET", server.url + "/v2/health/live", headers={"X-Big": "x" * 70_000})[0] == 431
    assert "Traceback" not in server.log()


def test_metrics_count_requests(
    client: triton.InferenceServerClient, server: Server, iris_like: Data
) -> None:
    before = call("GET", server.url + "/metrics")[1].decode()
    for _ in range(3):
        client.infer("iris", [infer_input("input__0", iris_like.x[:5], "FP64")])
    with pytest.raises(InferenceServerException):
        client.infer("iris", [infer_input("input__0", iris_like.x[:5, :2], "FP64")])
    code, body = call("GET", server.url + "/metrics")
    after = body.decode()
    assert code == 200 and "# TYPE nv_inference_request_success counter" in after

    def delta(name: str) -> int:
        return metric(after, name, "iris") - metric(before, name, "iris")

    assert delta("nv_inference_request_success") == 3 and delta("nv_inference_request_failure") == 1
    assert delta("nv_inference_count") == 15 and delta("nv_inference_exec_count") == 3
    assert delta("nv_inference_request_duration_us") >= delta("nv_inference_compute_infer_duration_us") > 0


def test_body_over_16_mb_is_413(client: triton.InferenceServerClient, server: Server) -> None:
    big = np.zeros((16 * 1024 * 1024 // 32 + 1, 4), dtype=np.float64)  # 16 MiB + 32 bytes of tensor
    with pytest.raises(InferenceServerException) as info:
        client.infer("iris", [infer_input("input__0", big, "FP64")])
    assert (
        info.value.status() == "413" and "over this server's limit of 16777216 bytes" in info.value.message()
    )
    # The same connection keeps working after the refused body.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", "/v2/models/echo/infer", body=b"x" * (17 * 1024 * 1024))
    first = conn.getresponse()
    assert first.status == 413 and b"limit" in first.read()
    conn.request("GET", "/v2/health/ready")
    assert conn.getresponse().status == 200
    conn.close()
    assert client.is_server_live()


def test_sigterm_finishes_in_flight_requests_then_exits_0(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    s = start({"echo": model_dirs["echo"]}, tmp_path / "server.log")
    try:
        x = np.ones((1, 4), dtype=np.float32)
        body = json.dumps(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": x.ravel().tolist()}]}
        ).encode()
        # A request in flight: headers and half the body sent when SIGTERM arrives.
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        conn.putrequest("POST", "/v2/models/echo/infer")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        conn.send(body[:10])
        idle = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        idle.request("GET", "/v2/health/live")
        assert idle.getresponse().read() == b""
        time.sleep(0.2)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert s.proc.poll() is None  # still waiting for the request in flight
        conn.send(body[10:])
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["outputs"][0]["data"] == [1.0] * 4
        assert s.proc.wait(timeout=10) == 0
        with pytest.raises(OSError):
            call("GET", s.url + "/v2/health/live")
    finally:
        s.stop(signal.SIGKILL)


def test_concurrent_clients(client: triton.InferenceServerClient, server: Server, iris_like: Data) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            c = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
            for _ in range(20):
                x = iris_like.x[:3].astype(np.float32)
                np.testing.assert_array_equal(c.infer("echo", [infer_input("x", x, "FP32")]).as_numpy("y"), x)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
