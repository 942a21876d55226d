"""Real uv builds: bare venvs, a package from PyPI, the cache, concurrency and uv's own errors."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from atoll.envs import BuildFailed, Environment, EnvironmentBuilder, environment_key, plain_environment
from atoll.envs.interpreter import current_version
from atoll.errors import Invalid
from atoll.jobspec import PipOptions

PY = current_version()


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> EnvironmentBuilder:
    return EnvironmentBuilder(tmp_path_factory.mktemp("env-cache"))


def run(env: Environment, code: str) -> str:
    out = subprocess.run(
        [str(env.python), "-c", code],
        capture_output=True,
        text=True,
        env=env.activate(os.environ),
        check=True,
    )
    return out.stdout.strip()


def leftovers(builder: EnvironmentBuilder) -> list[str]:
    tmp = builder.cache_dir / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


def test_empty_requirements_give_a_bare_venv_quickly(builder: EnvironmentBuilder) -> None:
    started = time.monotonic()
    env = builder.build(PY, [])
    assert time.monotonic() - started < 10
    assert env.path == builder.cache_dir / "envs" / env.key and env.python.is_file()
    assert run(env, "import sys; print(sys.prefix)") == str(env.path)
    assert run(env, "import sys; print('%d.%d' % sys.version_info[:2])") == PY
    # nothing of Atoll's venv leaks in
    assert run(env, "import importlib.util as u; print(u.find_spec('yaml') is None)") == "True"
    assert leftovers(builder) == []


def test_package_from_pypi_imports_and_the_cache_is_shared(builder: EnvironmentBuilder) -> None:
    env = builder.build(PY, ["six==1.16.0"])
    assert run(env, "import six; print(six.__version__)") == "1.16.0"
    meta = env.path / "atoll-env.json"
    stamp = meta.stat().st_mtime_ns
    # the same request spelled differently: same key, same directory, no rebuild
    started = time.monotonic()
    again = builder.build(PY, ["Six == 1.16.0"])
    assert time.monotonic() - started < 0.5
    assert again == env and meta.stat().st_mtime_ns == stamp
    assert builder.lookup(env.key) == env
    # another process with its own builder over the same cache finds it too
    assert EnvironmentBuilder(builder.cache_dir).build(PY, ["six==1.16.0"]).path == env.path


def test_keys_depend_on_version_requirements_and_pip_options() -> None:
    base = environment_key(PY, ["six==1.16.0", "pyyaml"], None)
    assert base == environment_key(PY, ["PyYAML", "six==1.16.0"], PipOptions())
    assert base != environment_key("3.10", ["six==1.16.0", "pyyaml"], None)
    assert base != environment_key(PY, ["six==1.15.0", "pyyaml"], None)
    assert base != environment_key(PY, ["six==1.16.0", "pyyaml"], PipOptions(no_deps=True))
    assert base != environment_key(PY, ["six==1.16.0", "pyyaml"], PipOptions(extra_index_urls=("https://x",)))


def test_concurrent_builds_of_one_key_build_once(builder: EnvironmentBuilder) -> None:
    results: list[Environment] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(EnvironmentBuilder(builder.cache_dir).build(PY, ["six==1.15.0"]))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({r.path for r in results}) == 1
    assert run(results[0], "import six; print(six.__version__)") == "1.15.0"
    assert leftovers(builder) == []


def test_unknown_package_fails_with_uvs_message(builder: EnvironmentBuilder) -> None:
    with pytest.raises(BuildFailed) as e:
        builder.build(PY, ["definitely-not-a-package-atoll==9.9"])
    assert e.value.field == "env.python"
    assert "definitely-not-a-package-atoll" in e.value.detail
    assert "not found in the package registry" in e.value.detail
    assert "\n" not in e.value.detail and "Using Python" not in e.value.detail
    assert "No solution found" in e.value.output
    key = environment_key(PY, ["definitely-not-a-package-atoll==9.9"], None)
    assert builder.lookup(key) is None and not (builder.cache_dir / "envs" / key).exists()
    assert leftovers(builder) == []


def test_a_source_distribution_is_never_built(builder: EnvironmentBuilder) -> None:
    """Requirements are a tenant's and the build runs as the server's user: a package that has
    only a source distribution (its setup.py would run here) is refused, saying why."""
    with pytest.raises(BuildFailed) as e:
        builder.build(PY, ["ordereddict==1.1"])  # on PyPI as an sdist only
    assert "ordereddict" in e.value.detail and "wheels only" in e.value.detail, e.value.detail
    assert "%pip" in e.value.detail and "env.docker" in e.value.detail


def test_python_version_that_is_not_installed_names_the_field(builder: EnvironmentBuilder) -> None:
    with pytest.raises(Invalid) as e:
        builder.build("3.99", ["six==1.16.0"])
    assert e.value.field == "env.python.version"
    assert "Python 3.99 is not installed here" in e.value.detail and PY in e.value.detail
    assert PY in builder.available_pythons()


def test_requirements_are_checked_before_uv_sees_them(builder: EnvironmentBuilder) -> None:
    with pytest.raises(Invalid) as e:
        builder.build(PY, ["--index-url=https://evil.example/simple"])
    assert "not a valid requirement" in e.value.detail or "URL" in e.value.detail


def test_activate_puts_the_environment_first(builder: EnvironmentBuilder) -> None:
    env = builder.build(PY, [])
    activated = env.activate({"PATH": "/usr/bin", "PYTHONHOME": "/elsewhere", "KEEP": "1"})
    assert activated["PATH"] == f"{env.bin_dir}{os.pathsep}/usr/bin"
    assert activated["VIRTUAL_ENV"] == str(env.path) and activated["KEEP"] == "1"
    assert "PYTHONHOME" not in activated


def test_plain_environment_is_the_base_python() -> None:
    env = plain_environment()
    assert env.key == "plain" and env.python.is_file()
    out = subprocess.run(
        [str(env.python), "-c", "import sys; print(sys.prefix == sys.base_prefix)"],
        capture_output=True,
        text=True,
        env=env.activate(os.environ),
        check=True,
    )
    assert out.stdout.strip() == "True"
    assert "VIRTUAL_ENV" not in env.activate({"PATH": "", "VIRTUAL_ENV": sys.prefix})
