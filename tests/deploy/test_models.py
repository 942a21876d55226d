"""Acceptance: a scikit-learn model saved from a job is deployed as a node and answers a
``tritonclient.http`` infer call through the gateway (spec §6.1 "from model", §8.1)."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.deploy.conftest import create_node, gateway_ready, set_alias, wait_for, wait_healthy
from tests.support.server import RunningServer

TRAIN = b"""
import json
import numpy as np
from sklearn.linear_model import LogisticRegression
import atoll.models

rng = np.random.default_rng(7)
X = rng.normal(size=(200, 4))
y = (X[:, 0] + 2 * X[:, 1] - X[:, 3] > 0).astype(int)
clf = LogisticRegression().fit(X, y)
saved = atoll.models.save(clf, "churn", "logistic regression, 4 features")
probe = np.array([[1.0, 0.5, -1.0, 0.0], [-2.0, -1.0, 0.0, 1.0], [0.1, 0.2, 0.3, 0.4]])
print(json.dumps({"saved": saved, "probe": probe.tolist(), "expected": clf.predict(probe).tolist()}))
"""


def _run_job(server: RunningServer, project_id: str) -> dict[str, Any]:
    sha = hashlib.sha256(TRAIN).hexdigest()
    config = "name: train\ncmd: python train.py\nenv:\n  python: auto\ninputs:\n  - train.py\n"
    body = {
        "config": config,
        "inputs": [{"path": "train.py", "sha256": sha, "size": len(TRAIN)}],
        "python": {"version": "3.11", "requirements": ["scikit-learn==1.9.1", "numpy==2.4.6"]},
    }
    with server.api() as api:
        r = api.post(f"/projects/{project_id}/jobs", json=body)
        assert r.status_code == 201, r.text
        job = r.json()["job"]
        for missing in r.json()["missingFiles"]:
            assert api.put(f"/projects/{project_id}/blobs/{missing}", content=TRAIN).status_code == 204
        assert api.post(f"/jobs/{job['id']}/execute").status_code == 200
        done = wait_for(
            "the training job",
            lambda: (j := api.get(f"/jobs/{job['id']}").json())["status"] in ("SUCCESS", "ERROR") and j,
            timeout=300,
            every=0.5,
        )
        out = api.get(f"/jobs/{job['id']}/logs", params={"stream": "stdout"}).json()["data"]
        err = api.get(f"/jobs/{job['id']}/logs", params={"stream": "stderr"}).json()["data"]
        assert done["status"] == "SUCCESS", f"{done['statusDetails']}\n{err[-3000:]}"
        return dict(json.loads(out.strip().splitlines()[-1]))


def test_sklearn_model_from_a_job_answers_tritonclient(
    server: RunningServer, project: dict[str, Any]
) -> None:
    pid = project["id"]
    result = _run_job(server, pid)
    assert result["saved"]["name"] == "churn" and result["saved"]["version"] == 1
    with server.api() as api:
        models = api.get(f"/projects/{pid}/models").json()
        assert [(m["name"], m["version"], m["format"]) for m in models] == [("churn", 1, "sklearn")]
        assert models[0]["source"].startswith("job ") and models[0]["size"] > 0
        assert models[0]["createdById"]
        assert models[0]["meta"]["libraries"]["scikit-learn"] == "1.9.1"
    node = create_node(server, pid, "churn-v1", models=["churn"], configuration="s1.1")
    assert node["kind"] == "model" and node["spec"]["healthCheck"]["path"] == "/v2/health/ready"
    wait_healthy(server, pid, node["id"], timeout=300)

    host = server.gateway_url.removeprefix("http://")
    headers = {"x-node-id": node["id"], "authorization": f"Bearer {server.admin_token}"}
    client = triton.InferenceServerClient(host)
    assert client.is_server_ready(headers=headers)
    meta = client.get_model_metadata("churn", headers=headers)
    inp, out = meta["inputs"][0], meta["outputs"][0]
    probe = np.array(result["probe"], dtype=triton.triton_to_np_dtype(inp["datatype"]))
    tensor = triton.InferInput(inp["name"], list(probe.shape), inp["datatype"])
    tensor.set_data_from_numpy(probe)  # binary tensor data, as tritonclient sends by default
    answer = client.infer(
        "churn", [tensor], outputs=[triton.InferRequestedOutput(out["name"])], headers=headers
    )
    assert answer.as_numpy(out["name"]).tolist() == result["expected"]
    # JSON tensors too, and the same through an alias
    set_alias(server, pid, "churn", {node["id"]: 100}, create=True)
    gateway_ready(server, "churn", server.admin_token, path="/v2/health/ready")
    tensor = triton.InferInput(inp["name"], list(probe.shape), inp["datatype"])
    tensor.set_data_from_numpy(probe, binary_data=False)
    alias_headers = {"x-node-alias": "churn", "authorization": f"Bearer {server.admin_token}"}
    answer = client.infer(
        "churn",
        [tensor],
        outputs=[triton.InferRequestedOutput(out["name"], binary_data=False)],
        headers=alias_headers,
    )
    assert answer.as_numpy(out["name"]).tolist() == result["expected"]
    with pytest.raises(InferenceServerException):
        client.infer("nope", [tensor], headers=alias_headers)

    def scraped() -> str:
        with server.api() as api:
            text = api.get(f"/projects/{pid}/nodes/{node['id']}/telemetry").text
        return text if "nv_inference_request_success" in text and node["id"] in text else ""

    # the model server's own (Triton-named) metrics, scraped with the node's labels added
    text = wait_for("the instance's telemetry", scraped, timeout=30, every=0.5)
    assert 'model="churn"' in text and "instance_id=" in text


def test_outbox_refuses_links_to_files_the_workload_may_not_read(
    server: RunningServer, project: dict[str, Any]
) -> None:
    """A model directory is the workload's to write; Atoll (maybe root) must not follow a link in
    it to, say, the installation's secret key and hand that back as a model file."""
    import os
    import uuid

    pid = project["id"]
    box = server.data_dir / "projects" / pid / "model-outbox" / "attacker"
    box.mkdir(parents=True, exist_ok=True)
    secret = server.data_dir / "secret.key"
    assert secret.exists()

    def drop(build: Any) -> dict[str, Any]:
        key = uuid.uuid4().hex
        tmp = box / f".tmp-{key}"
        tmp.mkdir()
        build(tmp)
        os.rename(tmp, box / key)
        result = box / f"{key}.result.json"
        wait_for("Atoll's answer", result.exists, timeout=30)
        return dict(json.loads(result.read_text()))

    meta = {"name": "stolen", "format": "sklearn", "file": "model.joblib", "inputs": [], "outputs": []}

    def linked_file(d: Any) -> None:
        (d / "meta.json").write_text(json.dumps(meta))
        (d / "model.joblib").symlink_to(secret)

    def linked_meta(d: Any) -> None:
        (d / "meta.json").symlink_to(secret)

    assert "link" in drop(linked_file)["error"]
    assert "link" in drop(linked_meta)["error"]
    key = uuid.uuid4().hex
    (box / key).symlink_to(server.data_dir, target_is_directory=True)
    wait_for("Atoll's answer", (box / f"{key}.result.json").exists, timeout=30)
    assert "link" in json.loads((box / f"{key}.result.json").read_text())["error"]
    # a link in place of a whole outbox is not read either
    elsewhere = server.data_dir.parent / "elsewhere"
    planted = elsewhere / uuid.uuid4().hex
    planted.mkdir(parents=True)
    (planted / "meta.json").write_text(json.dumps({**meta, "format": "noop"}))
    (box.parent / "linked-box").symlink_to(elsewhere, target_is_directory=True)
    time.sleep(2.0)  # several rounds of the reader
    assert not list(elsewhere.glob("*.result.json"))
    with server.api() as api:
        assert not [m for m in api.get(f"/projects/{pid}/models").json() if m["name"] == "stolen"]
