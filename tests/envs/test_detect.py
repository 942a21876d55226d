"""Root modules, local modules and pinned requirements, detected on small real projects (spec §5.3)."""

from __future__ import annotations

import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import pytest

from atoll.envs import (
    ROOTS_NOT_FOUND,
    Interpreter,
    PythonModule,
    detect_python_env,
    explore,
    generate_requirements,
    main_module,
    root_modules,
)
from atoll.envs.interpreter import current_version
from atoll.errors import Invalid
from atoll.jobspec import JobConfig, parse_config

YAML = f"PyYAML=={version('PyYAML')}"
HTTPX = f"httpx=={version('httpx')}"
CLICK = f"click=={version('click')}"
SQLALCHEMY = f"SQLAlchemy=={version('SQLAlchemy')}"
JINJA = f"Jinja2=={version('Jinja2')}"


def write(base: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return base


# ------------------------------------------------------------------------------- main module


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        ("python main.py --epochs 5", PythonModule("main.py")),
        ("python3 src/train.py", PythonModule("src/train.py")),
        ("python3.11 main.py", PythonModule("main.py")),
        (".venv/bin/python main.py", PythonModule("main.py")),
        ("/usr/bin/python3 main.py", PythonModule("main.py")),
        ("python -u x.py", PythonModule("x.py")),
        ("python -uB -O x.py", PythonModule("x.py")),
        ("python -W ignore -X dev x.py", PythonModule("x.py")),
        ("python -Wignore x.py", PythonModule("x.py")),
        ("python --check-hash-based-pycs never x.py", PythonModule("x.py")),
        ("python -m pkg.mod --flag", PythonModule("pkg.mod", is_name=True)),
        ("python3 -u -m pkg", PythonModule("pkg", is_name=True)),
        ("python -mpkg.cli", PythonModule("pkg.cli", is_name=True)),
        ("FOO=1 BAR=2 python main.py", PythonModule("main.py")),
        ("python 'my script.py' ${ARG}", PythonModule("my script.py")),
        ("python -c 'print(1)'", None),
        ("python -", None),
        ("python", None),
        ("bash run.sh", None),
        ("./run.sh", None),
        ("echo hello", None),
        ("definitely-not-a-command-atoll x.py", None),
    ],
)
def test_main_module_from_cmd(tmp_path: Path, cmd: str, expected: PythonModule | None) -> None:
    write(tmp_path, {"run.sh": "#!/bin/bash\necho hi\n"})
    assert main_module(cmd, tmp_path) == expected


def test_shebang_scripts(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "run.py": "#!/usr/bin/env python3\nprint(1)\n",
            "tool": "#!/usr/bin/env -S python3 -u\n",
            "venv_tool": f"#!{sys.executable}\n",
            "noshebang.py": "print(1)\n",
            "binary": "",
        },
    )
    (tmp_path / "binary").write_bytes(b"\x7fELF\x02\x01\x01\x00" + b"\xb6" * 2000)
    assert main_module("./run.py --x", tmp_path) == PythonModule("./run.py")
    assert main_module("tool", tmp_path) == PythonModule("tool")
    assert main_module("./venv_tool", tmp_path) == PythonModule("./venv_tool")
    assert main_module("./noshebang.py", tmp_path) is None
    assert main_module("./binary", tmp_path) is None


def test_root_modules_merge_normalize_and_drop_absolute(tmp_path: Path) -> None:
    launcher = write(tmp_path, {"bin/launcher": f"#!{sys.executable}\n"}) / "bin" / "launcher"
    messages: list[str] = []
    roots = root_modules(f"{launcher} ./main.py", ["other.py", "main.py"], tmp_path, messages)
    assert roots == [PythonModule("main.py"), PythonModule("other.py")]
    assert len(messages) == 1 and f"absolute path {launcher}" in messages[0]
    assert root_modules("python ./main.py", None, tmp_path) == [PythonModule("main.py")]


@pytest.mark.parametrize(
    ("cmd", "root_paths"), [("bash run.sh", None), ("torchrun main.py", []), ("python /abs/main.py", None)]
)
def test_no_root_module_is_datasphere_error(tmp_path: Path, cmd: str, root_paths: list[str] | None) -> None:
    with pytest.raises(Invalid) as e:
        root_modules(cmd, root_paths, tmp_path)
    assert (
        e.value.detail
        == ROOTS_NOT_FOUND
        == "Python root module(-s) was not found automatically or set in config"
    )
    assert e.value.field == "env.python.root-paths"


# ------------------------------------------------------------------------------------ explore

PROJECT = {
    "main.py": """
        import os, sys, json
        from collections import OrderedDict
        import yaml
        from utils import helper
        import pkg.sub
        from pkg2 import thing
        import importlib
        importlib.import_module("plugins.extra")

        def lazy():
            import httpx
            return httpx

        try:
            import no_such_module_atoll
        except ImportError:
            no_such_module_atoll = None

        if __name__ == "__main__":
            helper()
        """,
    "utils.py": "import helpers2\ndef helper(): pass\n",
    "helpers2.py": "import click\n",
    "pkg/__init__.py": "from .a import x\n",
    "pkg/a.py": "from ..unrelated import nothing\nimport sqlalchemy\nx = 1\n",
    "pkg/sub.py": "from . import b\n",
    "pkg/b.py": "from .deep.c import y\n",
    "pkg/deep/__init__.py": "",
    "pkg/deep/c.py": "import jinja2\ny = 2\n",
    "pkg2/__init__.py": "",
    "pkg2/thing.py": "import os.path\n",
    "plugins/extra.py": "",  # a namespace package, reached through import_module
    "unused.py": "import fastapi\n",
    "data/readme.txt": "not code",
}


def test_explore_finds_local_modules_and_pinned_requirements(tmp_path: Path) -> None:
    write(tmp_path, PROJECT)
    found = explore([PythonModule("main.py")], tmp_path)
    assert found.local_modules == ("helpers2.py", "main.py", "pkg", "pkg2", "plugins", "utils.py")
    assert found.local_files == (
        "helpers2.py",
        "main.py",
        "pkg/__init__.py",
        "pkg/a.py",
        "pkg/b.py",
        "pkg/deep/__init__.py",
        "pkg/deep/c.py",
        "pkg/sub.py",
        "pkg2/__init__.py",
        "pkg2/thing.py",
        "plugins/extra.py",
        "utils.py",
    )
    # stdlib left out, local modules left out, unused.py's fastapi never reached
    assert found.requirements == (CLICK, HTTPX, JINJA, YAML, SQLALCHEMY)
    assert any("no_such_module_atoll" in m for m in found.messages)


def test_local_module_shadows_an_installed_one(tmp_path: Path) -> None:
    write(tmp_path, {"main.py": "import yaml\nimport httpx\n", "yaml.py": "import json\n"})
    found = explore([PythonModule("main.py")], tmp_path)
    assert found.local_modules == ("main.py", "yaml.py")
    assert found.requirements == (HTTPX,)


def test_root_in_a_subdirectory_imports_its_siblings(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"src/train.py": "import model\n", "src/model.py": "import yaml\n", "model.py": "import httpx\n"},
    )
    found = explore([PythonModule("src/train.py")], tmp_path)
    # sys.path[0] is the script's directory: src/model.py wins over the top-level model.py
    assert found.local_modules == ("src/model.py", "src/train.py")
    assert found.requirements == (YAML,)


def test_dash_m_roots_local_and_library(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"pkg/__init__.py": "", "pkg/cli.py": "import httpx\nfrom pkg import core\n", "pkg/core.py": ""},
    )
    found = explore([PythonModule("pkg.cli", is_name=True)], tmp_path)
    assert found.local_modules == ("pkg",)
    assert found.local_files == ("pkg/__init__.py", "pkg/cli.py", "pkg/core.py")
    assert found.requirements == (HTTPX,)
    # `python -m uvicorn app:app`: the library itself is a requirement
    lib = explore([PythonModule("uvicorn", is_name=True)], tmp_path)
    assert lib.requirements == (f"uvicorn=={version('uvicorn')}",) and lib.local_modules == ()


def test_syntax_errors(tmp_path: Path) -> None:
    write(tmp_path, {"main.py": "import broken\n", "broken.py": "print 'py2'\n", "bad_root.py": "def (:\n"})
    found = explore([PythonModule("main.py")], tmp_path)
    assert found.local_modules == ("broken.py", "main.py")
    assert any("broken.py is not valid Python 3, line 1" in m for m in found.messages)
    with pytest.raises(Invalid) as e:
        explore([PythonModule("bad_root.py")], tmp_path)
    assert e.value.field == "env.python" and "bad_root.py is not valid Python 3" in e.value.detail


def test_missing_or_outside_roots(tmp_path: Path) -> None:
    for root, fragment in (("nope.py", "was not found"), ("../outside.py", "outside the project")):
        with pytest.raises(Invalid) as e:
            explore([PythonModule(root)], tmp_path / "proj")
        assert e.value.field == "env.python.root-paths" and fragment in e.value.detail


def test_generate_requirements(tmp_path: Path) -> None:
    write(tmp_path, PROJECT)
    assert generate_requirements(["main.py"], tmp_path) == [CLICK, HTTPX, JINJA, YAML, SQLALCHEMY]
    assert generate_requirements([tmp_path / "unused.py"], tmp_path) == [f"fastapi=={version('fastapi')}"]
    assert generate_requirements(["helpers2.py", "pkg2/thing.py"], tmp_path) == [CLICK]
    with pytest.raises(Invalid) as e:
        generate_requirements(["missing.py"], tmp_path)
    assert "no such Python file" in e.value.detail


def test_inspecting_another_interpreter(tmp_path: Path) -> None:
    other = Interpreter.inspect(sys.executable)
    assert other.version == current_version()
    assert other.distributions["yaml"] == (("PyYAML", version("PyYAML")),)
    assert "os" in other.stdlib and "sys" in other.stdlib
    with pytest.raises(Invalid) as e:
        Interpreter.inspect(str(tmp_path / "no-python"))
    assert e.value.field == "env.python"


# ------------------------------------------------------------------------- detect_python_env


def config(text: str) -> JobConfig:
    return parse_config(textwrap.dedent(text))[0]


def test_no_python_env_is_plain(tmp_path: Path) -> None:
    assert detect_python_env(config("cmd: ./run.sh\n"), tmp_path) is None


def test_auto_detects_everything(tmp_path: Path) -> None:
    write(tmp_path, PROJECT)
    spec = detect_python_env(config("cmd: python main.py\nenv: {python: auto}\n"), tmp_path)
    assert spec is not None
    assert spec.version == current_version()
    assert spec.requirements == (CLICK, HTTPX, JINJA, YAML, SQLALCHEMY)
    assert spec.local_modules == ("helpers2.py", "main.py", "pkg", "pkg2", "plugins", "utils.py")
    assert spec.root_modules == (PythonModule("main.py"),)


def test_auto_with_extra_roots_and_pip_options(tmp_path: Path) -> None:
    write(tmp_path, {"main.py": "import yaml\n", "worker.py": "import httpx\n"})
    cfg = config(
        """
        cmd: python main.py
        env:
          python: {type: auto, root-paths: [worker.py], pip: {extra-index-urls: [https://x/simple]}}
        """
    )
    spec = detect_python_env(cfg, tmp_path)
    assert spec is not None
    assert spec.requirements == (HTTPX, YAML) and spec.local_modules == ("main.py", "worker.py")
    assert spec.pip.extra_index_urls == ("https://x/simple",)


def test_fully_manual_inspects_nothing(tmp_path: Path) -> None:
    write(tmp_path, {"requirements.txt": "six==1.16.0\n--no-deps\n--extra-index-url https://mirror/simple\n"})
    cfg = config(
        """
        cmd: ./run.sh
        env:
          python:
            type: manual
            version: "3.99"
            requirements-file: requirements.txt
            local-paths: []
            pip: {extra-index-urls: [https://other/simple]}
        """
    )
    spec = detect_python_env(cfg, tmp_path)  # no root module in cmd, and none needed
    assert spec is not None
    assert spec.version == "3.99" and spec.requirements == ("six==1.16.0",) and spec.local_modules == ()
    assert spec.pip.no_deps and spec.pip.extra_index_urls == ("https://other/simple", "https://mirror/simple")
    assert spec.root_modules == ()


def test_manual_fills_in_what_is_missing(tmp_path: Path) -> None:
    write(tmp_path, {"main.py": "import yaml\nimport lib\n", "lib.py": "", "requirements.txt": "httpx\n"})
    only_version = detect_python_env(
        config("cmd: python main.py\nenv: {python: {type: manual, version: '3.10'}}\n"), tmp_path
    )
    assert only_version is not None
    assert only_version.version == "3.10"
    assert only_version.requirements == (YAML,) and only_version.local_modules == ("lib.py", "main.py")
    reqs_and_paths = detect_python_env(
        config(
            "cmd: bash go.sh\n"
            "env: {python: {type: manual, requirements-file: requirements.txt, local-paths: [lib.py]}}\n"
        ),
        tmp_path,
    )
    assert reqs_and_paths is not None  # only the version is missing: no root module needed
    assert reqs_and_paths.version == current_version()
    assert reqs_and_paths.requirements == ("httpx",) and reqs_and_paths.local_modules == ("lib.py",)
    only_paths = detect_python_env(
        config("cmd: python main.py\nenv: {python: {type: manual, local-paths: [lib.py]}}\n"), tmp_path
    )
    assert only_paths is not None
    assert only_paths.local_modules == ("lib.py",) and only_paths.requirements == (YAML,)


def test_missing_requirements_file_and_missing_root(tmp_path: Path) -> None:
    with pytest.raises(Invalid) as e:
        detect_python_env(
            config("cmd: x\nenv: {python: {type: manual, requirements-file: nope.txt, local-paths: []}}\n"),
            tmp_path,
        )
    assert e.value.field == "env.python.requirements-file" and "nope.txt was not found" in e.value.detail
    with pytest.raises(Invalid) as e:
        detect_python_env(config("cmd: bash run.sh\nenv: {python: auto}\n"), tmp_path)
    assert e.value.detail == ROOTS_NOT_FOUND
