"""`atoll community`: communities, their billing account and restrictions (spec §1, §7.2)."""

from __future__ import annotations

from typing import Annotated, Any

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
    drop_none,
    emit_done,
    emit_list,
    emit_one,
    out,
    parse_bool,
    parse_labels,
    print_object,
    success,
    usage,
)

app = typer.Typer(help=summary("community"), no_args_is_help=True)
restrictions_app = typer.Typer(
    help="Which configurations and features the community's projects may use (community Admins).",
    no_args_is_help=True,
)
app.add_typer(restrictions_app, name="restrictions")

COLUMNS: list[Column] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("ZONE", "zoneId"),
    ("BILLING ACCOUNT", "billingAccountId"),
    ("DESCRIPTION", "description"),
]
CommunityArg = Annotated[str, typer.Argument(help="Community id, name or ORGANIZATION/COMMUNITY")]
OrgOpt = Annotated[str | None, typer.Option("--org", help="Organization id or name")]
LabelOpt = Annotated[list[str] | None, typer.Option("--label", help="KEY=VALUE; repeat for several")]


@app.command("list")
def list_(org: OrgOpt = None, fmt: FormatOpt = Format.table) -> None:
    """Communities you can see."""
    with client() as c:
        params: dict[str, Any] = {}
        if org:
            params["organizationId"] = resolve.organization(c, org)["id"]
        emit_list(list(c.paginate("/communities", **params)), fmt, COLUMNS, "no communities")


@app.command()
def get(community: CommunityArg, org: OrgOpt = None, fmt: FormatOpt = Format.table) -> None:
    """Show one community."""
    with client() as c:
        emit_one(resolve.community(c, community, org), fmt)


@app.command()
def create(
    name: Annotated[
        str, typer.Argument(help="Lowercase letters, digits and hyphens; unique in the organization")
    ],
    org: OrgOpt = None,
    description: Annotated[str, typer.Option(help="Free text, up to 256 characters")] = "",
    zone: Annotated[str | None, typer.Option(help="Availability zone; fixed once created")] = None,
    billing_account: Annotated[str | None, typer.Option(help="Billing account id or name to link")] = None,
    label: LabelOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Create a community in an organization (you become its Admin)."""
    with client() as c:
        o = resolve.organization_or_default(c, org)
        body: dict[str, Any] = {"organizationId": o["id"], "name": name, "description": description}
        if zone:
            body["zoneId"] = zone
        if billing_account:
            body["billingAccountId"] = resolve.billing_account(c, billing_account, o["id"])["id"]
        labels = parse_labels(label)
        if labels is not None:
            body["labels"] = labels
        com = c.post("/communities", body)
    emit_done(com, fmt, f"Created community {com['name']} ({com['id']}) in organization {o['name']}")


@app.command()
def update(
    community: CommunityArg,
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    description: Annotated[str | None, typer.Option(help="New description")] = None,
    label: LabelOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Rename a community, or change its description or labels (community Editors)."""
    with client() as c:
        cid = resolve.community(c, community)["id"]
        body = drop_none({"name": name, "description": description, "labels": parse_labels(label)})
        com = c.patch(f"/communities/{cid}", body)
    emit_done(com, fmt, f"Updated community {com['name']} ({com['id']})")


@app.command()
def delete(community: CommunityArg, yes: YesOpt = False) -> None:
    """Delete a community that has no projects left (community Editors)."""
    with client() as c:
        com = resolve.community(c, community)
        confirm(f"Delete community {com['name']} ({com['id']})?", yes)
        c.delete(f"/communities/{com['id']}")
    success(f"Deleted community {com['name']}")


@app.command("link-billing")
def link_billing(
    community: CommunityArg,
    billing_account: Annotated[str | None, typer.Argument(help="Billing account id or name")] = None,
    unlink: Annotated[bool, typer.Option("--unlink", help="Remove the linked billing account")] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Link the billing account that pays for the community (community Editor + account Editor)."""
    if bool(billing_account) == unlink:
        usage("give a BILLING_ACCOUNT, or --unlink")
    with client() as c:
        com = resolve.community(c, community)
        ba_id = None
        if billing_account:
            ba_id = resolve.billing_account(c, billing_account, com["organizationId"])["id"]
        com = c.put(f"/communities/{com['id']}/billing-account", {"billingAccountId": ba_id})
    if fmt is Format.json:
        emit_one(com, fmt)
    elif ba_id:
        success(f"Community {com['name']} is now paid for by billing account {ba_id}")
    else:
        success(f"Community {com['name']} has no billing account now")


def _show_restrictions(r: dict[str, Any], fmt: Format) -> None:
    if fmt is Format.json:
        emit_one(r, fmt)
        return
    allowed = r.get("allowedConfigurations")
    out.print(f"allowed configurations: {', '.join(allowed) if allowed is not None else 'all'}", markup=False)
    print_object({"features": r.get("features", {})})


@restrictions_app.command("show")
def restrictions_show(community: CommunityArg, fmt: FormatOpt = Format.table) -> None:
    """Show allowed configurations and feature toggles."""
    with client() as c:
        cid = resolve.community(c, community)["id"]
        _show_restrictions(c.get(f"/communities/{cid}/restrictions"), fmt)


@restrictions_app.command("set")
def restrictions_set(
    community: CommunityArg,
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="A configuration the projects may use; repeat for several"),
    ] = None,
    allow_all: Annotated[bool, typer.Option("--allow-all", help="Allow every configuration")] = False,
    feature: Annotated[
        list[str] | None,
        typer.Option("--feature", help="NAME=true|false, e.g. nodesAndAliases=false; repeatable"),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Change allowed configurations (--allow c1.4 --allow s1.1, or --allow-all) and features."""
    if allow and allow_all:
        usage("give --allow or --allow-all, not both")
    body: dict[str, Any] = {}
    if allow:
        body["allowedConfigurations"] = list(allow)
    if allow_all:
        body["allowAllConfigurations"] = True
    if feature:
        features: dict[str, bool] = {}
        for item in feature:
            key, sep, value = item.partition("=")
            if not sep or not key:
                usage(f"--feature takes NAME=true|false (got {item!r})")
            features[key] = parse_bool(value, f"--feature {key}")
        body["features"] = features
    if not body:
        usage("nothing to change: give --allow, --allow-all or --feature")
    with client() as c:
        cid = resolve.community(c, community)["id"]
        _show_restrictions(c.patch(f"/communities/{cid}/restrictions", body), fmt)
