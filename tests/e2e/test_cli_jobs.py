"""`atoll job` end to end: the real server, the real CLI in a project directory, real jobs.

Configs use s1.1 (1 vCPU): this machine's pool has 2 CPUs, so every test leaves no job
running behind it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cli import ATOLL, Cli, Result
from tests.support.server import RunningServer

PROJECT = "jobs-e2e/jobs-prj"
TERMINAL = ("SUCCESS", "ERROR", "CANCELLED")

MAIN = """
name: e2e-main
desc: inputs, a directory and outputs
cmd: >
  echo "first line"; cat notes.txt; ls data data/sub;
  tr a-z A-Z < ${PARAMS} > ${RESULT}; mkdir -p report; cp data/sub/deep.txt report/copy.txt;
  echo "to stderr" >&2; echo done
inputs:
  - notes.txt
  - data
  - params.txt: PARAMS
outputs:
  - out/result.txt: RESULT
  - report
cloud-instance-types: [s1.1]
"""


class ProjectCli(Cli):
    """The admin's `atoll`, run from a project directory (paths in config.yaml are relative to it)."""

    def __init__(self, base: Cli, cwd: Path) -> None:
        super().__init__(base.config_dir)
        self.cwd = cwd

    def run(self, *args: str, env: dict[str, str] | None = None, stdin: str = "") -> Result:
        proc = subprocess.run(
            [ATOLL, *args],
            env={**self.env, **(env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=self.cwd,
        )
        return Result(args, proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [ATOLL, *args],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture(scope="module")
def project_id(admin: Cli) -> str:
    admin.ok("community", "create", "jobs-e2e")
    created = admin.json("project", "create", "jobs-prj", "-c", "jobs-e2e")
    admin.ok("project", "settings", "set", PROJECT, "--default-configuration", "s1.1")
    return str(created["id"])


@pytest.fixture
def cli(admin: Cli, project_id: str, tmp_path: Path) -> ProjectCli:
    return ProjectCli(admin, tmp_path)


def _job(server: RunningServer, job_id: str) -> dict[str, Any]:
    with server.api() as api:
        r = api.get(f"/jobs/{job_id}")
        r.raise_for_status()
        return dict(r.json())


def _wait(server: RunningServer, job_id: str, states: tuple[str, ...] = TERMINAL) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        job = _job(server, job_id)
        if job["status"] in states:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached {states}: {_job(server, job_id)}")


def _job_count(cli: Cli) -> int:
    return len(cli.json("job", "list", "-p", PROJECT))


def _one_error(r: Result) -> str:
    """A failed command: non-zero, exactly one `error:` line (the last), no traceback."""
    assert r.code != 0, str(r)
    assert "Traceback" not in r.err, str(r)
    errors = [line for line in r.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and r.err.strip().splitlines()[-1] == errors[0], str(r)
    return errors[0]


def _project_dir(root: Path) -> None:
    (root / "notes.txt").write_text("some notes\n")
    (root / "params.txt").write_text("lower case\n")
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "a.txt").write_text("a\n")
    (root / "data" / "sub" / "deep.txt").write_text("deep inside\n")
    (root / "config.yaml").write_text(MAIN)


def test_execute_streams_logs_and_downloads_outputs(cli: ProjectCli, tmp_path: Path) -> None:
    _project_dir(tmp_path)
    r = cli.ok("project", "job", "execute", "-p", PROJECT, "-c", "config.yaml")
    # The program's stdout and stderr, as written; the input file and directory were there.
    assert r.out.splitlines() == [
        "first line",
        "some notes",
        "data:",
        "a.txt",
        "sub",
        "",
        "data/sub:",
        "deep.txt",
        "done",
    ]
    assert "to stderr" in r.err
    assert "uploaded 3 file(s)" in r.err
    assert (tmp_path / "out" / "result.txt").read_text() == "LOWER CASE\n"
    assert (tmp_path / "report" / "copy.txt").read_text() == "deep inside\n"
    # The local log directory, as DataSphere writes it.
    log_dir = Path(
        next(line for line in r.err.splitlines() if line.startswith("logs file path:")).split(": ", 1)[1]
    )
    assert (log_dir / "stdout.txt").read_text() == r.out
    assert (log_dir / "stderr.txt").read_text() == "to stderr\n"
    assert "preparing job" in (log_dir / "system.log").read_text()

    # The same inputs again: nothing is uploaded.
    (tmp_path / "out" / "result.txt").unlink()
    r = cli.ok("job", "execute", "-p", PROJECT, "-c", "config.yaml")
    assert "nothing to upload: all 3 file(s) are already on the server" in r.err
    assert (tmp_path / "out" / "result.txt").read_text() == "LOWER CASE\n"


def test_python_auto_env_with_a_local_module_and_a_pinned_package(cli: ProjectCli, tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("import yaml\n\n\ndef dump(x):\n    return yaml.safe_dump(x)\n")
    (tmp_path / "main.py").write_text(
        "import sys\n\nfrom helper import dump\n\n"
        "if __name__ == '__main__':\n    print(dump({'word': sys.argv[1]}), end='')\n"
    )
    (tmp_path / "config.yaml").write_text(
        "cmd: python main.py ${WORD}\nargs: {WORD: atoll}\n"
        "env:\n  python: auto\ncloud-instance-types: [s1.1]\n"
    )
    r = cli.ok("job", "execute", "-p", PROJECT, "-c", "config.yaml")
    assert r.out == "word: atoll\n"
    assert "PyYAML==" in r.err and "helper.py, main.py" in r.err


def test_failing_program_exits_non_zero_with_one_line(cli: ProjectCli, tmp_path: Path) -> None:
    # No cloud-instance-types: the project's default configuration (s1.1) runs it, not c1.4.
    (tmp_path / "config.yaml").write_text("cmd: echo about to fail; exit 3\n")
    r = cli.run("job", "execute", "-p", PROJECT, "-c", "config.yaml")
    assert r.code == 1 and r.out == "about to fail\n"
    assert _one_error(r).endswith("failed: program exited with code 3")


def test_async_then_attach_list_get_and_download(
    cli: ProjectCli, tmp_path: Path, server: RunningServer
) -> None:
    (tmp_path / "config.yaml").write_text(
        "name: slow\ncmd: for i in 1 2 3 4; do echo tick $i; sleep 0.4; done; echo ${N} > ${OUT}\n"
        "args: {N: '7'}\noutputs:\n  - result.txt: OUT\ncloud-instance-types: [s1.1]\n"
    )
    r = cli.ok("job", "execute", "-p", PROJECT, "-c", "config.yaml", "--async", "-o", "job.json")
    job_id = json.loads((tmp_path / "job.json").read_text())["job_id"]
    assert r.out.strip() == job_id
    assert f"atoll job attach --id {job_id}" in r.err
    assert not (tmp_path / "result.txt").exists()

    r = cli.ok("job", "attach", "--id", job_id, "--log-dir", "logs")
    assert set(r.out.splitlines()) <= {f"tick {i}" for i in range(1, 5)}  # from where it was, on
    assert (tmp_path / "logs" / "stdout.txt").read_text() == "".join(f"tick {i}\n" for i in range(1, 5))
    assert (tmp_path / "result.txt").read_text() == "7\n"
    assert "tick 1" in cli.ok("job", "attach", "--id", job_id, "--from-start").out

    listed = cli.json("job", "list", "-p", PROJECT)
    assert job_id in [j["id"] for j in listed]
    assert [j["id"] for j in cli.json("job", "list", "-p", PROJECT, "--limit", "1")] == [job_id]  # the newest
    if len(listed) > 1:  # a table says that there are more than it shows
        shown = cli.ok("job", "list", "-p", PROJECT, "--limit", "1")
        assert job_id in shown.out and "--limit 0" in shown.err
    got = cli.json("job", "get", "--id", job_id)
    assert got["status"] == "SUCCESS" and got["name"] == "slow" and got["outputFiles"][0]["var"] == "OUT"
    table = cli.ok("job", "get", "--id", job_id).out
    for column in ("ID", "Name", "Description", "Created at", "Finished at", "Status", "Created by"):
        assert column in table
    assert "Data cleared" in table and "Data expires at" in table

    cli.ok("job", "set-data-ttl", "--id", job_id, "--days", "infinity")
    assert cli.json("job", "get", "--id", job_id)["dataTtlDays"] is None
    assert "Never" in cli.ok("job", "get", "--id", job_id).out
    assert "--days" in _one_error(cli.run("job", "set-data-ttl", "--id", job_id, "--days", "0"))

    r = cli.ok("job", "download-files", "--id", job_id, "--with-logs", "--output-dir", "dl")
    assert (tmp_path / "dl" / "result.txt").read_text() == "7\n"
    assert (tmp_path / "dl" / "stdout.txt").read_text().startswith("tick 1\n")

    # Fork with a new arg and a new output path.
    r = cli.ok("job", "fork", "--id", job_id, "--arg", "N=42", "--var", "OUT=forked.txt", "--name", "forked")
    assert r.out.splitlines()[-1] == "tick 4"
    assert (tmp_path / "forked.txt").read_text() == "42\n"
    child = cli.json("job", "list", "-p", PROJECT)[0]
    assert child["name"] == "forked" and child["parentJobId"] == job_id
    assert "args.NOPE" in _one_error(cli.run("job", "fork", "--id", job_id, "--arg", "NOPE=1"))


def test_cancel_and_download_while_running(cli: ProjectCli, tmp_path: Path, server: RunningServer) -> None:
    (tmp_path / "config.yaml").write_text("cmd: echo started; sleep 300\ncloud-instance-types: [s1.1]\n")
    job_id = cli.ok("job", "execute", "-p", PROJECT, "-c", "config.yaml", "--async").out.strip()
    _wait(server, job_id, ("EXECUTING",))
    r = cli.ok("job", "download-files", "--id", job_id)
    assert "still running" in r.err and not any(tmp_path.glob("dl*"))
    assert "CANCELLING" in cli.ok("job", "cancel", "--id", job_id).out
    assert _wait(server, job_id)["status"] == "CANCELLED"
    assert "already finished" in _one_error(cli.run("job", "cancel", "--id", job_id))


def test_ctrl_c_asks_and_cancels_gracefully(cli: ProjectCli, tmp_path: Path, server: RunningServer) -> None:
    (tmp_path / "config.yaml").write_text(
        "cmd: trap 'echo got SIGTERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done\n"
        "graceful-shutdown: {signal: SIGTERM, timeout: 10s}\ncloud-instance-types: [s1.1]\n"
    )
    proc = cli.popen("job", "execute", "-p", PROJECT, "-c", "config.yaml")
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate("y\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "cancel job? [y/N]" in err and "gracefully" in err
    assert "got SIGTERM" in out
    assert err.strip().splitlines()[-1].endswith("was cancelled (cancelled by user)")


def test_bad_configs_fail_in_one_line_and_create_nothing(cli: ProjectCli, tmp_path: Path) -> None:
    before = _job_count(cli)
    cases = {
        "name: no-cmd\n": "config.yaml: cmd is required",
        "cmd: echo\ncloud-instance-types: {s1.1: yes}\n": "config.yaml: cloud-instance-types must be a list",
        "cmd: echo\ncloud-instance-types: [s1.1, x9.99]\n": (
            "config.yaml: cloud-instance-types[1]: unknown configuration 'x9.99'"
        ),
        "cmd: echo\ns3-mounts: [abcdefghij0123456789]\ncloud-instance-types: [s1.1]\n": (
            "config.yaml: s3-mounts: S3 connectors are not available on this installation"
        ),
        "cmd: cat in.txt\ninputs: [in.txt]\n": "config.yaml: inputs[0]: no such file or directory: in.txt",
    }
    for text, expected in cases.items():
        (tmp_path / "config.yaml").write_text(text)
        line = _one_error(cli.run("job", "execute", "-p", PROJECT, "-c", "config.yaml"))
        assert expected in line, line
    assert "no such config file" in _one_error(cli.run("job", "execute", "-p", PROJECT, "-c", "nope.yaml"))
    assert _job_count(cli) == before


def test_a_configuration_the_community_refuses_is_named_as_refused(
    cli: ProjectCli, admin: Cli, tmp_path: Path
) -> None:
    admin.ok("community", "restrictions", "set", "jobs-e2e", "--allow", "s1.1")
    try:
        (tmp_path / "config.yaml").write_text("cmd: echo\ncloud-instance-types: [s1.2]\n")
        line = _one_error(cli.run("job", "execute", "-p", PROJECT, "-c", "config.yaml"))
        assert "s1.2: not allowed in this project's community" in line, line
        assert "fits" not in line, line  # it does fit the pool: that is not why it is refused
    finally:
        admin.ok("community", "restrictions", "set", "jobs-e2e", "--allow-all")


def test_generate_requirements(cli: ProjectCli, tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("import yaml\nimport json\n")
    cli.ok("generate-requirements", "main.py")
    assert (tmp_path / "requirements.txt").read_text().startswith("PyYAML==")
    assert cli.ok("generate-requirements", "-o", "-", "main.py").out.startswith("PyYAML==")


def test_sdk_execute_wait_fork_and_download(
    project_id: str, server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from atoll.sdk import SDK, JobFailed

    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_text("sdk input\n")
    (tmp_path / "config.yaml").write_text(
        "cmd: echo ${GREETING}; cat ${IN} > ${OUT}; test ${GREETING} = hello\n"
        "args: {GREETING: hello}\ninputs:\n  - in.txt: IN\noutputs:\n  - out.txt: OUT\n"
    )
    with SDK(url=server.url, token=server.admin_token, log_dir=tmp_path / "logs") as sdk:
        job = sdk.execute(PROJECT, "config.yaml")
        assert job.wait()["status"] == "SUCCESS" and job.done
        assert capsys.readouterr().out == "hello\n"
        assert (tmp_path / "logs" / job.id / "stdout.txt").read_text() == "hello\n"
        paths = sdk.download_job_files(job.id, with_logs=True, output_dir=tmp_path / "dl")
        assert (tmp_path / "dl" / "out.txt").read_text() == "sdk input\n"
        assert {p.name for p in paths} == {"out.txt", "stdout.txt", "stderr.txt", "system.log"}

        (tmp_path / "other.txt").write_text("another input\n")
        child = sdk.fork_job(job.id, args={"GREETING": "bye"}, vars={"IN": "other.txt", "OUT": "forked.txt"})
        with pytest.raises(JobFailed) as failed:
            child.wait(stream_logs=False)
        assert failed.value.job["returnCode"] == 1 and sdk.get_job(child.id).done
        assert sdk.get_job(child.id).job["parentJobId"] == job.id
        sdk.download_job_files(child.id)  # a failed job's outputs still come, with a warning
        assert (tmp_path / "forked.txt").read_text() == "another input\n"


GREP = """cmd: grep -C ${RANGE} ${OPTIONS} -f ${PATTERN} ${INPUT} > ${OUTPUT}
args: {RANGE: 0, OPTIONS: "-h -r"}
inputs: [{pattern.txt: PATTERN}, {input.txt: INPUT}]
outputs: [{output.txt: OUTPUT}]
"""


def test_docs_grep_example_then_fork_with_an_arg_and_a_new_input(cli: ProjectCli, tmp_path: Path) -> None:
    """Spec §5.7's example as written (the project's default configuration runs it), then a fork."""
    (tmp_path / "config.yaml").write_text(GREP)
    (tmp_path / "pattern.txt").write_text("needle\n")
    (tmp_path / "input.txt").write_text("one\ntwo\nneedle\nthree\nfour\n")
    (tmp_path / "new_input.txt").write_text("alpha\nneedle in a haystack\nomega\n")
    r = cli.ok("job", "execute", "-p", PROJECT, "-c", "config.yaml")
    assert (tmp_path / "output.txt").read_text() == "needle\n"
    job_id = next(line for line in r.err.split() if line.startswith("job-"))
    (tmp_path / "output.txt").unlink()
    r = cli.ok("job", "fork", "--id", job_id, "--arg", "RANGE=1", "--var", "INPUT=new_input.txt")
    assert (tmp_path / "output.txt").read_text() == "alpha\nneedle in a haystack\nomega\n"
    forked = cli.json("job", "list", "-p", PROJECT)
    assert any(j.get("parentJobId") == job_id for j in forked)
