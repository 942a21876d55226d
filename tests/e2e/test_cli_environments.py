"""`atoll env` end to end (issue 17): a project environment on top of the built-in one, built by
the real server with uv, chosen in the project's settings and run by a job without env.python; a
build that fails says why and keeps uv's log; bad input is one line and changes nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.cli import Cli
from tests.e2e.conftest import UserFactory

COMMUNITY, PROJECT = "envs-e2e", "envs-e2e/envs"
# A tiny pure-Python package the built-in environment does not have.
EXTRA = "cowsay==6.1"


@pytest.fixture(scope="module")
def project(admin: Cli) -> str:
    admin.ok("community", "create", COMMUNITY)
    pid = str(admin.json("project", "create", "envs", "-c", COMMUNITY)["id"])
    admin.ok("project", "settings", "set", PROJECT, "--default-configuration", "s1.1")
    return pid


def _job(admin: Cli, tmp_path: Path, cmd: str) -> str:
    (tmp_path / "config.yaml").write_text(f"cmd: {cmd}\n")
    r = admin.ok("job", "execute", "-p", PROJECT, "-c", str(tmp_path / "config.yaml"), env={"COLUMNS": "200"})
    return r.out + r.err


def test_a_project_environment_on_top_of_the_built_in_one(admin: Cli, project: str, tmp_path: Path) -> None:
    env = admin.json("env", "create", "cows", "-p", PROJECT, "--base", "datascience", "--requirement", EXTRA)
    assert env["status"] == "READY", env  # --wait (the default) follows the build to its end
    assert env["base"] == "datascience" and env["requirements"] == [EXTRA] and not env["builtIn"]
    assert env["packagesLocked"] == admin.json("env", "get", "datascience")["packagesLocked"] + 1
    listed = {e["name"]: e for e in admin.json("env", "list", "-p", PROJECT)}
    assert set(listed) >= {"datascience", "cows"} and listed["cows"]["projectId"] == project
    assert "cows" not in {e["name"] for e in admin.json("env", "list")}  # a project's own: with -p only
    assert f"{EXTRA}\n" in admin.ok("env", "log", "cows", "-p", PROJECT).out  # what it was built from

    settings = admin.json("project", "settings", "set", PROJECT, "--default-environment", "cows")
    assert settings["defaultEnvironment"] == "cows"
    out = _job(
        admin, tmp_path, 'python3 -c "import cowsay, sklearn; print(cowsay.__name__, sklearn.__name__)"'
    )
    assert "cowsay sklearn" in out and "environment: cows" in out, out
    # The project runs in it: it cannot go until the project chooses another.
    line = admin.fail("env", "delete", "cows", "-p", PROJECT, "--yes")
    assert "default environment" in line, line
    admin.ok("project", "settings", "set", PROJECT, "--default-environment", "none")
    admin.ok("env", "delete", "cows", "-p", PROJECT, "--yes")
    assert "cows" not in {e["name"] for e in admin.json("env", "list", "-p", PROJECT)}


def test_a_failing_build_says_why_and_can_be_tried_again(admin: Cli, project: str) -> None:
    r = admin.run("env", "create", "broken", "-p", PROJECT, "--requirement", "atoll-no-such-package-9f3==1.0")
    assert r.code == 1 and "Traceback" not in r.err, str(r)
    progress, line = r.err.strip().splitlines()[:-1], r.err.strip().splitlines()[-1]
    assert all(p.startswith("broken: ") for p in progress), str(r)  # what the build does, as it goes
    assert line.startswith("error: broken failed to build") and "atoll-no-such-package-9f3" in line, line
    assert f"`atoll env log broken -p {project}`" in line, line
    env = admin.json("env", "get", "broken", "-p", PROJECT)
    assert env["status"] == "FAILED" and "atoll-no-such-package-9f3" in env["detail"]
    assert "atoll-no-such-package-9f3" in admin.ok("env", "log", "broken", "-p", PROJECT).out
    again = admin.json("env", "build", "broken", "-p", PROJECT, "--no-wait")
    assert again["status"] in ("PENDING", "BUILDING", "FAILED")
    deadline = time.monotonic() + 120
    while admin.json("env", "get", "broken", "-p", PROJECT)["status"] != "FAILED":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    admin.ok("env", "delete", "broken", "-p", PROJECT, "--yes")


def test_bad_input_is_one_line_and_makes_nothing(admin: Cli, project: str, tmp_path: Path) -> None:
    before = admin.json("env", "list", "-p", PROJECT)
    cases = {
        ("Bad_Name", "--requirement", EXTRA): "name must be 1-63 characters",
        ("x1", "--base", "nope"): "base: no built-in environment 'nope'",
        ("x2", "--requirement", "numpy>>1"): "requirements[0]",
        ("x3", "--requirement", EXTRA, "--python", "three"): "pythonVersion: write major.minor",
        ("datascience", "--requirement", EXTRA): "built-in environment's name",
    }
    for args, expected in cases.items():
        line = admin.fail("env", "create", *args, "-p", PROJECT)
        assert expected in line, (args, line)
    (tmp_path / "req.txt").write_text("cowsay==6.1\n--index-url https://example.invalid/simple\n")
    line = admin.fail("env", "create", "x4", "-p", PROJECT, "-r", str(tmp_path / "req.txt"), code=2)
    assert "not supported" in line, line
    assert "give requirements" in admin.fail("env", "create", "x5", "-p", PROJECT, code=2)
    line = admin.fail("project", "settings", "set", PROJECT, "--default-environment", "nope")
    assert "no environment 'nope'" in line, line
    line = admin.fail("env", "delete", "datascience", "--yes")
    assert "cannot be deleted" in line or "403" in line or "Forbidden" in line, line
    assert admin.json("env", "list", "-p", PROJECT) == before


def test_a_viewer_sees_but_does_not_make(admin: Cli, project: str, make_user: UserFactory) -> None:
    viewer = make_user("env-viewer")
    admin.ok("member", "add", "-p", PROJECT, "--user", "env-viewer", "--role", "viewer")
    assert {"datascience"} <= {e["name"] for e in viewer.json("env", "list", "-p", project)}
    line = viewer.fail("env", "create", "mine", "-p", project, "--requirement", EXTRA)
    assert "project Editor" in line, line
