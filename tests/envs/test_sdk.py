"""The directory that puts ``atoll.models``/``atoll.serving`` on a workload's PYTHONPATH."""

from __future__ import annotations

import threading
from pathlib import Path

from atoll.envs.sdk import PACKAGE, sdk_path


def test_sdk_path_holds_only_a_link_to_this_package(tmp_path: Path) -> None:
    root = sdk_path(tmp_path)
    assert [p.name for p in root.iterdir()] == ["atoll"]
    assert (root / "atoll").resolve() == PACKAGE


def test_concurrent_callers_all_get_it(tmp_path: Path) -> None:
    """Jobs, notebooks and nodes prepare in several threads at once (a restart starts many)."""
    for i in range(20):
        data = tmp_path / str(i)
        errors: list[BaseException] = []

        def call(data: Path = data, errors: list[BaseException] = errors) -> None:
            try:
                sdk_path(data)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert [p.name for p in (data / "sdk").iterdir()] == ["atoll"]
