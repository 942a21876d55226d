"""`atoll project`: projects, their settings and their unit limits (spec §1, §3.3, §7.2)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from atoll.cli import resolve
from atoll.cli.lazy import PROJECT, lazy_group, summary
from atoll.cli.output import (
    Column,
    Format,
    FormatOpt,
    YesOpt,
    client,
    confirm,
    drop_none,
    emit_done,
    emit_list,
    emit_one,
    parse_labels,
    parse_optional_int,
    success,
    usage,
)

app = typer.Typer(cls=lazy_group(PROJECT), help=summary("project"), no_args_is_help=True)
settings_app = typer.Typer(
    help="Project settings: default configuration, idle timeouts.", no_args_is_help=True
)
limits_app = typer.Typer(
    help="Project limits in units: balance, per hour, per execution.", no_args_is_help=True
)
app.add_typer(settings_app, name="settings")
app.add_typer(limits_app, name="limits")

ProjectArg = Annotated[str, typer.Argument(help="Project id, name or COMMUNITY/PROJECT")]
CommunityOpt = Annotated[str | None, typer.Option("--community", "-c", help="Community id or name")]
LabelOpt = Annotated[list[str] | None, typer.Option("--label", help="KEY=VALUE; repeat for several")]
DefaultConfigOpt = Annotated[
    str | None,
    typer.Option("--default-configuration", help="Configuration used by default, e.g. c1.4 ('none' clears)"),
]
DefaultEnvOpt = Annotated[
    str | None,
    typer.Option(
        "--default-environment",
        help="Where notebooks and jobs without env.python run, e.g. datascience ('none': the default)",
    ),
]
InactivityOpt = Annotated[
    str | None,
    typer.Option("--inactivity-timeout", help="Release idle compute after this long, e.g. 3h, 90m, 1800s"),
]
StaleModeOpt = Annotated[
    str | None,
    typer.Option(
        "--stale-exec-timeout-mode", help="Stop cells idle under 1% load: ONE_HOUR, THREE_HOURS, NO_TIMEOUT"
    ),
]
BalanceOpt = Annotated[
    str | None, typer.Option("--balance", help="Units the project may still spend ('none': no limit)")
]
PerHourOpt = Annotated[
    str | None, typer.Option("--max-units-per-hour", help="Units per hour at most ('none' clears)")
]
PerExecOpt = Annotated[
    str | None, typer.Option("--max-units-per-execution", help="Units per execution at most ('none' clears)")
]


COLUMNS: list[Column] = [
    ("ID", "id"),
    ("COMMUNITY", "communityName"),
    ("NAME", "name"),
    ("DEFAULT CONFIG", lambda p: p["settings"].get("defaultConfiguration")),
    ("DESCRIPTION", "description"),
]


def _settings_body(
    default_configuration: str | None,
    inactivity_timeout: str | None,
    stale_exec_timeout_mode: str | None,
    default_environment: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, value in (
        ("defaultConfiguration", default_configuration),
        ("defaultEnvironment", default_environment),
    ):
        if value is not None:
            body[key] = None if value.strip().lower() in ("none", "null", "") else value
    if inactivity_timeout is not None:
        body["vmInactivityTimeout"] = inactivity_timeout
    if stale_exec_timeout_mode is not None:
        body["staleExecTimeoutMode"] = stale_exec_timeout_mode
    return body


def _limits_body(balance: str | None, per_hour: str | None, per_exec: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if balance is not None:
        body["balance"] = parse_optional_int(balance, "--balance")
    if per_hour is not None:
        body["maxUnitsPerHour"] = parse_optional_int(per_hour, "--max-units-per-hour")
    if per_exec is not None:
        body["maxUnitsPerExecution"] = parse_optional_int(per_exec, "--max-units-per-execution")
    return body


@app.command("list")
def list_(
    community: CommunityOpt = None,
    name: Annotated[str | None, typer.Option("--name", help="Only projects whose name contains this")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Projects you can see."""
    with client() as c:
        params: dict[str, Any] = {}
        if community:
            params["communityId"] = resolve.community(c, community)["id"]
        if name:
            params["projectNamePattern"] = name
        items = list(c.paginate("/projects", **params))
        emit_list(items, fmt, COLUMNS, "no projects")


@app.command()
def get(project: ProjectArg, community: CommunityOpt = None, fmt: FormatOpt = Format.table) -> None:
    """Show one project."""
    with client() as c:
        emit_one(resolve.project(c, project, community), fmt)


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Project name, or COMMUNITY/NAME")],
    community: CommunityOpt = None,
    description: Annotated[str, typer.Option(help="Free text, up to 256 characters")] = "",
    label: LabelOpt = None,
    default_configuration: DefaultConfigOpt = None,
    inactivity_timeout: InactivityOpt = None,
    stale_exec_timeout_mode: StaleModeOpt = None,
    balance: BalanceOpt = None,
    max_units_per_hour: PerHourOpt = None,
    max_units_per_execution: PerExecOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Create a project in a community (needs community Developer; you become its Admin)."""
    if "/" in name:
        if community:
            usage("give the community once: COMMUNITY/NAME or --community, not both")
        community, name = name.rsplit("/", 1)
    if not community:
        usage("which community? give --community/-c COMMUNITY or COMMUNITY/NAME")
    with client() as c:
        com = resolve.community(c, community)
        body: dict[str, Any] = {"communityId": com["id"], "name": name, "description": description}
        labels = parse_labels(label)
        if labels is not None:
            body["labels"] = labels
        settings = _settings_body(default_configuration, inactivity_timeout, stale_exec_timeout_mode)
        if settings:
            body["settings"] = settings
        limits = _limits_body(balance, max_units_per_hour, max_units_per_execution)
        if limits:
            body["limits"] = limits
        p = c.post("/projects", body)
    emit_done(p, fmt, f"Created project {com['name']}/{p['name']} ({p['id']})")


@app.command()
def update(
    project: ProjectArg,
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    description: Annotated[str | None, typer.Option(help="New description")] = None,
    label: LabelOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Rename a project or change its description or labels (project Editors)."""
    body = drop_none({"name": name, "description": description, "labels": parse_labels(label)})
    if not body:
        usage("nothing to change: give --name, --description or --label")
    with client() as c:
        pid = resolve.project(c, project)["id"]
        p = c.patch(f"/projects/{pid}", body)
    emit_done(p, fmt, f"Updated project {p['name']} ({p['id']})")


@app.command()
def delete(project: ProjectArg, yes: YesOpt = False) -> None:
    """Delete a project (project Editors)."""
    with client() as c:
        p = resolve.project(c, project)
        confirm(f"Delete project {p['name']} ({p['id']}) and everything in it?", yes)
        c.delete(f"/projects/{p['id']}")
    success(f"Deleted project {p['name']}")


# --- settings -------------------------------------------------------------------------------


@settings_app.command("show")
def settings_show(project: ProjectArg, fmt: FormatOpt = Format.table) -> None:
    """Show the project's settings."""
    with client() as c:
        emit_one(resolve.project(c, project)["settings"], fmt)


@settings_app.command("set")
def settings_set(
    project: ProjectArg,
    default_configuration: DefaultConfigOpt = None,
    inactivity_timeout: InactivityOpt = None,
    stale_exec_timeout_mode: StaleModeOpt = None,
    default_environment: DefaultEnvOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Change settings (project Editors), e.g. --inactivity-timeout 1h --default-configuration c1.8."""
    body = _settings_body(
        default_configuration, inactivity_timeout, stale_exec_timeout_mode, default_environment
    )
    if not body:
        usage(
            "nothing to change: give --default-configuration, --default-environment, --inactivity-timeout "
            "or --stale-exec-timeout-mode"
        )
    with client() as c:
        pid = resolve.project(c, project)["id"]
        p = c.patch(f"/projects/{pid}", {"settings": body})
    emit_one(p["settings"], fmt)


# --- limits ---------------------------------------------------------------------------------


@limits_app.command("show")
def limits_show(project: ProjectArg, fmt: FormatOpt = Format.table) -> None:
    """Show balance and unit limits (project Editors; '-' means no limit)."""
    with client() as c:
        pid = resolve.project(c, project)["id"]
        emit_one(c.get(f"/projects/{pid}/limits"), fmt)


@limits_app.command("set")
def limits_set(
    project: ProjectArg,
    balance: BalanceOpt = None,
    max_units_per_hour: PerHourOpt = None,
    max_units_per_execution: PerExecOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Set limits (project Admins); `none` removes a limit."""
    body = _limits_body(balance, max_units_per_hour, max_units_per_execution)
    if not body:
        usage("nothing to change: give --balance, --max-units-per-hour or --max-units-per-execution")
    with client() as c:
        pid = resolve.project(c, project)["id"]
        emit_one(c.patch(f"/projects/{pid}/limits", body), fmt)
