"""A project's workloads have a name (issue 17, item 4): a passwd and a group entry for their uid,
seen only inside their own mount namespace, so `whoami`, `getpass.getuser()`, git and `~` work,
while the host's files stay untouched and another project's name is nowhere in sight."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from atoll.runtime.local.accounts import account_files, account_name
from tests.deploy.conftest import create_node, wait_for, wait_healthy
from tests.notebooks.conftest import FAST, Kernel, open_and_wait, stop_and_wait
from tests.notebooks.conftest import new_project as nb_project
from tests.support.server import ENV_CACHE, RunningServer
from tests.support.tenants import finish, job_config, logs, new_project, root_server, submit

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="per-project users need a root server")

PROBE = (
    "set -e; whoami; id -un; id -gn; "
    "python3 -c 'import getpass, os, pwd; home = pwd.getpwuid(os.getuid()).pw_dir; "
    """print(getpass.getuser(), home == os.path.expanduser("~"))'; """
    "echo USER=$USER LOGNAME=$LOGNAME; "
    'grep -c "Atoll workload user" /etc/passwd; '
    "cd $HOME && git init -q repo && cd repo && git status --short && echo git-ok"
)


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with root_server("atoll-ident-") as server:
        yield server


@pytest.fixture(scope="module")
def nbsrv() -> Iterator[RunningServer]:
    with root_server("atoll-identnb-", FAST) as server:
        yield server


@pytest.fixture(scope="module")
def api(srv: RunningServer) -> Iterator[httpx.Client]:
    with srv.api() as c:
        yield c


def test_a_job_knows_its_user(api: httpx.Client) -> None:
    host_passwd = Path("/etc/passwd").read_bytes()
    project = new_project(api, "ident-alpha")
    other = new_project(api, "ident-beta")
    job = submit(api, project, job_config(PROBE))
    done = finish(api, job)
    out = logs(api, job, "stdout", "stderr")
    assert done["status"] == "SUCCESS", (done["statusDetails"], out)
    lines = out.splitlines()
    assert lines[:3] == ["ident-alpha", "ident-alpha", "ident-alpha"], out
    assert lines[3] == "ident-alpha True", out
    assert "USER=ident-alpha LOGNAME=ident-alpha" in out
    assert lines[5] == "1", out  # its own entry only: no other project's name is visible
    assert "git-ok" in out
    # The other project's jobs get their own name, and the host's file never changed.
    job2 = submit(api, other, job_config("whoami; id -u"))
    assert finish(api, job2)["status"] == "SUCCESS"
    name, uid = logs(api, job2).split()
    assert name == "ident-beta" and int(uid) > 0
    assert Path("/etc/passwd").read_bytes() == host_passwd


def test_names_never_shadow_the_hosts(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    group = tmp_path / "group"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\nold:x:70001:70001::/nonexistent:/bin/false\n")
    group.write_text("root:x:0:\nold:x:70001:\n")
    name, files = account_files(
        tmp_path, "Root", 70001, 70001, Path("/home/p"), host_passwd=passwd, host_group=group
    )
    assert name == "root-70001"  # a project named "root" does not become root's name
    written = Path(files["/etc/passwd"]).read_text().splitlines()
    assert written[0] == "root:x:0:0:root:/root:/bin/bash"
    assert "old:x:70001" not in "\n".join(written)  # one answer for our uid: ours
    assert written[-1].startswith("root-70001:x:70001:70001:") and written[-1].endswith(":/home/p:/bin/bash")
    assert Path(files["/etc/group"]).read_text().splitlines()[-1] == "root-70001:x:70001:"
    assert account_name("  ~~ ", 5) == "u5"
    assert account_name("9lives", 5) == "u5"
    assert account_name("My Project: v2!", 5) == "my-project-v2"
    assert len(account_name("x" * 80, 5)) == 32


def _terminal(server: RunningServer, project_id: str, command: str, marker: str) -> str:
    """Run ``command`` in a new JupyterLab terminal through the gateway; what it printed up to
    ``marker``."""
    base = f"{server.url}/nb/{project_id}"
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    r = httpx.post(f"{base}/api/terminals", headers=headers, timeout=30)
    assert r.status_code == 200, r.text[:300]
    name = r.json()["name"]
    url = base.replace("http://", "ws://") + f"/terminals/websocket/{name}"
    seen = ""
    with connect(url, additional_headers=headers, open_timeout=30) as ws:
        ws.send(json.dumps(["stdin", command + "\r"]))
        deadline = time.monotonic() + 60
        while marker not in seen.split(command)[-1]:
            assert time.monotonic() < deadline, seen
            kind, *payload = json.loads(ws.recv(timeout=60))
            if kind == "stdout":
                seen += str(payload[0])
    httpx.delete(f"{base}/api/terminals/{name}", headers=headers, timeout=30)
    return seen.split(command)[-1]


def test_a_terminal_and_a_kernel_know_their_user(nbsrv: RunningServer) -> None:
    project = nb_project(nbsrv, "ident-gamma")["id"]
    open_and_wait(nbsrv, project)
    try:
        out = _terminal(
            nbsrv,
            project,
            "whoami; cd ~ && git init -q t && cd t && git status --short && echo git=$?; echo $SHELL; "
            "command -v python; echo END",
            "END",
        )
        assert "ident-gamma" in out, out
        assert "git=0" in out, out
        assert "/bin/bash" in out, out
        assert "notebook-env/bin/python" in out, out  # the project's environment first on PATH
        kernel = Kernel(nbsrv, project)
        printed = kernel.run("import getpass, pandas, sklearn; print(getpass.getuser())").strip()
        kernel.close()
        assert printed == "ident-gamma", printed
    finally:
        stop_and_wait(nbsrv, project)


NODE_SERVER = (
    "import getpass, http.server, os, sys\n"
    "print('user', getpass.getuser(), 'prefix', sys.prefix, flush=True)\n"
    "http.server.HTTPServer((os.environ['HOST'], int(os.environ['PORT'])),"
    " http.server.SimpleHTTPRequestHandler).serve_forever()\n"
)


def test_a_node_knows_its_user_and_runs_in_the_project_s_environment(
    srv: RunningServer, api: httpx.Client
) -> None:
    project = new_project(api, "ident-delta")
    health = {"path": "/", "intervalS": 0.5, "timeoutS": 1, "healthyThreshold": 1, "unhealthyThreshold": 1}
    node = create_node(srv, project, "whoami", command=["python3", "-c", NODE_SERVER], healthCheck=health)
    try:
        wait_healthy(srv, project, node["id"])
        path = f"/projects/{project}/nodes/{node['id']}/logs"
        out = wait_for(
            "the node's first line", lambda: "user " in (t := api.get(path).json()["data"]) and t, 30
        )
        words = str(out).split()
        assert words[1] == "ident-delta", out
        assert words[3].startswith(str(ENV_CACHE)), out  # the default built-in environment's python
    finally:
        api.delete(f"/projects/{project}/nodes/{node['id']}")
