"""`atoll member`: who has which role on an organization, community, project or billing account (spec §2)."""

from __future__ import annotations

from typing import Annotated

import typer

from atoll.cli import resolve
from atoll.cli.lazy import summary
from atoll.cli.output import Column, Format, FormatOpt, client, emit_done, emit_list, fail, success, usage

app = typer.Typer(help=summary("member"), no_args_is_help=True)

OrgOpt = Annotated[str | None, typer.Option("--org", help="Organization id or name")]
CommunityOpt = Annotated[str | None, typer.Option("--community", "-c", help="Community id or name")]
ProjectOpt = Annotated[
    str | None, typer.Option("--project", "-p", help="Project id, name or COMMUNITY/PROJECT")
]
BillingOpt = Annotated[str | None, typer.Option("--billing-account", help="Billing account id or name")]
UserOpt = Annotated[str | None, typer.Option("--user", help="Username or user id")]
GroupOpt = Annotated[
    str | None, typer.Option("--group", help="Group name or id (of the resource's organization)")
]

COLUMNS: list[Column] = [
    ("BINDING", "id"),
    ("SUBJECT", "subjectName"),
    ("TYPE", "subjectType"),
    ("ROLE", "role"),
    ("ROLE ID", "roleId"),
    ("SINCE", "createdAt"),
]
ROLES_HELP = (
    "organization: member|admin; community and project: viewer|developer|editor|admin; "
    "billing account: viewer|editor|admin"
)


def _subject(user: str | None, group: str | None) -> tuple[str, str]:
    if bool(user) == bool(group):
        usage("give exactly one of --user or --group")
    return ("user", user) if user else ("group", group or "")


@app.command("list")
def list_(
    org: OrgOpt = None,
    community: CommunityOpt = None,
    project: ProjectOpt = None,
    billing_account: BillingOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """List the role bindings on one resource."""
    with client() as c:
        s = resolve.scope(
            c, org=org, community_ref=community, project_ref=project, billing_account_ref=billing_account
        )
        emit_list(c.get(f"{s.path}/access-bindings"), fmt, COLUMNS, f"no members on {s.kind} {s.label}")


@app.command()
def add(
    role: Annotated[str, typer.Option("--role", help=ROLES_HELP)],
    org: OrgOpt = None,
    community: CommunityOpt = None,
    project: ProjectOpt = None,
    billing_account: BillingOpt = None,
    user: UserOpt = None,
    group: GroupOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Give a user or group a role (replaces the role they had on that resource)."""
    subject_type, subject = _subject(user, group)
    with client() as c:
        s = resolve.scope(
            c, org=org, community_ref=community, project_ref=project, billing_account_ref=billing_account
        )
        b = c.post(
            f"{s.path}/access-bindings", {"subjectType": subject_type, "subject": subject, "role": role}
        )
    emit_done(b, fmt, f"{subject_type} {b['subjectName']} is now {b['role']} on {s.kind} {s.label}")


@app.command()
def remove(
    org: OrgOpt = None,
    community: CommunityOpt = None,
    project: ProjectOpt = None,
    billing_account: BillingOpt = None,
    user: UserOpt = None,
    group: GroupOpt = None,
    role: Annotated[str | None, typer.Option("--role", help="Only remove this role")] = None,
) -> None:
    """Take a user's or group's role(s) on the resource away."""
    subject_type, subject = _subject(user, group)
    with client() as c:
        s = resolve.scope(
            c, org=org, community_ref=community, project_ref=project, billing_account_ref=billing_account
        )
        bindings = [
            b
            for b in c.get(f"{s.path}/access-bindings")
            if b["subjectType"] == subject_type
            and subject in (b["subjectName"], b["subjectId"])
            and (role is None or b["role"] == role)
        ]
        if not bindings:
            lacks = f"does not have the role {role!r}" if role else "has no role"
            fail(f"{subject_type} {subject!r} {lacks} on {s.kind} {s.label}")
        for b in bindings:
            c.delete(f"{s.path}/access-bindings/{b['id']}")
    roles = ", ".join(b["role"] for b in bindings)
    success(f"Removed {subject_type} {subject} ({roles}) from {s.kind} {s.label}")
