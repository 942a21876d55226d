"""Native formats of XGBoost, LightGBM and CatBoost (their `save_model` files) and TorchScript.

Each library is imported only when a model of its format is saved, loaded or served; without it
the error names the package to install.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from atoll.serving.format_base import Format, Run, in_modules, n_features_input, need
from atoll.serving.signature import distribution_versions, tensor


def _class(meta: dict[str, Any], module: str, default: str) -> Any:
    """The class recorded in meta.json, if it lives in `module`; `default` (a name there) otherwise."""
    path = str(meta.get("class") or "")
    mod, _, name = path.rpartition(".")
    if mod.partition(".")[0] != module:
        mod, name = module, default
    return getattr(importlib.import_module(mod), name)


class XGBoost(Format):
    name, platform, file = "xgboost", "xgboost_json", "model.json"

    def owns(self, obj: Any) -> bool:
        return in_modules(obj, "xgboost")

    def detect_inputs(self, obj: Any) -> list[dict[str, Any]] | None:
        found = n_features_input(obj, "FP32")  # XGBoost computes in float32
        if found is None and callable(getattr(obj, "num_features", None)):
            found = [tensor("input__0", "FP32", [-1, obj.num_features()])]
        return found

    def write(self, obj: Any, path: Path) -> None:
        obj.save_model(str(path))

    def libraries(self, obj: Any) -> dict[str, str]:
        modules = {"xgboost", "numpy"}
        if type(obj).__name__ != "Booster":
            modules.add("sklearn")  # the XGB* estimators are scikit-learn estimators
        return distribution_versions(modules)

    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        need("xgboost", "xgboost", "an XGBoost model")
        model = _class(meta, "xgboost", "Booster")()
        model.load_model(str(path))
        return model

    def serve(self, path: Path, meta: dict[str, Any], threads: int) -> Run:
        model = self.load(path, meta)
        if type(model).__name__ == "Booster":
            model.set_param({"nthread": threads})
        else:
            model.set_params(n_jobs=threads)
        return self.runner(model, meta)

    def runner(self, model: Any, meta: dict[str, Any]) -> Run:
        if type(model).__name__ == "Booster":
            xgb = need("xgboost", "xgboost", "an XGBoost model")
            return lambda xs: [model.predict(xgb.DMatrix(xs[0]))]
        return lambda xs: [model.predict(xs[0])]


class LightGBM(Format):
    """LightGBM's text model file. It holds the Booster: served and loaded back as a
    `lightgbm.Booster`, whose predict() gives probabilities for classifiers."""

    name, platform, file = "lightgbm", "lightgbm_txt", "model.txt"

    def owns(self, obj: Any) -> bool:
        return in_modules(obj, "lightgbm")

    def detect_inputs(self, obj: Any) -> list[dict[str, Any]] | None:
        found = n_features_input(obj, "FP64")
        if found is None and callable(getattr(obj, "num_feature", None)):
            found = [tensor("input__0", "FP64", [-1, obj.num_feature()])]
        return found

    def write(self, obj: Any, path: Path) -> None:
        booster = getattr(obj, "booster_", obj)
        booster.save_model(str(path))

    def libraries(self, obj: Any) -> dict[str, str]:
        return distribution_versions({"lightgbm", "numpy"})

    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        lgb = need("lightgbm", "lightgbm", "a LightGBM model")
        return lgb.Booster(model_file=str(path))

    def serve(self, path: Path, meta: dict[str, Any], threads: int) -> Run:
        model = self.load(path, meta)
        return lambda xs: [model.predict(xs[0], num_threads=threads)]

    def runner(self, model: Any, meta: dict[str, Any]) -> Run:
        return lambda xs: [model.predict(xs[0])]


class CatBoost(Format):
    name, platform, file = "catboost", "catboost_cbm", "model.cbm"

    def owns(self, obj: Any) -> bool:
        return in_modules(obj, "catboost")

    def detect_inputs(self, obj: Any) -> list[dict[str, Any]] | None:
        found = n_features_input(obj, "FP64")
        names = getattr(obj, "feature_names_", None)
        if found is None and names:
            found = [tensor("input__0", "FP64", [-1, len(names)])]
        return found

    def write(self, obj: Any, path: Path) -> None:
        obj.save_model(str(path), format="cbm")

    def libraries(self, obj: Any) -> dict[str, str]:
        return distribution_versions({"catboost", "numpy"})

    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        need("catboost", "catboost", "a CatBoost model")
        model = _class(meta, "catboost", "CatBoost")()
        model.load_model(str(path), format="cbm")
        return model

    def serve(self, path: Path, meta: dict[str, Any], threads: int) -> Run:
        model = self.load(path, meta)
        return lambda xs: [model.predict(xs[0], thread_count=threads)]

    def runner(self, model: Any, meta: dict[str, Any]) -> Run:
        return lambda xs: [model.predict(xs[0])]


class TorchScript(Format):
    """torch.jit modules (a plain nn.Module is scripted first). The signature cannot be detected:
    save() needs inputs= and outputs=. Inputs are passed positionally in signature order."""

    name, platform, file = "torchscript", "pytorch_libtorch", "model.pt"
    single_io = False

    def owns(self, obj: Any) -> bool:
        return in_modules(obj, "torch")

    def write(self, obj: Any, path: Path) -> None:
        torch = need("torch", "torch", "a PyTorch model")
        if not isinstance(obj, torch.jit.ScriptModule):
            try:
                obj = torch.jit.script(obj)
            except Exception as e:
                raise ValueError(
                    f"cannot script this torch module ({e}); save torch.jit.trace(model, example) instead"
                ) from e
        torch.jit.save(obj, str(path))

    def libraries(self, obj: Any) -> dict[str, str]:
        return distribution_versions({"torch", "numpy"})

    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        torch = need("torch", "torch", "a TorchScript model")
        return torch.jit.load(str(path), map_location="cpu").eval()

    def serve(self, path: Path, meta: dict[str, Any], threads: int) -> Run:
        need("torch", "torch", "a TorchScript model").set_num_threads(threads)
        return self.runner(self.load(path, meta), meta)

    def runner(self, model: Any, meta: dict[str, Any]) -> Run:
        torch = need("torch", "torch", "a TorchScript model")

        def run(xs: list[Any]) -> list[Any]:
            with torch.inference_mode():
                out = model(*(torch.as_tensor(x.copy()) for x in xs))
            items = out if isinstance(out, list | tuple) else [out]
            return [t.detach().cpu().numpy() for t in items]

        return run


BOOSTING_FORMATS: list[Format] = [XGBoost(), LightGBM(), CatBoost(), TorchScript()]
