"""`atoll config`: the compute configuration catalogue (c1.4, g1.1, …) and what runs here (spec §3.1)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from atoll.cli import resolve
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
    emit_one,
    success,
    usage,
)

app = typer.Typer(help=summary("config"), no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Configuration name, e.g. c1.4")]


def _gpu(cfg: dict[str, Any]) -> str:
    return f"{cfg['gpuCount']} x {cfg['gpuType']}" if cfg.get("gpuCount") else "-"


def _availability(cfg: dict[str, Any]) -> str:
    return "yes" if cfg["available"] else f"no: {cfg['availabilityReason']}"


def _columns(with_allowed: bool) -> list[Column]:
    columns: list[Column] = [
        ("NAME", "name"),
        ("VCPU", "vcpu"),
        ("RAM GB", "ramGb"),
        ("GPU", _gpu),
        ("UNITS/S", "unitsPerSecond"),
        ("TIER", "accessTier"),
        ("ENABLED", "enabled"),
        ("AVAILABLE", _availability),
    ]
    if with_allowed:
        columns.append(("ALLOWED", "allowed"))
    return columns


@app.command("list")
def list_(
    community: Annotated[
        str | None, typer.Option("--community", "-c", help="Mark what this community allows")
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Mark what this project's community allows")
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """The catalogue, with whether each configuration can run on this installation."""
    if community and project:
        usage("give --community or --project, not both")
    with client() as c:
        params: dict[str, Any] = {}
        if community:
            params["communityId"] = resolve.community(c, community)["id"]
        if project:
            params["projectId"] = resolve.project(c, project)["id"]
        emit_list(c.get("/configurations", **params), fmt, _columns(bool(params)), "the catalogue is empty")


@app.command()
def get(name: NameArg, fmt: FormatOpt = Format.table) -> None:
    """Show one configuration."""
    with client() as c:
        emit_one(c.get(f"/configurations/{quote(name, safe='')}"), fmt)


@app.command("set")
def set_(
    name: NameArg,
    vcpu: Annotated[float | None, typer.Option(help="vCPUs")] = None,
    ram_gb: Annotated[float | None, typer.Option(help="RAM in GB")] = None,
    units_per_second: Annotated[int | None, typer.Option(help="Units billed per second")] = None,
    async_units_per_second: Annotated[int | None, typer.Option(help="Units per second in async mode")] = None,
    gpu_count: Annotated[int | None, typer.Option(help="Number of GPUs")] = None,
    gpu_type: Annotated[
        str | None, typer.Option(help="GPU type matched against detected names, e.g. A100")
    ] = None,
    vram_gb: Annotated[float | None, typer.Option(help="GPU memory in GB")] = None,
    platform: Annotated[str | None, typer.Option(help="CPU platform shown to users")] = None,
    access_tier: Annotated[str | None, typer.Option(help="everyone, deposit, business or local")] = None,
    description: Annotated[str | None, typer.Option(help="Free text")] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enabled/--disabled", help="Offer it to users or not")
    ] = None,
    sort_order: Annotated[int | None, typer.Option(help="Position in lists")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Create or change a configuration (installation admins).

    A new configuration needs --vcpu, --ram-gb and --units-per-second.
    """
    fields = {
        "vcpu": vcpu,
        "ramGb": ram_gb,
        "unitsPerSecond": units_per_second,
        "asyncUnitsPerSecond": async_units_per_second,
        "gpuCount": gpu_count,
        "gpuType": gpu_type,
        "vramGb": vram_gb,
        "platform": platform,
        "accessTier": access_tier,
        "description": description,
        "enabled": enabled,
        "sortOrder": sort_order,
    }
    body = {k: v for k, v in fields.items() if v is not None}
    if not body:
        usage(
            "nothing to set: give at least one of --vcpu, --ram-gb, --units-per-second, "
            "--enabled/--disabled, …"
        )
    with client() as c:
        cfg = c.put(f"/configurations/{quote(name, safe='')}", body)
    emit_done(cfg, fmt, f"Saved configuration {cfg['name']} (available here: {_availability(cfg)})")


@app.command()
def delete(name: NameArg, yes: YesOpt = False) -> None:
    """Remove a configuration from the catalogue (installation admins)."""
    confirm(f"Delete configuration {name}?", yes)
    with client() as c:
        c.delete(f"/configurations/{quote(name, safe='')}")
    success(f"Deleted configuration {name}")
