"""A model node's instance serves KServe v2 / Triton gRPC on a port of its own (`grpcPort`),
beside its HTTP port; `tritonclient.grpc` talks to it directly there, and unchanged through an
alias on the gateway's one port (h2c), where the data plane sends gRPC to that face."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import httpx
import numpy as np
import tritonclient.grpc as tgrpc

from tests.deploy.conftest import create_node, set_alias, wait_for, wait_healthy
from tests.support.server import RunningServer

SPEC = [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]


def _register_noop(server: RunningServer, project_id: str, name: str) -> None:
    """A noop model (it echoes its input) registered as a job registers one: through the outbox."""
    box = server.data_dir / "projects" / project_id / "model-outbox" / "grpc-test"
    box.mkdir(parents=True, exist_ok=True)
    key = uuid.uuid4().hex
    tmp = box / f".tmp-{key}"
    tmp.mkdir()
    meta = {"name": name, "format": "noop", "inputs": SPEC, "outputs": SPEC}
    (tmp / "meta.json").write_text(json.dumps(meta))
    os.rename(tmp, box / key)  # complete: the inbox takes it only now
    result = box / f"{key}.result.json"
    wait_for("the model's registration", result.exists, timeout=30)
    assert "error" not in json.loads(result.read_text()), result.read_text()


def test_model_instance_answers_tritonclient_grpc_on_its_grpc_port(
    server: RunningServer, project: dict[str, Any]
) -> None:
    pid = project["id"]
    _register_noop(server, pid, "echo-grpc")
    node = create_node(server, pid, "echo-grpc-v1", models=["echo-grpc"], configuration="s1.1")
    node = wait_healthy(server, pid, node["id"], timeout=300)
    inst = next(i for i in node["instances"] if i["status"] == "Healthy")
    assert isinstance(inst["grpcPort"], int) and inst["grpcPort"] not in (0, inst["port"])

    with tgrpc.InferenceServerClient(f"{inst['host']}:{inst['grpcPort']}") as client:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("echo-grpc")
        meta = client.get_model_metadata("echo-grpc")
        assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("x", "FP32", [-1, 4])]
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        tensor = tgrpc.InferInput("x", [2, 4], "FP32")
        tensor.set_data_from_numpy(x)
        np.testing.assert_array_equal(client.infer("echo-grpc", [tensor]).as_numpy("x"), x)

    # Through a private alias: the same client, pointed at the gateway, with the alias and an
    # Atoll token as gRPC metadata; the HTTP face keeps answering REST on the same alias.
    set_alias(server, pid, "echo-grpc", {node["id"]: 100}, create=True)
    headers = {"x-node-alias": "echo-grpc", "authorization": f"Bearer {server.admin_token}"}
    gateway = server.gateway_url.removeprefix("http://")
    with tgrpc.InferenceServerClient(gateway) as client:

        def routed() -> bool:
            try:
                return bool(client.is_model_ready("echo-grpc", headers=headers))
            except tgrpc.InferenceServerException:
                return False

        wait_for("the alias routed over gRPC", routed, timeout=15)
        answer = client.infer("echo-grpc", [tensor], headers=headers)
        np.testing.assert_array_equal(answer.as_numpy("x"), x)
        try:
            client.infer("no-such-model", [tensor], headers=headers)
            raise AssertionError("an unknown model answered")
        except tgrpc.InferenceServerException as e:
            assert e.status() == "StatusCode.NOT_FOUND", e.status()
        try:
            client.infer("echo-grpc", [tensor], headers={"x-node-alias": "echo-grpc"})
            raise AssertionError("a private alias answered gRPC without a token")
        except tgrpc.InferenceServerException as e:
            assert "401" in str(e) or "Unauthenticated" in str(e) or "UNAUTHENTICATED" in str(e), str(e)
    rest = httpx.post(
        server.gateway_url + "/v2/models/echo-grpc/infer",
        headers=headers,
        json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": x.ravel().tolist()}]},
    )
    assert rest.status_code == 200 and rest.json()["outputs"][0]["data"] == x.ravel().tolist()

    # The gRPC statuses are counted by node and alias (metrics read each second).
    labels = f'node_id="{node["id"]}",node_name="echo-grpc-v1"'
    wanted = [
        f'node_grpc_codes_total{{code="OK",{labels}}}',
        f'node_grpc_codes_total{{code="NOT_FOUND",{labels}}} 1.0',
        'alias_grpc_codes_total{alias_name="echo-grpc",code="NOT_FOUND"} 1.0',
    ]

    def counted() -> bool:
        admin = {"authorization": headers["authorization"]}
        text = httpx.get(server.gateway_url + "/metrics", headers=admin).text
        return all(w in text for w in wanted)

    wait_for("the gRPC statuses counted", counted, timeout=10)
