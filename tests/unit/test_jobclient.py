"""The pure parts of the job client: deterministic zips, upload planning, local checks, paths."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from atoll.client import AtollError
from atoll.jobclient import (
    MODULE_EXCLUDES,
    Blob,
    failure_message,
    make_blob,
    output_path,
    plan_uploads,
    prepare_job,
    safe_extract,
    zip_dir,
)


def _tree(root: Path) -> Path:
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)
    (root / "sub" / "deep" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "sub" / "deep" / "run.sh").chmod(0o755)
    return root


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_zip_is_byte_identical_for_equal_trees(tmp_path: Path) -> None:
    one = _tree(tmp_path / "one")
    two = _tree(tmp_path / "two")
    # Different times and an unusual umask-like mode on a plain file change nothing.
    os.utime(two / "a.txt", (1, 1))
    (two / "a.txt").chmod(0o600)
    zip_dir(one, tmp_path / "one.zip")
    zip_dir(two, tmp_path / "two.zip")
    assert _digest(tmp_path / "one.zip") == _digest(tmp_path / "two.zip")
    (two / "a.txt").write_text("alpha!\n")
    zip_dir(two, tmp_path / "three.zip")
    assert _digest(tmp_path / "three.zip") != _digest(tmp_path / "one.zip")


def test_zip_keeps_empty_dirs_and_the_executable_bit(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    zip_dir(src, tmp_path / "src.zip")
    with zipfile.ZipFile(tmp_path / "src.zip") as z:
        names = z.namelist()
        assert names == sorted(names)
        assert "empty/" in names and "sub/deep/run.sh" in names
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in z.infolist())
    out = tmp_path / "out"
    out.mkdir()
    safe_extract(tmp_path / "src.zip", out)
    assert (out / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()
    assert (out / "empty").is_dir()
    assert os.access(out / "sub" / "deep" / "run.sh", os.X_OK)
    assert not os.access(out / "a.txt", os.X_OK)


def test_module_zips_leave_out_caches(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "__pycache__" / "x.pyc").write_bytes(b"\0")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    blob = make_blob("pkg", None, pkg, scratch, MODULE_EXCLUDES)
    assert blob.is_dir and blob.size == blob.file.stat().st_size
    with zipfile.ZipFile(blob.file) as z:
        assert z.namelist() == ["__init__.py"]


def test_extract_refuses_entries_outside_the_directory(tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../escaped.txt", "x")
    (tmp_path / "dest").mkdir()
    with pytest.raises(AtollError, match="outside"):
        safe_extract(evil, tmp_path / "dest")
    assert not (tmp_path / "escaped.txt").exists()


def _blob(path: str, sha: str) -> Blob:
    return Blob(path, None, Path(path), Path(path), sha, 1)


def test_upload_plan_sends_each_missing_content_once_in_order() -> None:
    blobs = [_blob("a", "1" * 64), _blob("b", "2" * 64), _blob("a-again", "1" * 64), _blob("c", "3" * 64)]
    plan = plan_uploads(blobs, ["3" * 64, "1" * 64])
    assert [b.path for b in plan] == ["a", "c"]
    assert plan_uploads(blobs, []) == []
    with pytest.raises(AtollError, match="does not have"):
        plan_uploads(blobs, ["9" * 64])


def test_prepare_hashes_inputs_and_zips_directories(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("hello\n")
    _tree(tmp_path / "data")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "cmd: cat ${IN}\ninputs:\n  - in.txt: IN\n  - data\n  - in.txt\n"
        "env:\n  vars:\n    - FROM_HERE\n    - FIXED: '1'\n"
    )
    with prepare_job(cfg, base_dir=tmp_path, environ={"FROM_HERE": "yes"}) as prepared:
        first, data, plain = prepared.inputs
        assert (first.var, first.sha256) == ("IN", hashlib.sha256(b"hello\n").hexdigest())
        assert plain.sha256 == first.sha256 and plain.var is None
        assert data.is_dir and data.file.suffix == ".zip" and data.file.exists()
        assert prepared.env_vars == {"FROM_HERE": "yes", "FIXED": "1"}
        body = prepared.body()
        assert body["python"] is None and body["modules"] == []
        assert body["inputs"][1] == {
            "path": "data",
            "var": None,
            "sha256": data.sha256,
            "size": data.size,
            "isDir": True,
            "executable": False,
        }
        scratch = data.file.parent
    assert not scratch.exists()  # closing drops the zips
    # The same directory prepared again hashes the same: re-runs upload nothing.
    with prepare_job(cfg, base_dir=tmp_path, environ={"FROM_HERE": "no"}) as again:
        assert again.inputs[1].sha256 == data.sha256


@pytest.mark.parametrize(
    ("config", "environ", "expected"),
    [
        ("name: x\n", {}, "config.yaml: cmd is required"),
        ("cmd: echo\ninputs: [missing.txt]\n", {}, "config.yaml: inputs[0]: no such file or directory"),
        ("cmd: echo\ncloud-instance-types: {a: b}\n", {}, "config.yaml: cloud-instance-types must be a list"),
        ("cmd: echo\nenv: {vars: [NOT_SET_HERE]}\n", {}, "config.yaml: env.vars[0]"),
        ("cmd: echo ${X}\n", {}, "config.yaml: cmd: ${X} is not defined"),
        ("cmd: [unclosed\n", {}, "config.yaml: config is not valid YAML"),
    ],
)
def test_prepare_refuses_bad_configs_in_one_line(
    tmp_path: Path, config: str, environ: dict[str, str], expected: str
) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config)
    with pytest.raises(AtollError) as e:
        prepare_job(cfg, base_dir=tmp_path, environ=environ)
    message = str(e.value).replace(str(tmp_path) + "/", "")
    assert message.startswith(expected) and "\n" not in message


def test_prepare_detects_the_python_environment(tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("import yaml\n")
    (tmp_path / "main.py").write_text("import helper\nif __name__ == '__main__':\n    pass\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("cmd: python main.py\nenv:\n  python: auto\n")
    with prepare_job(cfg, base_dir=tmp_path) as prepared:
        assert [m.path for m in prepared.modules] == ["helper.py", "main.py"]
        assert prepared.python is not None
        assert [r.split("==")[0] for r in prepared.python["requirements"]] == ["PyYAML"]


def test_output_paths() -> None:
    base = Path("/work/here")
    assert output_path("res/out.txt", base) == base / "res" / "out.txt"
    assert output_path("/tmp/abs.txt", base) == Path("/tmp/abs.txt")
    with pytest.raises(AtollError):
        output_path("../up.txt", base)


def test_failure_messages() -> None:
    job = {
        "id": "job-1",
        "status": "ERROR",
        "returnCode": 3,
        "statusDetails": "the program exited with code 3",
    }
    assert failure_message(job) == "job job-1 failed: program exited with code 3"
    job = {"id": "job-1", "status": "ERROR", "returnCode": None, "statusDetails": "preparing failed: boom"}
    assert failure_message(job) == "job job-1 failed: preparing failed: boom"
    assert (
        failure_message({"id": "job-1", "status": "CANCELLED", "statusDetails": ""})
        == "job job-1 was cancelled"
    )
    assert failure_message({"id": "job-1", "status": "SUCCESS"}) is None
