"""Projects' Docker images (issue 17 item 3, spec §4.3): built from a Dockerfile on a real dockerd,
checked, pushed to a real registry (Debian's docker-registry), activated; then a notebook, a job
and a node run inside one. A failing step is named; an image without pip is refused with what is
missing; another project's image is out of reach under every name.

One root `atoll up` with a private dockerd and registry for the module; skipped, with the reason,
where Docker cannot run."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy.conftest import create_node, wait_for, wait_healthy
from tests.e2e.cli import Cli
from tests.notebooks.conftest import FAST, Kernel, open_and_wait, stop_and_wait
from tests.notebooks.conftest import new_project as nb_project
from tests.security.test_workload_identity import _terminal
from tests.support.docker import Dockerd, dockerd_or_skip
from tests.support.postgres import free_port
from tests.support.registry import Registry, registry_or_skip
from tests.support.server import ADMIN_PASSWORD, RunningServer
from tests.support.tenants import finish, job_config, logs, root_server, submit

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dockerd and per-project users need root")

DIST = "/usr/local/lib/python3.11/dist-packages"
TOOLS = (
    "FROM {base}\n"
    "# a package of the project's own, as a Dockerfile would add one (the test daemon has no network)\n"
    f"RUN mkdir -p {DIST}/imgpkg && \\\n"
    f"    echo 'WHERE = \"inside the project image\"' > {DIST}/imgpkg/__init__.py\n"
    "ENV IMG_MARK=built-by-atoll\n"
)


@pytest.fixture(scope="module")
def env() -> Iterator[tuple[RunningServer, Dockerd, Registry]]:
    with contextlib.ExitStack() as stack:
        d = stack.enter_context(dockerd_or_skip())
        reg = stack.enter_context(registry_or_skip())
        server = stack.enter_context(
            root_server(
                "atoll-img-",
                {**FAST, "ATOLL_DOCKER_HOST": d.url, "ATOLL_IMAGE_REGISTRY": reg.address},
            )
        )
        yield server, d, reg


def _create(
    api: httpx.Client, project: str, name: str, dockerfile: str, tag: str = "1.0", **more: Any
) -> dict:
    r = api.post(
        f"/projects/{project}/images", json={"name": name, "tag": tag, "dockerfile": dockerfile, **more}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def _built(api: httpx.Client, image_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (img := api.get(f"/images/{image_id}").json())["status"] in ("PENDING", "BUILDING"):
        assert time.monotonic() < deadline, img
        time.sleep(0.3)
    return dict(img)


def test_an_image_is_built_kept_activated_and_run_by_a_notebook_a_job_and_a_node(
    env: tuple[RunningServer, Dockerd, Registry],
) -> None:
    server, d, reg = env
    project = nb_project(server, "img-alpha")["id"]
    with server.api() as api:
        img = _create(api, project, "tools", TOOLS.format(base=d.image))
        assert img["status"] == "PENDING" and not img["active"]
        img = _built(api, img["id"])
        log = api.get(f"/images/{img['id']}/log").json()["log"]
        assert img["status"] == "READY", (img["detail"], log)
        assert "Step 1/4 : FROM atoll-test:bookworm" in log and "checked: Python 3.11" in log, log
        assert img["pythonVersion"].startswith("3.11") and not img["hasJupyterlab"]
        assert img["reference"] == f"{reg.address}/atoll/{project}/tools:1.0"
        assert reg.tags(f"atoll/{project}/tools") == ["1.0"]  # kept in the registry
        assert img["imageId"].startswith("sha256:") and img["sizeBytes"] > 0
        # Immutable: the same name and tag again is refused.
        again = api.post(
            f"/projects/{project}/images", json={"name": "tools", "tag": "1.0", "dockerfile": "FROM x"}
        )
        assert again.status_code == 409 and again.json()["errors"][0]["field"] == "tag"

        # A job names it (env.docker: name:tag), and runs inside it as the project's user.
        probe = "python3 -c 'import imgpkg, getpass; print(imgpkg.WHERE, getpass.getuser())'; "
        probe += "echo $IMG_MARK; whoami"
        job = submit(api, project, job_config(probe, "env:\n  docker: tools:1.0\n"))
        done = finish(api, job, timeout=120)
        out = logs(api, job, "stdout", "stderr")
        assert done["status"] == "SUCCESS", (done["statusDetails"], out, logs(api, job, "system"))
        assert "inside the project image img-alpha" in out and "built-by-atoll" in out, out
        assert out.split()[-1] == "img-alpha", out  # a passwd entry in the container, not the image

    # A node names it by id, and serves from inside it.
    serve = (
        "import http.server, imgpkg, os\n"
        "print('node', imgpkg.WHERE, flush=True)\n"
        "http.server.HTTPServer(('0.0.0.0', 8000), http.server.SimpleHTTPRequestHandler).serve_forever()\n"
    )
    health = {"path": "/", "intervalS": 0.5, "timeoutS": 1, "healthyThreshold": 1, "unhealthyThreshold": 1}
    node = create_node(
        server,
        project,
        "imgnode",
        image=img["id"],
        command=["python3", "-c", serve],
        port=8000,
        configuration="s1.1",
        healthCheck=health,
    )
    with server.api() as api:
        try:
            wait_healthy(server, project, node["id"])
            path = f"/projects/{project}/nodes/{node['id']}/logs"
            wait_for(
                "the node's line", lambda: "node inside the project image" in api.get(path).json()["data"], 30
            )
        finally:
            api.delete(f"/projects/{project}/nodes/{node['id']}")

        # Activated (here through the Settings tab's section, as a browser posts it), the
        # project's notebooks run inside it: Atoll's JupyterLab layer is bound in.
        _activate_in_the_web_ui(server, project, img)
        assert api.get(f"/projects/{project}").json()["settings"]["activeImageId"] == img["id"]
        assert api.delete(f"/images/{img['id']}").status_code == 409  # the active one stays
    open_and_wait(server, project, timeout=300)
    try:
        kernel = Kernel(server, project)
        printed = kernel.run(
            "import imgpkg, os, sys, pandas; print(imgpkg.WHERE, os.environ['IMG_MARK'], sys.executable)"
        ).strip()
        kernel.close()
        assert printed.startswith("inside the project image built-by-atoll /usr/bin/python3"), printed
        # A terminal: bash as the project's user, whose name the container's passwd knows.
        said = _terminal(server, project, "whoami; echo $HOME; echo END", "END")
        assert "img-alpha" in said, said
        with server.api() as api:
            wl = api.get(f"/projects/{project}/notebook").json()
        running = {c.name for c in d.client().containers.list()}
        assert any(name.startswith("atoll-wl") for name in running), running
        assert wl["state"] == "READY"
    finally:
        stop_and_wait(server, project)
    with server.api() as api:
        r = api.post(f"/projects/{project}/images:deactivate")
        assert r.status_code == 200 and r.json()["settings"]["activeImageId"] is None
        assert api.delete(f"/images/{img['id']}").status_code == 204
        assert api.get(f"/images/{img['id']}").status_code == 404


def test_a_failing_step_is_named_and_what_an_image_lacks_is_said(
    env: tuple[RunningServer, Dockerd, Registry],
) -> None:
    server, d, _ = env
    project = nb_project(server, "img-beta")["id"]
    with server.api() as api:
        bad = _create(api, project, "broken", f"FROM {d.image}\nRUN echo one\nRUN exit 3\nRUN echo never\n")
        nopip = _create(
            api, project, "nopip", f"FROM {d.image}\nRUN rm -rf /usr/lib/python3/dist-packages/pip\n"
        )
        bad, nopip = _built(api, bad["id"]), _built(api, nopip["id"])
        assert bad["status"] == "FAILED" and bad["failedStep"] == "Step 3/5 : RUN exit 3", bad
        assert "returned a non-zero code: 3" in bad["detail"], bad
        log = api.get(f"/images/{bad['id']}/log").json()
        assert "one" in log["log"] and "never" not in log["log"].split("Step 3/5")[-1]
        assert nopip["status"] == "FAILED" and "no pip" in nopip["detail"], nopip
        r = api.post(f"/images/{bad['id']}:activate")
        assert r.status_code == 409 and "FAILED" in r.json()["detail"]
        # A job naming a failed image says so, and runs nothing.
        job = finish(api, submit(api, project, job_config("echo ran", "env:\n  docker: broken:1.0\n")))
        assert job["status"] == "ERROR" and "not built" in job["statusDetails"], job


def test_another_project_s_image_is_out_of_reach(env: tuple[RunningServer, Dockerd, Registry]) -> None:
    server, d, reg = env
    owner = nb_project(server, "img-gamma")["id"]
    thief = nb_project(server, "img-delta")["id"]
    with server.api() as api:
        img = _built(api, _create(api, owner, "secret-sauce", TOOLS.format(base=d.image))["id"])
        assert img["status"] == "READY", img["detail"]
        for base in (
            f"atoll/{owner}/secret-sauce:1.0",  # its name on the daemon
            img["imageId"],  # its content id
            f"{reg.address}/atoll/{owner}/secret-sauce:1.0",  # in Atoll's registry
            f"localhost:{reg.address.split(':')[1]}/atoll/{owner}/secret-sauce:1.0",
        ):
            stolen = _built(
                api, _create(api, thief, "stolen", f"FROM {base}\n", tag=f"t{abs(hash(base)) % 10**6}")["id"]
            )
            assert stolen["status"] == "FAILED", (base, stolen)
            assert "not found" in stolen["detail"] or "the projects' own" in stolen["detail"], stolen
            api.delete(f"/images/{stolen['id']}")
        # Nor fetch it from the daemon's host: ADD is refused, and so is a base with ONBUILD ADD.
        fetch = f"http://{reg.address}/v2/atoll/{owner}/secret-sauce/manifests/1.0"
        added = _built(api, _create(api, thief, "fetch", f"FROM {d.image}\nADD {fetch} /m\n")["id"])
        assert added["status"] == "FAILED" and "ADD is not allowed" in added["detail"], added
        trap = _built(api, _create(api, thief, "trap", f"FROM {d.image}\nONBUILD ADD {fetch} /m\n")["id"])
        assert trap["status"] == "READY", trap["detail"]
        child = _built(api, _create(api, thief, "child", f"FROM atoll/{thief}/trap:1.0\nRUN true\n")["id"])
        assert child["status"] == "FAILED" and "ONBUILD" in child["detail"], child
        for made in (added, trap, child):
            api.delete(f"/images/{made['id']}")
        # Nor can a job or a node of the other project run it, by id or by name.
        for ref in (img["imageId"], f"atoll/{owner}/secret-sauce:1.0", img["id"]):
            job = finish(
                api, submit(api, thief, job_config("echo ran", f"env:\n  docker: {ref}\n")), timeout=60
            )
            assert job["status"] == "ERROR", (ref, job)
            assert "ran" not in logs(api, job["id"]), ref


def test_bad_input_is_refused_naming_the_field(env: tuple[RunningServer, Dockerd, Registry]) -> None:
    server, d, _ = env
    project = nb_project(server, "img-epsilon")["id"]
    ok = {"name": "fine", "tag": "1", "dockerfile": f"FROM {d.image}\n"}
    cases = [
        ({"name": "Not Valid"}, "name"),
        ({"name": "-lead"}, "name"),
        ({"tag": ".dot"}, "tag"),
        ({"dockerfile": "  "}, "dockerfile"),
        ({"dockerfile": "x" * (64 * 1024 + 1)}, "dockerfile"),
        ({"username": "u"}, "passwordSecret"),
        ({"username": "u", "passwordSecret": "missing"}, "passwordSecret"),
        ({"extra": 1}, "extra"),
    ]
    with server.api() as api:
        for change, field in cases:
            r = api.post(f"/projects/{project}/images", json={**ok, **change})
            assert r.status_code in (409, 422), (change, r.text)
            assert field in r.json()["errors"][0]["field"], (change, r.text)
        assert api.get(f"/projects/{project}/images").json() == []  # nothing was made
        # A Dockerfile that FROMs a variable is refused by the build, naming why.
        var = _built(api, _create(api, project, "var", "ARG B=x\nFROM $B\n")["id"])
        assert var["status"] == "FAILED" and "variable" in var["detail"], var
        # The spec's quota: 3 images per community.
        for i in range(2):
            _create(api, project, f"q{i}", f"FROM {d.image}\n")
        r = api.post(f"/projects/{project}/images", json=ok)
        assert r.status_code == 409 and "quota" in r.json()["detail"], r.text


def test_the_cli_streams_a_build_names_a_failing_step_and_activates(
    env: tuple[RunningServer, Dockerd, Registry], tmp_path: Path
) -> None:
    server, d, _ = env
    project = nb_project(server, "img-cli")["id"]
    cli = Cli(tmp_path / "config")
    cli.ok("login", "--url", server.url, "--username", "admin", "--password", ADMIN_PASSWORD)
    good, bad = tmp_path / "Dockerfile", tmp_path / "Dockerfile.bad"
    good.write_text(f"FROM {d.image}\nRUN echo building-from-the-cli\n")
    bad.write_text(f"FROM {d.image}\nRUN exit 7\n")
    made = cli.ok("image", "create", "cli-ok", "-p", project, "-f", str(good), "--tag", "1")
    assert "building-from-the-cli" in made.err and "Step 1/3" in made.err, str(made)  # streamed
    assert "image cli-ok:1 ready" in made.out, str(made)
    line = cli.fail(
        "image", "create", "cli-bad", "-p", project, "-f", str(bad), "--tag", "1", "--format", "json"
    )
    assert "cli-bad:1 failed to build: Step 2/3 : RUN exit 7" in line and "non-zero code: 7" in line, line
    assert "Step 2/3 : RUN exit 7" in cli.ok("image", "log", "cli-bad:1", "-p", project).out
    listed = cli.json("image", "list", "-p", project)
    assert {(i["name"], i["status"]) for i in listed} == {("cli-ok", "READY"), ("cli-bad", "FAILED")}
    cli.ok("image", "activate", "cli-ok:1", "-p", project)
    assert "active image" in cli.fail("image", "delete", "cli-ok:1", "-p", project, "--yes")
    cli.ok("image", "deactivate", "-p", project)
    cli.ok("image", "delete", "cli-ok:1", "-p", project, "--yes")
    assert "no image" in cli.fail("image", "get", "cli-ok:1", "-p", project)
    assert "--dockerfile" in cli.fail(
        "image", "create", "x", "-p", project, "-f", str(tmp_path / "nope"), code=2
    )


def test_without_a_registry_set_atoll_keeps_images_in_its_own(
    env: tuple[RunningServer, Dockerd, Registry],
) -> None:
    """ATOLL_IMAGE_REGISTRY unset: Atoll starts Debian's docker-registry on loopback at the first
    push, over its data dir, and stops it with the server."""
    _, d, _ = env
    port = free_port()
    with root_server(
        "atoll-imgown-", {**FAST, "ATOLL_DOCKER_HOST": d.url, "ATOLL_IMAGE_REGISTRY_PORT": str(port)}
    ) as srv:
        project = nb_project(srv, "img-own")["id"]
        with srv.api() as api:
            img = _built(api, _create(api, project, "mine", f"FROM {d.image}\n")["id"])
        assert img["status"] == "READY", img
        assert img["reference"] == f"127.0.0.1:{port}/atoll/{project}/mine:1.0"
        own = Registry(f"127.0.0.1:{port}")
        assert own.tags(f"atoll/{project}/mine") == ["1.0"]
        assert (srv.data_dir / "registry" / "data").is_dir()
    with pytest.raises(httpx.HTTPError):  # stopped with the server
        httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=2)


def test_a_private_base_image_is_pulled_with_the_project_s_secret(
    env: tuple[RunningServer, Dockerd, Registry],
) -> None:
    """FROM an image of a registry that asks for a password: without credentials the build fails
    saying so; with a user name and the project secret holding the password it is pulled. The
    password is in no log. (The registry listens on the test daemon's bridge address: a loopback
    registry is refused as a base, as Atoll's own is.)"""
    server, d, _ = env
    password = "vendor-Pass-7f3a9"
    with registry_or_skip(host=d.bridge_address, login=("puller", password)) as vendor:
        repo = f"{vendor.address}/vendor/base"
        c = d.client()
        try:
            c.images.get(d.image).tag(repo, "1")
            pushed = list(
                c.images.push(
                    repo,
                    "1",
                    auth_config={"username": "puller", "password": password},
                    stream=True,
                    decode=True,
                )
            )
            assert not [p for p in pushed if "error" in p], pushed
            c.images.remove(f"{repo}:1")  # so the build has to pull it
        finally:
            c.close()
        project = nb_project(server, "img-private")["id"]
        with server.api() as api:
            r = api.post(f"/projects/{project}/secrets", json={"name": "vendor-pass", "value": password})
            assert r.status_code == 201, r.text
            anon = _built(api, _create(api, project, "anon", f"FROM {repo}:1\n")["id"])
            assert anon["status"] == "FAILED" and anon["failedStep"] == f"FROM {repo}:1", anon
            assert "auth" in anon["detail"].lower(), anon["detail"]  # "no basic auth credentials"
            made = _create(
                api,
                project,
                "vendored",
                f"FROM {repo}:1\nRUN true\n",
                username="puller",
                passwordSecret="vendor-pass",
            )
            assert "password" not in made or made.get("password") is None
            ok = _built(api, made["id"])
            log = api.get(f"/images/{ok['id']}/log").json()["log"]
            assert ok["status"] == "READY", (ok["detail"], log)
            assert password not in log + ok["detail"] + server.log()


def _activate_in_the_web_ui(server: RunningServer, project: str, img: dict[str, Any]) -> None:
    """The project's Docker images section lists the built image; its Activate form activates it."""
    with httpx.Client(base_url=server.url, timeout=30) as web:
        web.get("/login")
        r = web.post("/api/v1/auth/sessions", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        csrf = r.json()["csrfToken"]
        page = web.get(f"/projects/{project}/images")
        assert page.status_code == 200 and f"{img['name']}:{img['tag']}" in page.text, page.text[:500]
        assert "ready" in page.text and f"/images/{img['id']}/activate" in page.text
        r = web.post(f"/projects/{project}/images/{img['id']}/activate", data={"csrf_token": csrf})
        assert r.status_code in (200, 303), r.text[:500]
        page = web.get(f"/projects/{project}/images")
        assert 'data-testid="image-active"' in page.text, page.text[:500]
