"""`atoll node`: deploy saved models, a command or a Docker image as a node (spec §6.1, §6.2).

A node runs ``--min`` instances; it is Healthy when that many pass their health check. Changes
to what runs roll out one instance at a time. Requests reach it through the deploy gateway.
"""

from __future__ import annotations

import shlex
import sys
import time
from typing import Annotated, Any
from urllib.parse import quote

import typer

from atoll.cli import resolve
from atoll.cli.deploy import (
    CommandArgOpt,
    CommandOpt,
    ConfigOpt,
    DataOpt,
    DescriptionOpt,
    EnvOpt,
    GatewayOpt,
    HeaderOpt,
    HealthIntervalOpt,
    HealthPathOpt,
    HealthPortOpt,
    HealthServiceOpt,
    HealthTimeoutOpt,
    HealthTypeOpt,
    HealthyOpt,
    IdleTimeoutOpt,
    ImageOpt,
    MaxBodyOpt,
    MaxConcurrencyOpt,
    MaxOpt,
    MethodOpt,
    MinOpt,
    ModelOpt,
    PathOpt,
    PortOpt,
    ProjectOpt,
    ProtocolOpt,
    QueueLengthOpt,
    QueueTimeoutOpt,
    RequestTimeoutOpt,
    TelemetryPathOpt,
    TelemetryPortOpt,
    TimeoutOpt,
    UnhealthyOpt,
    WaitOpt,
    command_argv,
    count,
    node_body,
    send,
    send_via_api,
    wait,
)
from atoll.cli.lazy import summary
from atoll.cli.output import (
    Column,
    Format,
    FormatOpt,
    YesOpt,
    client,
    confirm,
    emit_done,
    emit_list,
    fail,
    print_json,
    print_object,
    print_table,
    usage,
)
from atoll.client import Client
from atoll.states import InstanceStatus

app = typer.Typer(help=summary("node"), no_args_is_help=True)

Obj = dict[str, Any]
NodeArg = Annotated[str, typer.Argument(help="Node id or name")]


COLUMNS: list[Column] = [
    ("NAME", "name"),
    ("ID", "id"),
    ("KIND", "kind"),
    ("STATUS", "status"),
    ("HEALTHY/MIN", count),
    ("CONFIGURATION", "configuration"),
]
RUN_COLUMNS: list[Column] = [
    ("RUN#", "run"),
    ("WORKLOAD", "workloadId"),
    ("STATE", "state"),
    ("EXIT", "exitCode"),
    ("STARTED", "startedAt"),
    ("FINISHED", "finishedAt"),
    ("REASON", "reason"),
]
MAX_RUN = 9  # an instance keeps its last 10 runs (the API's bound on `run`)
INSTANCE_COLUMNS: list[Column] = [
    ("INSTANCE", "id"),
    ("STATUS", "status"),
    ("REVISION", "revision"),
    ("RESTARTS", "restarts"),
    ("PORT", "port"),
    ("DETAIL", "detail"),
]


# --- commands -------------------------------------------------------------------------------


def _find(c: Client, project: str, node: str) -> tuple[Obj, Obj]:
    p = resolve.project(c, project)
    return p, c.get(f"/projects/{p['id']}/nodes/{quote(node, safe='')}")


def _endpoint(
    protocol: str | None,
    request_timeout: int | None,
    idle_timeout: int | None,
    max_concurrency: int | None,
    queue_length: int | None,
    queue_timeout: int | None,
    max_body_mb: int | None,
) -> Obj:
    return {
        "type": protocol.upper() if protocol else None,
        "timeoutS": request_timeout,
        "idleTimeoutS": idle_timeout,
        "maxConcurrency": max_concurrency,
        "queueLength": queue_length,
        "queueTimeoutS": queue_timeout,
        "maxBodyMb": max_body_mb,
    }


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Node name, unique in the project")],
    project: ProjectOpt,
    model: ModelOpt = None,
    command: CommandOpt = None,
    command_arg: CommandArgOpt = None,
    image: ImageOpt = None,
    port: PortOpt = None,
    configuration: ConfigOpt = None,
    min_: MinOpt = None,
    max_: MaxOpt = None,
    env: EnvOpt = None,
    health_type: HealthTypeOpt = None,
    health_service: HealthServiceOpt = None,
    health_path: HealthPathOpt = None,
    health_port: HealthPortOpt = None,
    health_interval: HealthIntervalOpt = None,
    health_timeout: HealthTimeoutOpt = None,
    healthy_threshold: HealthyOpt = None,
    unhealthy_threshold: UnhealthyOpt = None,
    telemetry_path: TelemetryPathOpt = None,
    telemetry_port: TelemetryPortOpt = None,
    protocol: ProtocolOpt = None,
    request_timeout: RequestTimeoutOpt = None,
    idle_timeout: IdleTimeoutOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    queue_length: QueueLengthOpt = None,
    queue_timeout: QueueTimeoutOpt = None,
    max_body_mb: MaxBodyOpt = None,
    description: DescriptionOpt = None,
    wait_: WaitOpt = False,
    timeout: TimeoutOpt = 300,
    fmt: FormatOpt = Format.table,
) -> None:
    """Deploy saved models (--model), a command (--command) or a Docker image (--image --port)."""
    body = node_body(
        old=None,
        description=description,
        models=model,
        command=command_argv(command, command_arg),
        image=image,
        port=port,
        configuration=configuration,
        min_=min_,
        max_=max_,
        env=env,
        unset_env=None,
        health={
            "type": health_type.upper() if health_type else None,
            "service": health_service,
            "path": health_path,
            "port": health_port,
            "intervalS": health_interval,
            "timeoutS": health_timeout,
            "healthyThreshold": healthy_threshold,
            "unhealthyThreshold": unhealthy_threshold,
        },
        telemetry={"path": telemetry_path, "port": telemetry_port},
        endpoint=_endpoint(
            protocol, request_timeout, idle_timeout, max_concurrency, queue_length, queue_timeout, max_body_mb
        ),
    )
    if not {"models", "command", "image"} & body.keys():
        usage("say what the node runs: --model, --command/--command-arg or --image with --port")
    with client() as c:
        p = resolve.project(c, project)
        n = c.post(f"/projects/{p['id']}/nodes", {"name": name, **body})
        if wait_:
            n = wait(c, p["id"], n, timeout)
    message = f"Created node {n['name']} ({n['id']}) in project {p['name']}: " + (
        f"Healthy, {count(n)} instances" if wait_ else "starting (see `atoll node get`)"
    )
    emit_done(n, fmt, message)


@app.command("list")
def list_(project: ProjectOpt, fmt: FormatOpt = Format.table) -> None:
    """The project's nodes, their status and how many instances are healthy."""
    with client() as c:
        p = resolve.project(c, project)
        emit_list(c.get(f"/projects/{p['id']}/nodes"), fmt, COLUMNS, "no nodes")


def _runs(n: Obj) -> str:
    spec = n.get("spec", {})
    if n["kind"] == "model":
        return "models " + ", ".join(spec.get("models", []))
    if n["kind"] == "command":
        return shlex.join(spec.get("command", []))
    return f"{spec.get('image')} (port {spec.get('port')})"


@app.command()
def get(node: NodeArg, project: ProjectOpt, fmt: FormatOpt = Format.table) -> None:
    """A node's settings, status and instances."""
    with client() as c:
        _, n = _find(c, project, node)
    if fmt is Format.json:
        print_json(n)
        return
    spec = n.get("spec", {})
    print_object(
        {
            "name": n["name"],
            "id": n["id"],
            "description": n.get("description") or None,
            "kind": n["kind"],
            "runs": _runs(n),
            "status": n["status"],
            "detail": n.get("detail") or None,
            "configuration": n["configuration"],
            "instances": f"{count(n)} healthy (min {n['minInstances']}, max {n['maxInstances']})",
            "revision": n["revision"],
            "env": ", ".join(sorted(spec.get("env", {}))) or None,
            "healthCheck": spec.get("healthCheck"),
            "telemetry": spec.get("telemetry"),
            "endpoint": spec.get("endpoint"),
            "createdAt": n["createdAt"],
            "updatedAt": n["updatedAt"],
        }
    )
    if n.get("instances"):
        typer.echo()
        print_table(n["instances"], INSTANCE_COLUMNS)


@app.command()
def update(
    node: NodeArg,
    project: ProjectOpt,
    name: Annotated[str | None, typer.Option("--name", help="Rename the node")] = None,
    model: ModelOpt = None,
    command: CommandOpt = None,
    command_arg: CommandArgOpt = None,
    image: ImageOpt = None,
    port: PortOpt = None,
    configuration: ConfigOpt = None,
    min_: MinOpt = None,
    max_: MaxOpt = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="Add or change KEY=VALUE")] = None,
    unset_env: Annotated[list[str] | None, typer.Option("--unset-env", help="Remove a variable")] = None,
    health_type: HealthTypeOpt = None,
    health_service: HealthServiceOpt = None,
    health_path: HealthPathOpt = None,
    health_port: HealthPortOpt = None,
    health_interval: HealthIntervalOpt = None,
    health_timeout: HealthTimeoutOpt = None,
    healthy_threshold: HealthyOpt = None,
    unhealthy_threshold: UnhealthyOpt = None,
    telemetry_path: TelemetryPathOpt = None,
    telemetry_port: TelemetryPortOpt = None,
    protocol: ProtocolOpt = None,
    request_timeout: RequestTimeoutOpt = None,
    idle_timeout: IdleTimeoutOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    queue_length: QueueLengthOpt = None,
    queue_timeout: QueueTimeoutOpt = None,
    max_body_mb: MaxBodyOpt = None,
    description: DescriptionOpt = None,
    wait_: Annotated[
        bool, typer.Option("--wait", help="Wait until every instance runs the change and is Healthy")
    ] = False,
    timeout: TimeoutOpt = 300,
    fmt: FormatOpt = Format.table,
) -> None:
    """Change a node; only the flags given change. A change to what runs rolls out one instance
    at a time, so the node keeps serving."""
    with client() as c:
        p, old = _find(c, project, node)
        body = node_body(
            old=old,
            description=description,
            models=model,
            command=command_argv(command, command_arg),
            image=image,
            port=port,
            configuration=configuration,
            min_=min_,
            max_=max_,
            env=env,
            unset_env=unset_env,
            health={
                "type": health_type.upper() if health_type else None,
                "service": health_service,
                "path": health_path,
                "port": health_port,
                "intervalS": health_interval,
                "timeoutS": health_timeout,
                "healthyThreshold": healthy_threshold,
                "unhealthyThreshold": unhealthy_threshold,
            },
            telemetry={"path": telemetry_path, "port": telemetry_port},
            endpoint=_endpoint(
                protocol,
                request_timeout,
                idle_timeout,
                max_concurrency,
                queue_length,
                queue_timeout,
                max_body_mb,
            ),
        )
        if name:
            body["name"] = name
        if not body:
            usage("nothing to change: give at least one flag (see --help)")
        n = c.patch(f"/projects/{p['id']}/nodes/{old['id']}", body)
        if wait_:
            n = wait(c, p["id"], n, timeout, rollout=True)
    rolled = n["revision"] != old["revision"]
    message = f"Updated node {n['name']}" + (
        f": revision {n['revision']}" + (" is live" if wait_ else " rolls out one instance at a time")
        if rolled
        else ""
    )
    emit_done(n, fmt, message)


@app.command()
def suspend(node: NodeArg, project: ProjectOpt, fmt: FormatOpt = Format.table) -> None:
    """Stop the node's instances and their billing; its settings stay (resume brings it back)."""
    with client() as c:
        p, n = _find(c, project, node)
        n = c.post(f"/projects/{p['id']}/nodes/{n['id']}:suspend")
    emit_done(n, fmt, f"Suspending node {n['name']}: its instances stop and are no longer billed")


@app.command()
def resume(
    node: NodeArg,
    project: ProjectOpt,
    wait_: WaitOpt = False,
    timeout: TimeoutOpt = 300,
    fmt: FormatOpt = Format.table,
) -> None:
    """Start a suspended node's instances again."""
    with client() as c:
        p, n = _find(c, project, node)
        n = c.post(f"/projects/{p['id']}/nodes/{n['id']}:resume")
        if wait_:
            n = wait(c, p["id"], n, timeout)
    emit_done(n, fmt, f"Resumed node {n['name']}" + (f": Healthy, {count(n)} instances" if wait_ else ""))


@app.command()
def delete(node: NodeArg, project: ProjectOpt, yes: YesOpt = False, fmt: FormatOpt = Format.table) -> None:
    """Delete a node (refused while an alias sends it requests: move its share first)."""
    with client() as c:
        p, n = _find(c, project, node)
        confirm(f"Delete node {n['name']} of project {p['name']}?", yes)
        n = c.delete(f"/projects/{p['id']}/nodes/{n['id']}")
    emit_done(n, fmt, f"Deleting node {n['name']}: its instances stop shortly")


@app.command()
def logs(
    node: NodeArg,
    project: ProjectOpt,
    instance: Annotated[
        str | None, typer.Option("--instance", help="Instance id (default: a Healthy one, else the first)")
    ] = None,
    stream: Annotated[str, typer.Option("--stream", help="stdout, stderr or system")] = "stdout",
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines")] = False,
    previous: Annotated[
        bool, typer.Option("--previous", help="The run before the latest (what it printed before a restart)")
    ] = False,
    run: Annotated[
        int | None,
        typer.Option("--run", help=f"0 the latest run, 1 the one before… up to {MAX_RUN} (`node runs`)"),
    ] = None,
) -> None:
    """An instance's log: of its latest run, or with --previous / --run of an earlier one
    (`--stream system` says why it ended; `atoll node runs` lists the runs)."""
    if stream not in ("stdout", "stderr", "system"):
        usage(f"--stream must be stdout, stderr or system (got {stream!r})")
    if run is not None and not 0 <= run <= MAX_RUN:
        usage(f"--run must be 0 (the latest) to {MAX_RUN}: an instance keeps its last {MAX_RUN + 1} runs")
    if previous and run not in (None, 1):
        usage("--previous is --run 1: give one of them")
    which = 1 if previous else (run or 0)
    with client() as c:
        p, n = _find(c, project, node)
        instance = _instance(n, instance)
        path = f"/projects/{p['id']}/nodes/{n['id']}/logs"
        offset, ended = 0, True
        try:
            while True:
                chunk = c.get(path, instance=instance, stream=stream, offset=offset, run=which)
                if chunk["data"]:
                    sys.stdout.write(chunk["data"])
                    sys.stdout.flush()
                    ended = chunk["data"].endswith("\n")
                    offset = chunk["offset"]
                    continue
                offset = chunk["offset"]
                if not follow or chunk["eof"]:
                    break
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        if not ended and sys.stdout.isatty():
            sys.stdout.write("\n")  # a log cut mid-line must not run into the prompt


def _instance(n: Obj, instance: str | None) -> str | None:
    """The instance named, else a Healthy one, else the first (None: the node has none now)."""
    if instance is not None:
        return instance
    live = sorted(n.get("instances", []), key=lambda i: i["status"] != InstanceStatus.HEALTHY)
    return str(live[0]["id"]) if live else None


@app.command()
def runs(
    node: NodeArg,
    project: ProjectOpt,
    instance: Annotated[
        str | None, typer.Option("--instance", help="Instance id (default: a Healthy one, else the first)")
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """An instance's runs, newest first, and why each ended (a crash restarts it as a new run);
    `atoll node logs --run N` shows one's log."""
    with client() as c:
        p, n = _find(c, project, node)
        instance = _instance(n, instance)
        if instance is None:
            fail(f"node {n['name']} has no instances now: name one with --instance")
        items = c.get(f"/projects/{p['id']}/nodes/{n['id']}/instances/{quote(instance, safe='')}/runs")
    emit_list(items, fmt, RUN_COLUMNS, "no runs yet")


@app.command()
def request(
    node: NodeArg,
    project: ProjectOpt,
    method: MethodOpt = None,
    path: PathOpt = "/",
    data: DataOpt = None,
    header: HeaderOpt = None,
    gateway: GatewayOpt = None,
    via_api: Annotated[
        bool, typer.Option("--via-api", help="Send it through the API's test console, not the gateway")
    ] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Send a test request to the node through the gateway (x-node-id, your API token)."""
    with client() as c:
        p, n = _find(c, project, node)
        if via_api:
            send_via_api(c, p["id"], n["id"], method=method, path=path, data=data, header=header, fmt=fmt)
            return
        if not c.token:
            fail("nodes are private and you are not logged in (run `atoll login`)")
        send(
            c,
            route={"x-node-id": n["id"]},
            method=method,
            path=path,
            data=data,
            header=header,
            gateway=gateway,
            send_token=True,
            fmt=fmt,
        )
