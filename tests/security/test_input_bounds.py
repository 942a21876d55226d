"""Bounds on every input (issue 14, finding 9): an out-of-range value is a 422 problem+json naming
the field (413 for a body over the size limit), never a 500 and never silently stored; JSON types
are strict; secrets and a job's env.vars cannot take the names of Atoll's own variables."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from atoll.api import bounds
from atoll.errors import Invalid
from atoll.jobspec.config import parse_config
from atoll.storage.logs import LogStore
from tests.api.conftest import admin, admin_token, app, client  # noqa: F401 - the fixtures, reused

V = "/api/v1"
HUGE_OFFSET = 9007199254740991  # 2**53 - 1: what a JavaScript client sends as "the end"
CONFIG = "cmd: python run.py\n"


@pytest.fixture(scope="module")
def project(admin: TestClient) -> dict[str, Any]:  # noqa: F811 - the fixture imported above
    org = admin.get(f"{V}/organizations").json()["items"][0]["id"]
    com = admin.post(f"{V}/communities", json={"organizationId": org, "name": "bounds-com"})
    assert com.status_code == 201, com.text
    r = admin.post(f"{V}/projects", json={"communityId": com.json()["id"], "name": "bounds-prj"})
    assert r.status_code == 201, r.text
    return dict(r.json())


def fields_of(r: Any) -> list[str]:
    assert r.headers["content-type"].startswith("application/problem+json"), r.text[:300]
    return [e["field"] for e in r.json().get("errors", [])]


def assert_refused(r: Any, field: str, status: int = 422) -> None:
    assert r.status_code == status, r.text[:500]
    assert field in fields_of(r), (field, r.text[:500])


# --- whole bodies ---------------------------------------------------------------------------------


def test_fifty_megabyte_config_is_refused_and_nothing_is_created(
    admin: TestClient,  # noqa: F811
    project: dict[str, Any],
) -> None:
    jobs = f"{V}/projects/{project['id']}/jobs"
    r = admin.post(jobs, json={"config": CONFIG + "#" * (50 << 20)})
    assert_refused(r, "body", 413)
    # The same without a Content-Length (chunked): read up to the limit, then refused.
    chunk = b'{"config": "' + b"#" * (1 << 20)
    r = admin.post(
        jobs, content=iter([chunk] + [b"#" * (1 << 20)] * 49), headers={"content-type": "application/json"}
    )
    assert_refused(r, "body", 413)
    # Under the body limit but over the config's own bound: 422 naming the field.
    r = admin.post(jobs, json={"config": CONFIG + "#" * bounds.MAX_CONFIG_CHARS})
    assert_refused(r, "config")
    listed = admin.get(jobs)
    assert listed.status_code == 200 and listed.json()["items"] == []
    assert len(listed.content) < 1000


def test_uploads_have_their_own_bound(admin: TestClient, project: dict[str, Any]) -> None:  # noqa: F811
    """A job's file is uploaded as one body far over the JSON limit: it is not refused for its size."""
    data = b"\0" * (bounds.MAX_BODY_BYTES + 1)
    sha = hashlib.sha256(data).hexdigest()
    r = admin.put(f"{V}/projects/{project['id']}/blobs/{sha}", content=data)
    assert r.status_code == 204, r.text
    # A node's test console may send up to 16 MB: not refused here (the node does not exist).
    body = {"method": "POST", "path": "/", "body": "x" * (bounds.MAX_BODY_BYTES + 1)}
    r = admin.post(f"{V}/projects/{project['id']}/nodes/nope:request", json=body)
    assert r.status_code == 404, r.text[:300]


# --- query parameters -----------------------------------------------------------------------------


def test_log_offsets_are_bounded(admin: TestClient, project: dict[str, Any]) -> None:  # noqa: F811
    job = admin.post(f"{V}/projects/{project['id']}/jobs", json={"config": CONFIG})
    assert job.status_code == 201, job.text
    jid = job.json()["job"]["id"]
    for url in (
        f"{V}/jobs/{jid}/logs?offset={HUGE_OFFSET}",
        f"{V}/projects/{project['id']}/nodes/nope/logs?offset={HUGE_OFFSET}",
    ):
        assert_refused(admin.get(url), "offset")
    assert_refused(admin.get(f"{V}/jobs/{jid}/logs?limit={1 << 40}"), "limit")
    ok = admin.get(f"{V}/jobs/{jid}/logs?offset={bounds.MAX_LOG_OFFSET}")
    assert ok.status_code == 200 and ok.json()["data"] == ""


def test_log_store_reads_past_the_end(tmp_path: Path) -> None:
    """Past the end of a log there is nothing yet, however far: not an error from the filesystem."""
    logs = LogStore(tmp_path)
    logs.append("wl-1", "stdout", b"hello\n")
    assert logs.read("wl-1", "stdout", 2) == (b"llo\n", 6)
    for offset in (6, 1 << 40, HUGE_OFFSET, 1 << 62):
        assert logs.read("wl-1", "stdout", offset) == (b"", offset)


def _query_params(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:  # noqa: F811
    out = []
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                if p["in"] == "query":
                    out.append((method.upper(), path, p))
    return out


def test_every_query_parameter_is_bounded(app: FastAPI, admin: TestClient) -> None:  # noqa: F811
    params = _query_params(app)
    assert len(params) > 10
    problems = []
    for method, path, p in params:
        schema = _nonnull(p["schema"])
        name = p["name"]
        url = path.replace("{", "").replace("}", "")  # any id: validation comes first
        kind = schema.get("type")
        if kind == "integer" and "maximum" in schema:
            bad: Any = schema["maximum"] + 1
        elif kind == "string" and "maxLength" in schema:
            bad = "x" * (schema["maxLength"] + 1)
        elif kind in ("integer", "string") and schema.get("format") != "date-time" and "enum" not in schema:
            problems.append(f"{method} {path}: ?{name} is unbounded")
            continue
        else:
            continue
        r = admin.request(method, url, params={name: bad})
        if r.status_code != 422 or name not in fields_of(r):
            problems.append(f"{method} {path}: ?{name}={str(bad)[:20]} gave {r.status_code}")
    assert not problems, "\n".join(problems)


# --- strict types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        ("PATCH", "/projects/{p}/limits", {"balance": True}, "balance"),
        ("PATCH", "/projects/{p}/limits", {"maxUnitsPerHour": "100"}, "maxUnitsPerHour"),
        ("PATCH", "/projects/{p}/limits", {"balance": 10**16}, "balance"),
        ("PATCH", "/projects/{p}/limits", {"balance": 1.5}, "balance"),
        (
            "PATCH",
            "/projects/{p}",
            {"settings": {"vmInactivityTimeout": True}},
            "settings.vmInactivityTimeout",
        ),
        ("POST", "/users", {"username": "strict-u", "password": "pw-123456789", "isAdmin": 1}, "isAdmin"),
        ("POST", "/projects/{p}/jobs", {"config": CONFIG, "dataTtlDays": "14"}, "dataTtlDays"),
        ("POST", "/projects/{p}/jobs", {"config": CONFIG, "dataTtlDays": True}, "dataTtlDays"),
        ("POST", "/projects/{p}/secrets", {"name": "strict", "value": 5}, "value"),
    ],
)
def test_json_types_are_strict(
    admin: TestClient,  # noqa: F811
    project: dict[str, Any],
    method: str,
    url: str,
    body: dict[str, Any],
    field: str,
) -> None:
    url = V + url.format(p=project["id"])
    before = admin.get(f"{V}/projects/{project['id']}/limits").json()
    assert_refused(admin.request(method, url, json=body), field)
    assert admin.get(f"{V}/projects/{project['id']}/limits").json() == before


def test_numbers_are_finite(admin: TestClient) -> None:  # noqa: F811
    org = admin.get(f"{V}/organizations").json()["items"][0]["id"]
    for raw in ("NaN", "Infinity", "1e400"):
        r = admin.post(
            f"{V}/billing-accounts",
            content=f'{{"organizationId": "{org}", "name": "nan-ba", "unitPrice": {raw}}}',
            headers={"content-type": "application/json"},
        )
        assert_refused(r, "unitPrice")
    names = [b["name"] for b in admin.get(f"{V}/billing-accounts").json()["items"]]
    assert "nan-ba" not in names


# --- names, labels, lists -------------------------------------------------------------------------


def test_long_names_and_too_many_labels(admin: TestClient, project: dict[str, Any]) -> None:  # noqa: F811
    org = admin.get(f"{V}/organizations").json()["items"][0]["id"]
    long = "a" * 10_000
    cases = [
        ("/organizations", {"name": long}, "name"),
        ("/communities", {"organizationId": org, "name": long}, "name"),
        ("/communities", {"organizationId": org, "name": "ok-name", "description": long}, "description"),
        (
            "/communities",
            {"organizationId": org, "name": "ok-name", "labels": {f"k{i}": "v" for i in range(65)}},
            "labels",
        ),
        ("/projects", {"communityId": project["communityId"], "name": long}, "name"),
        (
            "/projects",
            {"communityId": project["communityId"], "name": "ok-name", "labels": {"k" * 1000: "v"}},
            "labels.kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk….[key]",
        ),
        (f"/projects/{project['id']}/jobs", {"config": CONFIG, "name": long}, "name"),
        (f"/projects/{project['id']}/jobs", {"config": CONFIG, "desc": long}, "desc"),
        (f"/projects/{project['id']}/secrets", {"name": long, "value": "v"}, "name"),
        (f"/projects/{project['id']}/secrets", {"name": "big", "value": "v" * 70_000}, "value"),
        (f"/projects/{project['id']}/nodes", {"name": long, "command": ["x"]}, "name"),
        (f"/projects/{project['id']}/aliases", {"name": long, "nodes": []}, "name"),
    ]
    for url, body, field in cases:
        r = admin.post(V + url, json=body)
        assert_refused(r, field)
    assert [c["name"] for c in admin.get(f"{V}/communities").json()["items"]] == ["bounds-com"]
    assert admin.get(f"{V}/projects/{project['id']}/secrets").json() == []


# --- reserved environment variable names ---------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["ATOLL_SECRET_KEY", "ATOLL_TOKEN", "DS_PROJECT_HOME", "PATH", "HOME", "PYTHONPATH", "JUPYTER_TOKEN",
     "JOB_PROGRESS_FILENAME", "CUDA_VISIBLE_DEVICES", "PORT", "PORT_1", "LD_PRELOAD"],
)  # fmt: skip
def test_secret_names_cannot_shadow_atolls_variables(
    admin: TestClient,  # noqa: F811
    project: dict[str, Any],
    name: str,
) -> None:
    url = f"{V}/projects/{project['id']}/secrets"
    r = admin.post(url, json={"name": name, "value": "v"})
    assert_refused(r, "name")
    assert "reserved" in r.json()["detail"]
    assert admin.post(url, json={"name": "plain-name", "value": "v"}).status_code == 201
    try:
        assert_refused(admin.patch(f"{url}/plain-name", json={"name": name}), "name")
        assert [s["name"] for s in admin.get(url).json()] == ["plain-name"]
    finally:
        assert admin.delete(f"{url}/plain-name").status_code == 204


@pytest.mark.parametrize("name", ["ATOLL_TOKEN", "DS_PROJECT_HOME", "DS_ANYTHING", "PATH", "HOME",
                                  "JOB_PROGRESS_FILENAME", "CUDA_VISIBLE_DEVICES"])  # fmt: skip
def test_job_env_vars_cannot_shadow_atolls_variables(
    admin: TestClient,  # noqa: F811
    project: dict[str, Any],
    name: str,
) -> None:
    config = f"{CONFIG}env:\n  vars:\n    - DEVICE_COUNT: '8'\n    - {name}: x\n"
    with pytest.raises(Invalid) as e:
        parse_config(config)
    assert e.value.field == "env.vars[1]"
    r = admin.post(f"{V}/projects/{project['id']}/jobs", json={"config": config})
    assert_refused(r, "env.vars[1]")
    # Nor on fork, where env_vars replace the source job's.
    src = admin.post(f"{V}/projects/{project['id']}/jobs", json={"config": CONFIG})
    assert src.status_code == 201, src.text
    r = admin.post(f"{V}/jobs/{src.json()['job']['id']}/fork", json={"envVars": {name: "x"}})
    assert_refused(r, f"env_vars.{name}")


def test_spec_example_env_vars_still_work() -> None:
    """DataSphere's own example sets DEVICE_COUNT and copies PYTHONBUFFERED (spec §5.2); a job's
    own PYTHONPATH and LD_LIBRARY_PATH stay allowed too (Atoll only adds to the first)."""
    config = (
        f"{CONFIG}env:\n  vars:\n    - DEVICE_COUNT: '8'\n    - PYTHONBUFFERED\n"
        "    - PYTHONPATH: lib\n    - LD_LIBRARY_PATH: /opt/cuda/lib64\n"
    )
    cfg, _ = parse_config(config)
    assert [v.name for v in cfg.env.vars] == [
        "DEVICE_COUNT",
        "PYTHONBUFFERED",
        "PYTHONPATH",
        "LD_LIBRARY_PATH",
    ]


# --- every field of every request body ------------------------------------------------------------


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _nonnull(schema: dict[str, Any]) -> dict[str, Any]:
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    return options[0] if len(options) == 1 else schema


def _sample(schema: dict[str, Any], spec: dict[str, Any]) -> Any:
    """A value the schema accepts (for list entries next to the one under test)."""
    s = _nonnull(_resolve(schema, spec))
    if "anyOf" in s:
        return _sample(s["anyOf"][0], spec)
    if "enum" in s or "const" in s:
        return s.get("enum", [s.get("const")])[0]
    kind = s.get("type")
    if kind == "object" and "properties" in s:
        return {k: _sample(v, spec) for k, v in s["properties"].items() if k in s.get("required", [])}
    return {"string": "x", "integer": max(0, s.get("minimum", 0)), "number": 1.0, "boolean": False,
            "array": [], "object": {}}.get(kind)  # fmt: skip


def _probes(
    schema: dict[str, Any], spec: dict[str, Any], path: str, unbounded: list[str]
) -> Iterator[tuple[str, Any, bool]]:
    """(field, bad value, exact): the value the field must refuse, naming `field` (exactly, or as
    the start of the name when the error lands deeper). Fields with no bound go to `unbounded`."""
    s = _nonnull(_resolve(schema, spec))
    if "anyOf" in s:  # a union: each member is bounded
        for member in s["anyOf"]:
            if _resolve(member, spec).get("type") != "null":
                yield from ((f, v, False) for f, v, _ in _probes(member, spec, path, unbounded))
        return
    if "enum" in s or "const" in s:
        yield path, "not-one-of-them", True
        return
    kind = s.get("type")
    if kind == "string":
        if "maxLength" not in s:
            unbounded.append(f"{path}: a string without maxLength")
            return
        yield path, "x" * (s["maxLength"] + 1), True
        yield path, 5, True
    elif kind == "integer":
        if "maximum" not in s:
            unbounded.append(f"{path}: an integer without maximum")
            return
        yield path, s["maximum"] + 1, True
        yield path, True, True
        yield path, "1", True
    elif kind == "number":
        if "maximum" not in s:
            unbounded.append(f"{path}: a number without maximum")
            return
        yield path, s["maximum"] * 10, True
        yield path, True, True
    elif kind == "boolean":
        yield path, 1, True
        yield path, "true", True
    elif kind == "array":
        if "maxItems" not in s:
            unbounded.append(f"{path}: a list without maxItems")
            return
        yield path, [_sample(s["items"], spec)] * (s["maxItems"] + 1), True
        for f, v, _ in _probes(s["items"], spec, f"{path}[0]", unbounded):
            yield f, [v], False
    elif kind == "object" and "properties" in s:
        base = {k: _sample(v, spec) for k, v in s["properties"].items() if k in s.get("required", [])}
        for name, sub in s["properties"].items():
            inner = f"{path}.{name}" if path else name
            for f, v, exact in _probes(sub, spec, inner, unbounded):
                yield f, {**base, name: v}, exact
    elif kind == "object":  # a map
        if "maxProperties" not in s:
            unbounded.append(f"{path}: a map without maxProperties")
            return
        values = s.get("additionalProperties", {})
        values = values if isinstance(values, dict) else {}  # `true`: any JSON value
        value = _sample(values, spec) if values else "v"
        yield path, {f"k{i}": value for i in range(s["maxProperties"] + 1)}, True
        keys = s.get("propertyNames", {})
        if "maxLength" in keys:
            yield path, {"k" * (keys["maxLength"] + 1): value}, False
        else:
            unbounded.append(f"{path}: a map whose keys have no maxLength")
        if values:
            for f, v, _ in _probes(values, spec, f"{path}.k", unbounded):
                yield f, {"k": v}, False
    # no type: any JSON value (a test request's body, a label's value): the domain checks it


def _bodies(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:  # noqa: F811
    out = []
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                out.append((method.upper(), path, content["application/json"]["schema"]))
    return out


def test_every_field_of_every_body_is_bounded(app: FastAPI, admin: TestClient) -> None:  # noqa: F811
    spec = app.openapi()
    bodies = _bodies(app)
    assert len(bodies) > 30
    tried, problems = 0, []
    for method, path, schema in bodies:
        url = path.replace("{", "").replace("}", "")  # any id: the body is checked first
        unbounded: list[str] = []
        for field, value, exact in _probes(schema, spec, "", unbounded):
            tried += 1
            r = admin.request(method, url, json=value)
            got = fields_of(r) if r.status_code == 422 else []
            if not (field in got if exact else any(g.startswith(field) for g in got)):
                shown = repr(value)[:60]
                problems.append(f"{method} {path}: {field} = {shown} gave {r.status_code} {got[:3]}")
        problems += [f"{method} {path}: {u}" for u in unbounded]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
    assert tried > 300
