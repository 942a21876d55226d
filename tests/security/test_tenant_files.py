"""A job of project B attacks the data dir through what Atoll does for it as root: collecting
outputs, making datasets, its /tmp, /proc and the files Atoll leaves on disk (issue 14: findings
1, 2, 4 (/proc, /tmp), 6 and 11). Every attack here worked before the safe-path module.

One real `atoll up` as root, with each project's workloads as their own uid; the data dir sits
where other users may traverse (as /var/lib/atoll does), or Atoll would not switch users.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import RunningServer
from tests.support.tenants import finish, job_config, logs, new_project, root_server, submit

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="per-project users need a root server")
SECRET_VALUE = "s3cr3t-value-that-must-stay-sealed-9f1c"


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with root_server("atoll-sec-") as server:
        yield server


@pytest.fixture(scope="module")
def api(srv: RunningServer) -> Iterator[httpx.Client]:
    with srv.api() as c:
        yield c


@pytest.fixture(scope="module")
def projects(api: httpx.Client) -> dict[str, str]:
    return {k: new_project(api, f"sec-{k.lower()}") for k in ("A", "B", "C")}


def _run(api: httpx.Client, project: str, config: str, wait: bool = True) -> tuple[dict[str, Any], str]:
    job_id = submit(api, project, config)
    if not wait:
        return {"id": job_id}, ""
    return finish(api, job_id), logs(api, job_id, "stdout", "stderr")


_cfg = job_config


def _write_home(api: httpx.Client, project: str, name: str, text: str) -> None:
    """A file on the project's disk, written by one of its own jobs."""
    cfg = _cfg(f'echo "{text}" > $DS_PROJECT_HOME/{name}', "flags: [attach-project-disk]\n")
    job, out = _run(api, project, cfg)
    assert job["status"] == "SUCCESS", (job["statusDetails"], out)


def _outputs(api: httpx.Client, job: dict[str, Any]) -> dict[str, bytes]:
    """What Atoll collected for the job: path -> content."""
    got = {}
    for o in job.get("outputFiles") or []:
        r = api.get(f"/jobs/{job['id']}/files/{o['sha256']}")
        got[o["path"]] = r.content if r.status_code == 200 else b""
    return got


def test_outputs_through_a_linked_directory_collect_nothing_of_atoll(
    srv: RunningServer, api: httpx.Client, projects: dict[str, str]
) -> None:
    data = srv.data_dir
    _write_home(api, projects["A"], "x", "A's private file")
    secret_key = (data / "secret.key").read_bytes()
    cmd = (
        f"rm -rf lnk && ln -s {data} lnk && rm -rf deep/mid && ln -s {data} deep/mid && "
        f"ln -s {data}/secret.key direct && mkfifo fifo && echo done"
    )
    outputs = [
        "lnk/secret.key",
        "lnk/atoll.db",
        "lnk/logs",
        f"lnk/projects/{projects['A']}/home/x",
        "deep/mid/secret.key",
        "direct",
        "fifo",
        "lnk",
    ]
    extra = "outputs:\n" + "".join(f"  - {o}\n" for o in outputs)
    job, out = _run(api, projects["B"], _cfg(cmd, extra))
    assert job["status"] == "SUCCESS", (job["statusDetails"], job, out)
    errors = {e["path"]: e["error"] for e in job["fileErrors"]}
    assert set(errors) == set(outputs), job
    assert all(e == "NOT_A_REGULAR_FILE" for e in errors.values()), list(errors.items())
    for content in _outputs(api, job).values():
        assert secret_key not in content and b"A's private file" not in content


def test_an_output_directory_is_zipped_without_what_its_links_point_at(
    srv: RunningServer, api: httpx.Client, projects: dict[str, str]
) -> None:
    data = srv.data_dir
    cmd = (
        f"mkdir -p res/sub && echo mine > res/sub/a.txt && ln -s {data}/secret.key res/key && "
        f"ln -s {data} res/all"
    )
    job, out = _run(api, projects["B"], _cfg(cmd, "outputs:\n  - res\n"))
    assert job["status"] == "SUCCESS", (job["statusDetails"], job, out)
    [o] = job["outputFiles"]
    r = api.get(f"/jobs/{job['id']}/files/{o['sha256']}")
    assert r.status_code == 200
    import io
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert names == ["sub/a.txt"], names


def test_an_output_var_whose_directory_became_a_link_is_refused(
    srv: RunningServer, api: httpx.Client, projects: dict[str, str]
) -> None:
    data = srv.data_dir
    cmd = f'd=$(dirname ${{OUT}}); rm -rf "$d" && ln -s {data} "$d"; echo swapped'
    job, out = _run(api, projects["B"], _cfg(cmd, "outputs:\n  - secret.key: OUT\n"))
    assert job["status"] == "SUCCESS", (job["statusDetails"], job, out)
    assert job["outputFiles"] == [] and job["fileErrors"] == [
        {"path": "secret.key", "error": "NOT_A_REGULAR_FILE"}
    ]


def test_output_datasets_through_a_linked_parent_move_nothing_of_another_project(
    srv: RunningServer, api: httpx.Client, projects: dict[str, str]
) -> None:
    data = srv.data_dir
    c_dir = data / "projects" / projects["C"]
    _write_home(api, projects["C"], "precious.txt", "C's data")
    before = sorted(p.name for p in c_dir.iterdir())
    cmd = f"cd .. && rm -rf output-datasets && ln -s {c_dir} output-datasets && echo planted"
    extra = "output-datasets:\n  - name: stolen\n    var: home\n    size: 1Gb\n"
    job, out = _run(api, projects["B"], _cfg(cmd, extra))
    assert job["status"] == "SUCCESS", (job["statusDetails"], job, out)
    assert [d.get("error") for d in job["outputDatasets"]] == ["${home} is not a directory any more"], job
    assert (c_dir / "home" / "precious.txt").read_text() == "C's data\n"
    assert sorted(p.name for p in c_dir.iterdir()) == before
    assert api.get(f"/projects/{projects['B']}/datasets").json()["items"] == []


def test_a_dataset_keeps_plain_files_only(
    srv: RunningServer, api: httpx.Client, projects: dict[str, str]
) -> None:
    data = srv.data_dir
    cmd = (
        f"echo ok > ${{D}}/a.txt && ln -s {data}/secret.key ${{D}}/key && mkfifo ${{D}}/fifo && "
        "mkdir ${D}/sub && ln ${D}/a.txt ${D}/sub/hard"
    )
    extra = "output-datasets:\n  - name: plain\n    var: D\n    size: 1Gb\n"
    job, out = _run(api, projects["B"], _cfg(cmd, extra))
    assert job["status"] == "SUCCESS", (job["statusDetails"], job, out)
    [made] = job["outputDatasets"]
    path = data / "datasets" / made["id"]
    kept = sorted(str(p.relative_to(path)) for p in path.rglob("*"))
    # A hard link between the job's own files stays (both are the tenant's own).
    assert kept == ["a.txt", "sub", "sub/hard"], kept
    for p in path.rglob("*"):
        st = p.lstat()
        assert st.st_uid == 0 and not st.st_mode & 0o007, (p, oct(st.st_mode))


def test_each_project_has_its_own_tmp_and_sees_only_its_own_processes(
    api: httpx.Client, projects: dict[str, str]
) -> None:
    sleeper, _ = _run(api, projects["A"], _cfg("echo a-was-here > /tmp/a-marker; sleep 30"), wait=False)
    try:
        deadline = time.monotonic() + 60
        while api.get(f"/jobs/{sleeper['id']}").json()["status"] != "EXECUTING":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(0.5)
        probe = (
            "id -u; ls /tmp; cat /tmp/a-marker 2>/dev/null; "
            "for p in /proc/[0-9]*; do stat -c %u $p 2>/dev/null; done | sort -u | tr '\\n' ' '; echo"
        )
        job_b, out_b = _run(api, projects["B"], _cfg(probe))
        assert job_b["status"] == "SUCCESS", out_b
        uid_b, *rest = out_b.split("\n")
        assert "a-marker" not in out_b and "a-was-here" not in out_b, out_b
        # Every process it can see is its own (A's sleeping job, of another uid, is not).
        assert rest[-2].split() == [uid_b], out_b
        _job_a, out_a = _run(api, projects["A"], _cfg("cat /tmp/a-marker"))
        assert out_a.strip() == "a-was-here", out_a  # the project's own jobs share its /tmp
    finally:
        api.post(f"/jobs/{sleeper['id']}/cancel")


def test_secret_values_are_not_on_disk_while_a_job_runs(
    srv: RunningServer, api: httpx.Client, projects: dict[str, str]
) -> None:
    r = api.post(f"/projects/{projects['B']}/secrets", json={"name": "API_KEY", "value": SECRET_VALUE})
    assert r.status_code in (200, 201), r.text
    job, _ = _run(api, projects["B"], _cfg('test -n "$API_KEY" && echo has-it; sleep 20'), wait=False)
    try:
        deadline = time.monotonic() + 60
        while "has-it" not in api.get(f"/jobs/{job['id']}/logs").json()["data"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        for p in srv.data_dir.rglob("*"):
            if p.is_file() and not p.is_symlink() and p.stat().st_size < 50_000_000:
                assert SECRET_VALUE.encode() not in p.read_bytes(), p
    finally:
        api.post(f"/jobs/{job['id']}/cancel")


def test_another_projects_saved_model_cannot_be_read(
    srv: RunningServer, api: httpx.Client, projects: dict[str, str]
) -> None:
    """Finding 6: B's uid read A's models/<name>/1/model.joblib (0644 in a 0755 dir)."""
    save = (
        'd=$ATOLL_MODEL_OUTBOX; mkdir "$d/.st" && '
        """echo '{"name": "m", "format": "sklearn", "file": "model.joblib"}' > "$d/.st/meta.json" && """
        'echo weights > "$d/.st/model.joblib" && mv "$d/.st" "$d/k1" && '
        'for i in $(seq 300); do test -e "$d/k1.result.json" && break; sleep 0.2; done; '
        'cat "$d/k1.result.json"'
    )
    job, out = _run(api, projects["A"], _cfg(save))
    assert job["status"] == "SUCCESS" and '"version": 1' in out, (job["statusDetails"], out)
    model = srv.data_dir / "projects" / projects["A"] / "models" / "m" / "1" / "model.joblib"
    assert model.read_text() == "weights\n"
    _, mine = _run(api, projects["A"], _cfg(f"cat {model}"))
    assert mine.strip() == "weights"  # the project's own workloads read it, through their group
    _, theirs = _run(api, projects["B"], _cfg(f"cat {model}; ls {model.parent.parent}; echo end"))
    assert "weights" not in theirs and "Permission denied" in theirs, theirs


def test_no_file_under_the_data_dir_is_world_readable(srv: RunningServer, api: httpx.Client) -> None:
    """After the scenarios above (jobs, outputs, datasets, secrets): nothing is open to other users.
    Python environments are shared by every project's workloads by design (see docs/security.md)
    and the SDK dir holds only a link to Atoll's package: both are left out. So are a workload's
    passwd and group files (runtime/local/accounts.py): copies of the host's world-readable ones
    with its own entry, which its user must read."""
    shared = {srv.data_dir / "envs", srv.data_dir / "sdk"}
    found = []
    for dirpath, dirnames, filenames in os.walk(srv.data_dir):
        if Path(dirpath) in shared:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            if Path(dirpath, name) in shared:
                continue
            if Path(dirpath).parent == srv.data_dir / "runtime" and name in ("passwd", "group"):
                continue
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISLNK(st.st_mode):
                continue
            if st.st_mode & 0o006:
                found.append(f"{os.path.join(dirpath, name)} {oct(st.st_mode)}")
    assert not found, "\n".join(found[:30])
