"""atoll.models: serialize/deserialize round trips, signatures, the outbox protocol of save(), load()."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import atoll.models
from atoll.models import deserialize, serialize
from atoll.serving import requirements
from atoll.serving.formats import load_for_serving, read_meta
from tests.serving.conftest import Data

SIGNATURE_IN = [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
SIGNATURE_OUT = [{"name": "label", "datatype": "INT64", "shape": [-1]}]


def test_sklearn_round_trip_and_signature(
    tmp_path: Path, logreg: LogisticRegression, iris_like: Data
) -> None:
    meta = serialize(logreg, tmp_path / "m")
    assert meta["format"] == "sklearn" and meta["file"] == "model.joblib"
    assert meta["class"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert meta["inputs"] == [{"name": "input__0", "datatype": "FP64", "shape": [-1, 4]}]
    assert meta["outputs"] == [{"name": "output__0", "datatype": "INT64", "shape": [-1]}]
    assert {"scikit-learn", "numpy", "joblib"} <= set(meta["libraries"])
    assert all(meta["libraries"].values())
    assert meta["size"] == (tmp_path / "m" / "model.joblib").stat().st_size
    assert json.loads((tmp_path / "m" / "meta.json").read_text()) == meta

    back = deserialize(tmp_path / "m")
    assert isinstance(back, LogisticRegression)
    np.testing.assert_array_equal(back.predict(iris_like.x), logreg.predict(iris_like.x))
    run = load_for_serving(tmp_path / "m", read_meta(tmp_path / "m"))
    np.testing.assert_array_equal(run([iris_like.x])[0], logreg.predict(iris_like.x))


def test_pipeline_libraries_and_string_labels(tmp_path: Path, iris_like: Data) -> None:
    labels = np.array(["setosa", "versicolor", "virginica"])[iris_like.y]
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(iris_like.x, labels)
    meta = serialize(pipe, tmp_path / "p")
    assert meta["outputs"] == [{"name": "output__0", "datatype": "BYTES", "shape": [-1]}]
    assert "scikit-learn" in meta["libraries"]
    assert list(deserialize(tmp_path / "p").predict(iris_like.x[:3])) == list(pipe.predict(iris_like.x[:3]))


def test_onnx_round_trip_signature_from_the_graph(
    tmp_path: Path, onnx_model: Any, logreg: LogisticRegression, iris_like: Data
) -> None:
    meta = serialize(onnx_model, tmp_path / "o")
    assert meta["format"] == "onnx" and meta["file"] == "model.onnx"
    assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta["outputs"] == [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ]
    assert "onnxruntime" in meta["libraries"]
    back = deserialize(tmp_path / "o")
    assert isinstance(back, onnx.ModelProto) and back == onnx_model
    label, proba = load_for_serving(tmp_path / "o", read_meta(tmp_path / "o"))(
        [iris_like.x.astype(np.float32)]
    )
    agree = (label == logreg.predict(iris_like.x)).mean()
    assert agree > 0.97 and proba.shape == (150, 3)


def test_zipmap_outputs_are_left_out_of_the_signature(
    tmp_path: Path, logreg: LogisticRegression, iris_like: Data
) -> None:
    from skl2onnx import to_onnx

    with_zipmap = to_onnx(logreg, iris_like.x[:1].astype(np.float32))
    meta = serialize(with_zipmap, tmp_path / "z")
    assert [o["name"] for o in meta["outputs"]] == ["output_label"]  # the ZipMap output is left out
    (label,) = load_for_serving(tmp_path / "z", read_meta(tmp_path / "z"))(
        [iris_like.x[:5].astype(np.float32)]
    )
    assert label.shape == (5,)


def test_manual_signature(tmp_path: Path, onnx_model: Any, logreg: LogisticRegression) -> None:
    meta = serialize(logreg, tmp_path / "m", inputs=SIGNATURE_IN, outputs=SIGNATURE_OUT)
    assert meta["inputs"] == SIGNATURE_IN and meta["outputs"] == SIGNATURE_OUT
    with pytest.raises(ValueError, match=r"inputs= was given without outputs=.*also set the outputs"):
        serialize(logreg, tmp_path / "x", inputs=SIGNATURE_IN)
    with pytest.raises(ValueError, match="outputs= was given without inputs="):
        serialize(logreg, tmp_path / "x", outputs=SIGNATURE_OUT)
    with pytest.raises(ValueError, match=r"inputs\[0\]\.datatype must be one of"):
        serialize(
            logreg,
            tmp_path / "x",
            inputs=[{"name": "a", "datatype": "FLOAT", "shape": [-1]}],
            outputs=SIGNATURE_OUT,
        )
    with pytest.raises(ValueError, match=r"outputs\[0\]\.shape must be a list of ints"):
        serialize(
            logreg,
            tmp_path / "x",
            inputs=SIGNATURE_IN,
            outputs=[{"name": "b", "datatype": "FP32", "shape": "-1"}],
        )
    with pytest.raises(ValueError, match="not inputs of the ONNX graph"):
        serialize(onnx_model, tmp_path / "x", inputs=SIGNATURE_IN, outputs=SIGNATURE_OUT)
    assert not (tmp_path / "x").exists()


def test_undetectable_and_unsupported_objects(tmp_path: Path) -> None:
    class Rule:  # predict() but no n_features_in_, defined here (a module a server can import)
        def predict(self, x: Any) -> Any:
            return x[:, 0] > 0

    with pytest.raises(ValueError, match=r"cannot detect the input signature.*pass inputs="):
        serialize(Rule(), tmp_path / "r")
    with pytest.raises(TypeError, match=r"cannot save a builtins.dict"):
        serialize({"weights": [1, 2]}, tmp_path / "d")


def test_requirements_for_a_server(model_dirs: dict[str, Path]) -> None:
    reqs = requirements([read_meta(model_dirs["iris"]), read_meta(model_dirs["iris-onnx"])])
    assert reqs[:2] == ["numpy", "httptools"]
    assert any(r.startswith("scikit-learn==") for r in reqs) and any(
        r.startswith("onnxruntime==") for r in reqs
    )
    assert sum(r.startswith("numpy") for r in reqs) == 2  # unpinned from the server, pinned from the model
    assert requirements([{"format": "onnx", "libraries": {}}])[-1] == "onnxruntime"


@pytest.mark.parametrize("bad", ["", "Churn", "-x", "a b", "x" * 64, "naïve", 7])
def test_bad_names(
    bad: Any, logreg: LogisticRegression, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATOLL_MODEL_OUTBOX", str(tmp_path))
    with pytest.raises(ValueError, match=r"name .* is not a valid model name"):
        atoll.models.save(logreg, bad)
    assert list(tmp_path.iterdir()) == []


# --- save(): the outbox protocol, with this test playing Atoll's directory reader ---------------


class Reader:
    """Reads `<uuid>/` dirs from the outbox and answers `<uuid>.result.json`, as documented."""

    def __init__(self, outbox: Path, answer: dict[str, Any] | None) -> None:
        self.outbox, self.answer = outbox, answer
        self.seen: list[dict[str, Any]] = []
        self.saw_tmp = False
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in self.outbox.iterdir():
                if entry.name.startswith(".tmp-"):
                    self.saw_tmp = True
                elif entry.is_dir() and self.answer is not None:
                    meta = json.loads((entry / "meta.json").read_text())
                    meta["files"] = sorted(p.name for p in entry.iterdir())
                    self.seen.append(meta)
                    result = (
                        {**self.answer, "name": meta["name"]} if "error" not in self.answer else self.answer
                    )
                    shutil.rmtree(entry)
                    (self.outbox / f"{entry.name}.result.json").write_text(json.dumps(result))
            time.sleep(0.01)

    def __enter__(self) -> Reader:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(5)


@pytest.fixture
def outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    box = tmp_path / "outbox"
    box.mkdir()
    monkeypatch.setenv("ATOLL_MODEL_OUTBOX", str(box))
    yield box


def test_save_returns_what_atoll_answers(outbox: Path, logreg: LogisticRegression) -> None:
    with Reader(outbox, {"id": "mdl-123", "version": 3}) as reader:
        answer = atoll.models.save(logreg, "churn", "logistic regression")
    assert answer == {"id": "mdl-123", "name": "churn", "version": 3}
    (meta,) = reader.seen
    assert meta["name"] == "churn" and meta["description"] == "logistic regression"
    assert meta["format"] == "sklearn" and meta["files"] == ["meta.json", "model.joblib"]
    assert "source" in meta and meta["size"] > 0
    assert list(outbox.iterdir()) == []  # no staging dir left, the answer read and removed


def test_save_error_and_timeout(outbox: Path, logreg: LogisticRegression) -> None:
    with Reader(outbox, {"error": "project quota for models is exhausted"}):
        with pytest.raises(RuntimeError, match="project quota for models is exhausted"):
            atoll.models.save(logreg, "churn")
    with Reader(outbox, None):  # nobody answers
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"is queued .* will appear"):
            atoll.models.save(logreg, "churn", wait=0.3)
        assert time.monotonic() - started < 3
    queued = atoll.models.save(logreg, "later", wait=0)
    assert queued["name"] == "later" and (outbox / queued["queued"] / "meta.json").is_file()


def test_save_outside_atoll_and_a_failed_serialization(
    logreg: LogisticRegression, outbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(TypeError, match="cannot save"):
        atoll.models.save(object(), "thing")
    assert list(outbox.iterdir()) == []  # nothing half-written left behind
    monkeypatch.delenv("ATOLL_MODEL_OUTBOX")
    with pytest.raises(
        RuntimeError, match=r"works inside an Atoll notebook or job \(ATOLL_MODEL_OUTBOX is not set\)"
    ):
        atoll.models.save(logreg, "churn")


# --- load() from a materialized ATOLL_MODELS_DIR ----------------------------------------------------


def test_load_latest_and_explicit_versions(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    logreg: LogisticRegression,
    onnx_model: Any,
    iris_like: Data,
) -> None:
    root = tmp_path / "models"
    serialize(onnx_model, root / "churn" / "2")
    serialize(logreg, root / "churn" / "10")
    serialize(logreg, root / "other" / "1")
    (root / "churn" / "notes").mkdir()  # not a version
    monkeypatch.setenv("ATOLL_MODELS_DIR", str(root))

    latest = atoll.models.load("churn")
    assert isinstance(latest, LogisticRegression)  # 10 > 2: versions compare as numbers
    np.testing.assert_array_equal(latest.predict(iris_like.x), logreg.predict(iris_like.x))
    assert isinstance(atoll.models.load("churn", version=2), onnx.ModelProto)
    assert [(m["name"], m["version"], m["format"]) for m in atoll.models.list()] == [
        ("churn", 10, "sklearn"),
        ("other", 1, "sklearn"),
    ]

    with pytest.raises(LookupError, match=r"model 'nope' not found; the models here are: churn, other"):
        atoll.models.load("nope")
    with pytest.raises(LookupError, match=r"model 'churn' has no version 3; its versions are \[2, 10\]"):
        atoll.models.load("churn", version=3)
    monkeypatch.delenv("ATOLL_MODELS_DIR")
    with pytest.raises(RuntimeError, match="ATOLL_MODELS_DIR is not set"):
        atoll.models.load("churn")


@pytest.mark.parametrize("library", ["xgboost", "lightgbm", "catboost"])
def test_boosting_native_formats(library: str, tmp_path: Path, iris_like: Data) -> None:
    """Runs where the library is installed (it is not one of Atoll's dependencies)."""
    lib = pytest.importorskip(library)
    target = iris_like.x @ np.array([1.0, -2.0, 0.5, 3.0])
    model = {
        "xgboost": lambda: lib.XGBRegressor(n_estimators=5),
        "lightgbm": lambda: lib.LGBMRegressor(n_estimators=5, verbose=-1),
        "catboost": lambda: lib.CatBoostRegressor(iterations=5, verbose=False),
    }[library]().fit(iris_like.x, target)
    meta = serialize(model, tmp_path / "b")
    assert meta["format"] == library and meta["inputs"][0]["shape"] == [-1, 4]
    assert any(name.startswith(library) for name in meta["libraries"])
    x = iris_like.x[:10].astype(np.float32 if meta["inputs"][0]["datatype"] == "FP32" else np.float64)
    (served,) = load_for_serving(tmp_path / "b", read_meta(tmp_path / "b"))([x])
    np.testing.assert_allclose(np.ravel(served), model.predict(x), rtol=1e-5)
    assert deserialize(tmp_path / "b") is not None
