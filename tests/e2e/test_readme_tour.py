"""The README's quick tour, run word for word at a terminal (issue 17, item 8): the bash block is
taken from README.md and typed into bash on a pseudo-terminal, the passwords typed at its
prompts. Only what points at the machine changes: the server this test starts stands in for
`./dev up &`, and its two ports for 8800 and 8801.

The server gets this machine's own compute pool (no test overrides): on a 2-core machine the
tour must run as it does for a new user there, without `%pip install` or an admin's setting."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.notebooks.conftest import stop_all
from tests.support.server import ADMIN_PASSWORD, RunningServer, start_server
from tests.support.tenants import stop_workloads

README = Path(__file__).resolve().parents[2] / "README.md"
SECRET = "tour-secret-value-51"


def tour_script() -> str:
    """The bash block under "## Quick tour" in README.md."""
    text = README.read_text()
    section = text.split("## Quick tour", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, "README's quick tour has no bash block"
    return block.group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("tour") / "data")
    try:
        yield running
    finally:
        try:
            stop_all(running)
        finally:
            running.stop()
            stop_workloads(running.data_dir / "runtime")  # the node's instance outlives `atoll up`


def test_the_readme_tour_runs_as_written(server: RunningServer, tmp_path: Path) -> None:
    script = tour_script()
    lines = script.splitlines()
    assert lines[0].startswith("./dev up &"), lines[0]  # the server below stands in for it
    body = "\n".join(lines[1:]) + "\n"
    body = body.replace("http://127.0.0.1:8800", server.url).replace(
        "http://127.0.0.1:8801", server.gateway_url
    )
    (tmp_path / "tour.sh").write_text("set -euo pipefail\n" + body)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")}
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
            "ATOLL_CONFIG_DIR": str(tmp_path / "config"),
            "TERM": "dumb",
            "COLUMNS": "200",
        }
    )
    child = pexpect.spawn(
        "bash", [str(tmp_path / "tour.sh")], cwd=str(tmp_path), env=env, encoding="utf-8", timeout=600
    )
    try:
        child.expect("Password: ")
        child.sendline(ADMIN_PASSWORD)
        child.expect("Secret value: ")
        child.sendline(SECRET)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    out = child.before or ""
    assert child.exitstatus == 0, (
        f"the tour stopped (exit {child.exitstatus}, signal {child.signalstatus}):\n{out[-4000:]}"
    )
    assert (tmp_path / "result.txt").read_text().strip() == f"key is {SECRET}"
    assert "'name': 'churn'" in out and "'version': 1" in out, out[-3000:]  # the model the job saved
    assert SECRET not in out  # typed at a hidden prompt, shown nowhere
    # The gateway's answer (curl -f: a 2xx) is the model's metadata over the inference protocol.
    assert '"name":"churn"' in out.replace(" ", ""), out[-2000:]
