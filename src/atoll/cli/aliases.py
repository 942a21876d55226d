"""`atoll alias`: a stable name that splits requests across nodes by percentage (spec §6.3).

Moving weights between nodes (`alias update --node old=0 --node new=100`) switches traffic at
once without failing a request: deploy a new node, then move its share.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from atoll.cli import resolve
from atoll.cli.deploy import DataOpt, GatewayOpt, HeaderOpt, MethodOpt, PathOpt, ProjectOpt, pairs, send
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
    print_json,
    print_object,
    print_table,
    success,
    usage,
)
from atoll.client import Client, resolve_gateway_url

app = typer.Typer(help=summary("alias"), no_args_is_help=True)

Obj = dict[str, Any]
AliasArg = Annotated[str, typer.Argument(help="Alias name or id")]
NodesOpt = Annotated[
    list[str] | None,
    typer.Option("--node", help="NODE=WEIGHT: node name or id and its percentage (repeatable; sum 100)"),
]
MetaOpt = Annotated[list[str] | None, typer.Option("--meta", help="KEY=VALUE metadata (repeatable)")]


def _split(a: Obj) -> str:
    return ", ".join(f"{e['nodeName'] or e['nodeId']}={e['weight']}%" for e in a["nodes"])


COLUMNS: list[Column] = [
    ("NAME", "name"),
    ("ID", "id"),
    ("NODES", _split),
    ("PUBLIC", "public"),
    ("UPDATED", "updatedAt"),
]
NODE_COLUMNS: list[Column] = [
    ("NODE", "nodeName"),
    ("ID", "nodeId"),
    ("WEIGHT", lambda e: f"{e['weight']}%"),
    ("STATUS", "status"),
]


def _nodes(values: list[str] | None) -> list[Obj] | None:
    """``--node a=70 --node b=30`` → [{nodeId: a, weight: 70}, …] (the API takes names too)."""
    if not values:
        return None
    entries: list[Obj] = []
    for value in values:
        node, sep, weight = value.rpartition("=")
        if not sep or not node:
            usage(f"--node takes NODE=WEIGHT, e.g. my-node=100 (got {value!r})")
        try:
            share = int(weight)
        except ValueError:
            usage(f"--node {value}: the weight must be a whole percentage, 0-100 (got {weight!r})")
        entries.append({"nodeId": node, "weight": share})
    return entries


def _find(c: Client, project: str, alias: str) -> tuple[Obj, Obj]:
    p = resolve.project(c, project)
    return p, c.get(f"/projects/{p['id']}/aliases/{quote(alias, safe='')}")


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Alias name, unique in the installation")],
    project: ProjectOpt,
    node: NodesOpt = None,
    public: Annotated[
        bool, typer.Option("--public", help="Anyone may call it; otherwise callers need an API token")
    ] = False,
    meta: MetaOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Publish nodes under NAME, each with a share of the requests (shares sum to 100)."""
    entries = _nodes(node)
    if not entries:
        usage("give at least one --node NODE=WEIGHT")
    body = {"name": name, "nodes": entries, "metadata": pairs(meta, "--meta") or {}, "public": public}
    with client() as c:
        p = resolve.project(c, project)
        a = c.post(f"/projects/{p['id']}/aliases", body)
    emit_done(a, fmt, f"Created alias {a['name']} in project {p['name']}: {_split(a)}")


@app.command()
def update(
    alias: AliasArg,
    project: ProjectOpt,
    node: Annotated[
        list[str] | None,
        typer.Option("--node", help="NODE=WEIGHT; the given list replaces the alias's nodes (sum 100)"),
    ] = None,
    public: Annotated[
        bool | None, typer.Option("--public/--private", help="Open it to anyone, or require a token")
    ] = None,
    meta: Annotated[list[str] | None, typer.Option("--meta", help="Add or change KEY=VALUE")] = None,
    unset_meta: Annotated[list[str] | None, typer.Option("--unset-meta", help="Remove a key")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Change the nodes and their shares (switched at once, no request fails), ACL or metadata."""
    body: Obj = {}
    entries = _nodes(node)
    if entries is not None:
        body["nodes"] = entries
    if public is not None:
        body["public"] = public
    with client() as c:
        p, old = _find(c, project, alias)
        metadata = pairs(meta, "--meta", old["metadata"], unset_meta)
        if metadata is not None:
            body["metadata"] = metadata
        if not body:
            usage("nothing to change: give --node, --public/--private, --meta or --unset-meta")
        a = c.patch(f"/projects/{p['id']}/aliases/{old['id']}", body)
    emit_done(a, fmt, f"Updated alias {a['name']}: {_split(a)}" + (", public" if a["public"] else ""))


@app.command("list")
def list_(project: ProjectOpt, fmt: FormatOpt = Format.table) -> None:
    """The project's aliases and how they split requests."""
    with client() as c:
        p = resolve.project(c, project)
        emit_list(c.get(f"/projects/{p['id']}/aliases"), fmt, COLUMNS, "no aliases")


@app.command()
def get(
    alias: AliasArg, project: ProjectOpt, gateway: GatewayOpt = None, fmt: FormatOpt = Format.table
) -> None:
    """An alias: its nodes and shares, access, metadata, and how to call it."""
    with client() as c:
        _, a = _find(c, project, alias)
        url = resolve_gateway_url(c.url, gateway)
    if fmt is Format.json:
        print_json(a)
        return
    auth = "" if a["public"] else ' -H "Authorization: Bearer $ATOLL_TOKEN"'
    print_object(
        {
            "name": a["name"],
            "id": a["id"],
            "access": "public" if a["public"] else "private (callers need an Atoll API token)",
            "metadata": a["metadata"] or None,
            "call": f'curl -H "x-node-alias: {a["name"]}"{auth} {url}/',
            "createdAt": a["createdAt"],
            "updatedAt": a["updatedAt"],
        }
    )
    typer.echo()
    print_table(a["nodes"], NODE_COLUMNS)


@app.command()
def delete(alias: AliasArg, project: ProjectOpt, yes: YesOpt = False) -> None:
    """Delete an alias: the gateway stops routing its name (the nodes keep running)."""
    with client() as c:
        p, a = _find(c, project, alias)
        confirm(f"Delete alias {a['name']} of project {p['name']}?", yes)
        c.delete(f"/projects/{p['id']}/aliases/{a['id']}")
    success(f"Deleted alias {a['name']}")


@app.command()
def request(
    alias: AliasArg,
    project: ProjectOpt,
    method: MethodOpt = None,
    path: PathOpt = "/",
    data: DataOpt = None,
    header: HeaderOpt = None,
    gateway: GatewayOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Send a request through the gateway as model users do (x-node-alias; your API token for a
    private alias; a public one gets no token, so it never reaches the service)."""
    with client() as c:
        _, a = _find(c, project, alias)
        send(
            c,
            route={"x-node-alias": a["name"]},
            method=method,
            path=path,
            data=data,
            header=header,
            gateway=gateway,
            send_token=not a["public"],
            fmt=fmt,
        )
