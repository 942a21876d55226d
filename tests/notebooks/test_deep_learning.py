"""The deep-learning built-in environment (issue 17): chosen in a project's settings, built for
its first user (8 GB: not at every start), and a notebook then imports torch and transformers.
The tests' environment cache keeps the build across runs; the first one here took about 2 min."""

from __future__ import annotations

import time

from atoll.envs.builtins import DEEPLEARNING
from tests.notebooks.conftest import Kernel, new_project, open_and_wait, stop_and_wait
from tests.support.server import RunningServer

BUILD_S = 1800  # a first build downloads about 3 GB of wheels


def test_a_notebook_in_the_deep_learning_environment(atoll: RunningServer) -> None:
    pid = new_project(atoll, "dl-notebook", defaultEnvironment="deeplearning")["id"]
    deadline = time.monotonic() + BUILD_S
    with atoll.api() as api:
        # Choosing it queued its build; the page, the API and `atoll env list` follow it.
        while (env := api.get("/environments/deeplearning").json())["status"] != "READY":
            assert env["status"] in ("PENDING", "BUILDING"), env
            assert time.monotonic() < deadline, env
            time.sleep(1)
    assert env["packagesLocked"] == len(DEEPLEARNING.requirements())
    open_and_wait(atoll, pid)
    try:
        kernel = Kernel(atoll, pid)
        imports = "import torch, transformers, torchvision, sklearn"
        code = f"{imports}\nprint(torch.__version__, transformers.__version__)"
        torch_version, transformers_version = kernel.run(code, timeout=180).split()
        kernel.close()
        assert torch_version.split("+")[0] == DEEPLEARNING.version_of("torch")
        assert transformers_version == DEEPLEARNING.version_of("transformers")
    finally:
        stop_and_wait(atoll, pid)
