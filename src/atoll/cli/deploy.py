"""What `atoll node`, `atoll alias` and `atoll model` share: options, key=value maps, test
requests sent through the deploy gateway (or the API's test console) with their answer shown,
and for nodes the create/update body built from flags and the wait until Healthy.

The gateway listens on a port of its own. Its URL comes from ``--gateway``, else
``ATOLL_GATEWAY_URL``, else the Atoll server's host on port 8801 (the default
``ATOLL_GATEWAY_PORT``): the API does not publish where the gateway listens.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from atoll.cli.output import Format, err, fail, out, print_json, usage
from atoll.client import Client
from atoll.states import InstanceStatus, NodeStatus

ProjectOpt = Annotated[str, typer.Option("-p", "--project", help="Project id, name or COMMUNITY/PROJECT")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds --wait waits", min=1)]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

MethodOpt = Annotated[
    str | None, typer.Option("--method", "-X", help="HTTP method (default: GET, or POST with --data)")
]
PathOpt = Annotated[str, typer.Option("--path", help="Path and query sent to the service")]
DataOpt = Annotated[
    str | None, typer.Option("--data", "-d", help="Request body: JSON or text, @FILE, or @- for stdin")
]
HeaderOpt = Annotated[list[str] | None, typer.Option("--header", "-H", help="'Name: value' (repeatable)")]
GatewayOpt = Annotated[
    str | None,
    typer.Option("--gateway", help="Gateway URL (default: $ATOLL_GATEWAY_URL, else the server's host:8801)"),
]


def pairs(
    given: list[str] | None, option: str, old: Mapping[str, str] | None = None, unset: list[str] | None = None
) -> dict[str, str] | None:
    """``--env K=V`` values merged over ``old`` with ``unset`` keys removed; None: no change."""
    if not given and not unset:
        return None
    merged = dict(old or {})
    for value in given or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            usage(f"{option} takes KEY=VALUE (got {value!r})")
        merged[key] = val
    for key in unset or []:
        if key not in merged:
            usage(f"--unset-{option.removeprefix('--')}: {key!r} is not set")
        merged.pop(key)
    return merged


def _headers(values: list[str] | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values or []:
        name, sep, val = value.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            usage(f"--header takes 'Name: value' (got {value!r})")
        headers[name.strip()] = val.strip()
    return headers


def _body(data: str | None) -> bytes | None:
    if data is None:
        return None
    if not data.startswith("@"):
        return data.encode()
    source = data[1:]
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as e:
        usage(f"--data {data}: cannot read {source}: {e.strerror or e}")


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _method(method: str | None, body: bytes | None) -> str:
    chosen = (method or ("POST" if body is not None else "GET")).upper()
    if chosen not in METHODS:
        usage(f"--method must be one of {', '.join(METHODS)} (got {method!r})")
    return chosen


def send(
    c: Client,
    *,
    route: dict[str, str],
    method: str | None,
    path: str,
    data: str | None,
    header: list[str] | None,
    gateway: str | None,
    send_token: bool,
    fmt: Format,
) -> None:
    """One request through the gateway to the deployment ``route`` names; show the answer."""
    if not path.startswith("/"):
        usage(f"--path must start with / (got {path!r})")
    body = _body(data)
    headers = _headers(header)
    if body is not None and _is_json(body) and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    verb = _method(method, body)
    r = c.gateway_request(
        verb, path, route=route, content=body, headers=headers, gateway=gateway, send_token=send_token
    )
    elapsed = r.elapsed.total_seconds() * 1000
    show(r.status_code, dict(r.headers), r.content.decode("utf-8", "replace"), elapsed, None, fmt)


def send_via_api(
    c: Client,
    project_id: str,
    node_id: str,
    *,
    method: str | None,
    path: str,
    data: str | None,
    header: list[str] | None,
    fmt: Format,
) -> None:
    """One request through the API's test console (``nodes/{node}:request``) to one instance."""
    if not path.startswith("/"):
        usage(f"--path must start with / (got {path!r})")
    raw = _body(data)
    headers = _headers(header)
    text: str | None = None
    if raw is not None:
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            usage("--via-api sends text only: send a binary body through the gateway instead")
        if _is_json(raw) and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    body = {"method": _method(method, raw), "path": path, "body": text, "headers": headers}
    r = c.post(f"/projects/{project_id}/nodes/{node_id}:request", body)
    show(r["status"], r["headers"], r["body"], r["elapsedMs"], r["instanceId"], fmt)


def show(
    status: int, headers: dict[str, str], body: str, elapsed_ms: float, instance: str | None, fmt: Format
) -> None:
    """Status and body (pretty when JSON) on stdout; a status of 400 or more also fails the
    command with one line naming it (and the gateway's own error message, when it is one)."""
    parsed: Any = None
    try:
        parsed = json.loads(body) if body.strip() else None
    except ValueError:
        parsed = None
    if fmt is Format.json:
        print_json(
            {
                "status": status,
                "headers": headers,
                "body": body,
                "elapsedMs": round(elapsed_ms, 2),
                "instanceId": instance,
            }
        )
    else:
        where = f", instance {instance}" if instance else ""
        out.print(f"HTTP {status} ({elapsed_ms:.1f} ms{where})", style="bold", markup=False)
        if parsed is not None:
            print_json(parsed)
        elif body:
            sys.stdout.write(body if body.endswith("\n") else body + "\n")
    if status >= 400:
        sys.stdout.flush()
        said = parsed.get("error") if isinstance(parsed, dict) else None
        fail(f"the request got HTTP {status}" + (f": {said}" if isinstance(said, str) else ""))


def progress(message: str) -> None:
    """A line of a waiting command's progress on stderr (plain, for logs and pipes)."""
    err.print(message, markup=False, soft_wrap=True)


# --- nodes: counts, the spec from flags, waiting ----------------------------------------------

Obj = dict[str, Any]


def healthy(n: Obj) -> int:
    """How many of the node's instances are Healthy."""
    return sum(1 for i in n.get("instances", []) if i["status"] == InstanceStatus.HEALTHY)


def count(n: Obj) -> str:
    """``healthy/min``, e.g. ``1/2``."""
    return f"{healthy(n)}/{n['minInstances']}"


def command_argv(command: str | None, args: list[str] | None) -> list[str] | None:
    """The argv from ``--command "..."`` (split like a shell) or repeated ``--command-arg``."""
    if command is not None and args:
        usage("give --command or --command-arg, not both")
    if command is not None:
        try:
            argv = shlex.split(command)
        except ValueError as e:
            usage(f"--command: {e}")
        if not argv:
            usage("--command is empty")
        return argv
    return list(args) if args else None


def _section(old: Obj | None, **given: Any) -> Obj | None:
    """Given sub-fields over the node's current ones (so one flag changes one setting)."""
    new = {k: v for k, v in given.items() if v is not None}
    return {**(old or {}), **new} if new else None


def node_body(
    *,
    old: Obj | None,
    description: str | None,
    models: list[str] | None,
    command: list[str] | None,
    image: str | None,
    port: int | None,
    configuration: str | None,
    min_: int | None,
    max_: int | None,
    env: list[str] | None,
    unset_env: list[str] | None,
    health: Obj,
    telemetry: Obj,
    endpoint: Obj | None = None,
) -> Obj:
    """The create/update body: only what was given (on update, what runs changes as a whole)."""
    sources = {"models": models, "command": command, "image": image}
    named = [k for k, v in sources.items() if v]
    if len(named) > 1:
        usage(f"a node runs one of --model, --command or --image (got {', '.join(named)})")
    spec = (old or {}).get("spec", {})
    body: Obj = {
        "description": description,
        "configuration": configuration,
        "minInstances": min_,
        "maxInstances": max_,
        "port": port,
        "env": pairs(env, "--env", spec.get("env") if old else None, unset_env),
        "healthCheck": _section(spec.get("healthCheck"), **health),
        "telemetry": _section(spec.get("telemetry"), **telemetry),
        # The server keeps the settings not given: only the given ones are sent.
        "endpoint": {k: v for k, v in (endpoint or {}).items() if v is not None} or None,
    }
    body = {k: v for k, v in body.items() if v is not None}
    if named:
        # Switching what runs clears the other two, or the node would name two sources.
        body.update({k: v or None for k, v in sources.items()} if old else {named[0]: sources[named[0]]})
    return body


def _ready(n: Obj, rollout: bool) -> bool:
    if n["status"] != NodeStatus.HEALTHY or healthy(n) < n["minInstances"]:
        return False
    insts = n.get("instances", [])
    return not rollout or all(
        i["revision"] == n["revision"] and i["status"] == InstanceStatus.HEALTHY for i in insts
    )


def _state(n: Obj, rollout: bool) -> str:
    state = f"{n['status']}, {count(n)} instances healthy"
    if rollout:
        current = sum(1 for i in n.get("instances", []) if i["revision"] == n["revision"])
        state += f", {current} on revision {n['revision']}"
    return state


def wait(c: Client, project_id: str, n: Obj, timeout: float, *, rollout: bool = False) -> Obj:
    """Poll the node until it is Healthy (after a change: every instance on its revision).

    A terminal gets a spinner with the latest detail; logs and pipes get a line per change of
    status or counts (details flap while an instance restarts)."""
    deadline = time.monotonic() + timeout
    shown = ""
    with err.status("waiting for the node…") as spinner:
        while not _ready(n, rollout):
            # The status lags the wish by a controller tick: judge by what the node is told to do.
            if n["status"] == NodeStatus.DELETING or n.get("suspended"):
                why = "suspended" if n.get("suspended") else "being deleted"
                fail(f"node {n['name']} is {why}: it will not become Healthy")
            state = _state(n, rollout)
            spinner.update(f"node {n['name']}: {state}" + (f" ({n['detail']})" if n.get("detail") else ""))
            if state != shown and not err.is_terminal:
                progress(f"node {n['name']}: {state}")
            shown = state
            if time.monotonic() > deadline:
                insts = n.get("instances") or []
                last = insts[-1] if insts else None
                where = (
                    f"; last instance {last['id']}: {last['status']} ({last['restarts']} restarts), "
                    f"{last['detail']}"
                    if last
                    else f"; {n['detail']}"
                )
                fail(
                    f"node {n['name']} is not Healthy after {timeout:.0f} s: {state}{where} "
                    f"(the node stays and keeps trying: see `atoll node logs {n['name']} --stream stderr`)"
                )
            time.sleep(0.5)
            n = c.get(f"/projects/{project_id}/nodes/{n['id']}")
    return n


# The flags of `node create` and `node update`.
ModelOpt = Annotated[
    list[str] | None, typer.Option("--model", help="Saved model: id, name (latest) or name:version")
]
CommandOpt = Annotated[
    str | None,
    typer.Option("--command", help="Server listening on $PORT; split like a shell, not run by one"),
]
CommandArgOpt = Annotated[
    list[str] | None, typer.Option("--command-arg", help="The command one argument at a time (repeatable)")
]
ImageOpt = Annotated[str | None, typer.Option("--image", help="Docker image, e.g. repo/name:tag")]
PortOpt = Annotated[int | None, typer.Option("--port", help="The port the image's server listens on")]
ConfigOpt = Annotated[
    str | None, typer.Option("-c", "--configuration", help="Compute per instance, e.g. c1.4")
]
MinOpt = Annotated[int | None, typer.Option("--min", help="Instances to keep Healthy (default 1)")]
MaxOpt = Annotated[int | None, typer.Option("--max", help="Most instances (default: --min)")]
EnvOpt = Annotated[list[str] | None, typer.Option("--env", help="KEY=VALUE for the instances (repeatable)")]
HealthPathOpt = Annotated[str | None, typer.Option("--health-path", help="HTTP path of the health check")]
HealthTypeOpt = Annotated[
    str | None, typer.Option("--health-type", help="http (a GET of --health-path, default) or grpc")
]
HealthServiceOpt = Annotated[
    str | None, typer.Option("--health-service", help="grpc: the service to ask about (default: the server)")
]
HealthPortOpt = Annotated[int | None, typer.Option("--health-port", help="Its port (default: the service's)")]
HealthIntervalOpt = Annotated[float | None, typer.Option("--health-interval", help="Seconds between checks")]
HealthTimeoutOpt = Annotated[float | None, typer.Option("--health-timeout", help="Seconds a check may take")]
HealthyOpt = Annotated[
    int | None, typer.Option("--healthy-threshold", help="Passed checks before it takes requests")
]
UnhealthyOpt = Annotated[
    int | None, typer.Option("--unhealthy-threshold", help="Failed checks before it is taken out")
]
TelemetryPathOpt = Annotated[
    str | None, typer.Option("--telemetry-path", help="Prometheus metrics path, e.g. /metrics")
]
TelemetryPortOpt = Annotated[int | None, typer.Option("--telemetry-port", help="Metrics port")]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="What the node is for")]
ProtocolOpt = Annotated[
    str | None, typer.Option("--protocol", help="What the instances speak: http (default), http2 or grpc")
]
RequestTimeoutOpt = Annotated[
    int | None, typer.Option("--request-timeout", help="Seconds an instance may stay silent (default 600)")
]
IdleTimeoutOpt = Annotated[
    int | None, typer.Option("--idle-timeout", help="Seconds a WebSocket may stay silent (default 3600)")
]
MaxConcurrencyOpt = Annotated[
    int | None, typer.Option("--max-concurrency", help="Requests at once per instance (default 0: no cap)")
]
QueueLengthOpt = Annotated[
    int | None, typer.Option("--queue-length", help="Requests that may wait for a place (default 100)")
]
QueueTimeoutOpt = Annotated[
    int | None, typer.Option("--queue-timeout", help="Seconds a request may wait for one (default 30)")
]
MaxBodyOpt = Annotated[int | None, typer.Option("--max-body-mb", help="Largest request body (default 16)")]
WaitOpt = Annotated[bool, typer.Option("--wait", help="Wait until the node is Healthy, showing progress")]
