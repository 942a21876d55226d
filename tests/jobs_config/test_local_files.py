"""Client-side checks: local files exist, per-file 5 GB and total 10 GB limits (spec §5.8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.errors import Invalid
from atoll.jobspec import EnvVar, LocalFile, check_local_files, parse_config, resolve_env_vars
from atoll.jobspec.units import GIB


def sparse(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.truncate(size)
    return path


def test_inputs_files_dirs_and_python_paths(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "x.bin").write_bytes(b"x" * 10)
    (tmp_path / "data" / "sub" / "y.bin").write_bytes(b"y" * 5)
    (tmp_path / "requirements.txt").write_text("six\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "m.py").write_text("")
    abs_input = tmp_path.parent / f"{tmp_path.name}-outside.json"
    abs_input.write_text("{}")
    cfg, _ = parse_config(
        f"cmd: x ${{P}}\ninputs: [a.txt, data/, {{{abs_input}: P}}]\n"
        "env: {python: {type: manual, requirements-file: requirements.txt, local-paths: [lib]}}\n"
    )
    files = check_local_files(cfg, tmp_path, local_modules=["lib/m.py"])
    assert files == [
        LocalFile("a.txt", 5, False, "inputs[0]"),
        LocalFile("data/", 15, True, "inputs[1]"),
        LocalFile(str(abs_input), 2, False, "inputs[2]"),
        LocalFile("requirements.txt", 4, False, "env.python.requirements-file"),
        LocalFile("lib", 0, True, "env.python.local-paths[0]"),
        LocalFile("lib/m.py", 0, False, "local-modules[0]"),
    ]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ("cmd: x\ninputs: [a.txt, missing.txt]\n", "inputs[1]"),
        (
            "cmd: x\nenv: {python: {type: manual, requirements-file: nope.txt}}\n",
            "env.python.requirements-file",
        ),
        ("cmd: x\nenv: {python: {type: manual, local-paths: [a.txt, gone/]}}\n", "env.python.local-paths[1]"),
        ("cmd: x\nenv: {python: {type: auto, root-paths: [nope.py]}}\n", "env.python.root-paths[0]"),
    ],
)
def test_missing_paths_name_the_field(tmp_path: Path, config: str, field: str) -> None:
    (tmp_path / "a.txt").write_text("a")
    cfg, _ = parse_config(config)
    with pytest.raises(Invalid) as e:
        check_local_files(cfg, tmp_path)
    assert e.value.field == field and "no such file or directory" in e.value.detail


def test_each_file_at_most_5_gb(tmp_path: Path) -> None:
    sparse(tmp_path / "ok.bin", 5 * GIB)
    sparse(tmp_path / "big.bin", 5 * GIB + 1)
    cfg, _ = parse_config("cmd: x\ninputs: [ok.bin]\n")
    assert check_local_files(cfg, tmp_path)[0].size == 5 * GIB
    cfg, _ = parse_config("cmd: x\ninputs: [ok.bin, big.bin]\n")
    with pytest.raises(Invalid) as e:
        check_local_files(cfg, tmp_path)
    assert (
        e.value.field == "inputs[1]" and "big.bin is 5.0 GB, over the 5.0 GB limit per file" in e.value.detail
    )


def test_a_big_file_inside_a_directory_is_named(tmp_path: Path) -> None:
    sparse(tmp_path / "d" / "inner" / "huge.bin", 6 * GIB)
    cfg, _ = parse_config("cmd: x\ninputs: [d]\n")
    with pytest.raises(Invalid) as e:
        check_local_files(cfg, tmp_path)
    assert e.value.field == "inputs[0]" and "d/inner/huge.bin is 6.0 GB" in e.value.detail


def test_total_at_most_10_gb_including_local_modules(tmp_path: Path) -> None:
    for name in ("a", "b"):
        sparse(tmp_path / f"{name}.bin", 4 * GIB)
    sparse(tmp_path / "mod" / "big.py", 3 * GIB)
    cfg, _ = parse_config("cmd: x\ninputs: [a.bin, b.bin, a.bin]\nenv: {python: auto}\n")
    assert (
        sum(f.size for f in check_local_files(cfg, tmp_path)) == 12 * GIB
    )  # a.bin listed twice, counted once
    with pytest.raises(Invalid) as e:
        check_local_files(cfg, tmp_path, local_modules=["mod"])
    assert e.value.field == "inputs"
    assert (
        "total size of input files and Python local modules is 11.0 GB, over the 10.0 GB limit"
        in e.value.detail
    )


def test_resolve_env_vars_from_the_submitters_environment() -> None:
    cfg, _ = parse_config("cmd: x\nenv:\n  vars:\n    - HOME_DIR\n    - FIXED: v\n")
    resolved = resolve_env_vars(cfg, {"HOME_DIR": "/home/me", "OTHER": "x"})
    assert resolved.env.vars == (EnvVar("HOME_DIR", "/home/me"), EnvVar("FIXED", "v"))
    with pytest.raises(Invalid) as e:
        resolve_env_vars(cfg, {})
    assert e.value.field == "env.vars[0]" and "HOME_DIR is not set" in e.value.detail
