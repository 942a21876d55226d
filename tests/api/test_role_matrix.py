"""Every role × every action of spec §2 × every API route.

Each route of the REST API must have an entry in CASES (a new route without one fails
`test_every_route_has_a_case`). For each persona the test computes, from the hand-written
spec table below and the persona's hand-written ranks, whether the call must succeed, be
refused with 403 (the caller can see the resource) or 404 (the caller cannot see it, so
it must not learn whether it exists), and checks the real app does exactly that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from atoll.app import api_route_table
from atoll.domain import access
from atoll.domain.access import Action
from atoll.store.tables import Community, Project, User
from tests.api.conftest import as_token
from tests.support.world import BA, COM, ORG, PASSWORD, PERSONAS, PRJ, RANKS, World, build_world

# Spec §2's "Action → minimum role" table, plus Atoll's organization/billing/system actions.
# (resource type whose rank counts, least rank); None: any signed-in user; "system": admins.
NEED: dict[str, tuple[str, int] | str | None] = {
    "public": None,
    "self": None,
    "catalog.view": None,
    "system.manage": "system",
    "organization.view": (ORG, 1),
    "organization.update": (ORG, 4),
    "organization.manageAccess": (ORG, 4),
    "group.view": (ORG, 1),
    "group.manage": (ORG, 4),
    "billingAccount.create": (ORG, 1),
    "billingAccount.view": (BA, 1),
    "billingAccount.use": (BA, 3),
    "billingAccount.update": (BA, 4),
    "billingAccount.manageAccess": (BA, 4),
    "community.create": (ORG, 1),
    "community.view": (COM, 1),  # View a community: Community Viewer
    "project.create": (COM, 2),  # Create a project: Community Developer
    "project.view": (PRJ, 1),  # View a project, its settings and users: Project Viewer
    "project.use": (PRJ, 2),  # Run the IDE; use, create or delete resources: Project Developer
    "project.update": (PRJ, 3),  # Edit project settings: Project Editor
    "project.delete": (PRJ, 3),  # Delete a project: Project Editor
    "project.manageAccess": (PRJ, 4),  # Grant roles in a project: Project Admin
    "project.viewLimits": (PRJ, 3),  # Viewing cost limits: Project Editor (concepts/budget.md)
    "project.setLimits": (PRJ, 4),  # Setting cost limits: Project Admin
    "community.update": (COM, 3),  # Edit community settings: Community Editor
    "community.linkBillingAccount": (COM, 3),  # Link a billing account: Community Editor
    "community.delete": (COM, 3),  # Delete a community: Community Editor
    "community.manageAccess": (COM, 4),  # Grant roles in a community: Community Admin
    "community.setRestrictions": (COM, 4),  # Limits and feature toggles: Community Admin
    "project.viewUsage": (PRJ, 3),  # costs: as the limits (project Editor)
    "community.viewUsage": (COM, 3),
    "organization.viewAudit": (ORG, 4),  # the audit log: organization admins
}
# Spec §2's action rows; each must be exercised by a route below or by test_actions_without_routes.
SPEC_ACTIONS = {
    "project.view",
    "community.view",
    "project.create",
    "project.use",
    "resource.publish",
    "project.update",
    "project.delete",
    "project.manageAccess",
    "community.update",
    "community.linkBillingAccount",
    "community.delete",
    "community.manageAccess",
    "project.viewLimits",
    "project.setLimits",
    "community.setRestrictions",
}


def allowed(persona: str, action: str) -> bool:
    need = NEED[action]
    if need is None:
        return True
    if need == "system":
        return persona == "sysadmin"
    rtype, rank = need
    return RANKS[persona][rtype] >= rank


@dataclass
class Case:
    action: str
    # "path": the resource in the path decides 404 (cannot view) vs 403; "body": a resource named
    # in the body decides 422 (cannot view: the field is named) vs 403; "list": always 200, and the
    # world's resource of `scope` is listed iff the persona can view it.
    kind: str
    scope: str | None
    build: Callable[[World, str], tuple[str, Any]]
    raw: bool = False  # the body is raw bytes (file upload), not JSON
    # What an allowed persona gets here besides success: a refusal that comes only after the
    # caller's rights were checked (images: this app has no Docker daemon, 409).
    also_ok: tuple[int, ...] = ()


def _w(fn: Callable[[World], str]) -> Callable[[World, str], tuple[str, Any]]:
    return lambda w, _p: (fn(w), None)


def _own_token(w: World, p: str) -> str:
    from atoll.domain import auth

    with w.db.transaction() as s:
        user = s.get(User, w.users[p])
        assert user is not None
        tok, _ = auth.create_token(s, user, "to-revoke", None)
        return tok.id


def _invite(w: World) -> str:
    """An invite into a project of a separate organization, so accepting it changes nothing here."""
    from atoll.domain import members
    from atoll.domain.access import ResourceType, load_principal
    from atoll.store.tables import Organization

    with w.db.transaction() as s:
        org = Organization(name=w.next_name("invite-org"))
        s.add(org)
        s.flush()
        com = Community(organization_id=org.id, name="c", zone_id="local", restrictions={})
        s.add(com)
        s.flush()
        prj = Project(community_id=com.id, name="p")
        s.add(prj)
        s.flush()
        admin = s.query(User).filter_by(username="sysadmin").one()
        _, raw = members.create_invite(
            s,
            load_principal(s, admin),
            ResourceType.PROJECT,
            prj.id,
            role="viewer",
            expires_in_days=1,
            max_uses=1,
        )
        return raw


def _invite_id(w: World, rtype: str, rid: str) -> str:
    from atoll.store.tables import Invite

    with w.db.transaction() as s:
        inv = Invite(
            token_hash=w.next_name("hash"),
            resource_type=rtype,
            resource_id=rid,
            role="viewer",
            expires_at=__import__("datetime").datetime(2100, 1, 1),
        )
        s.add(inv)
        s.flush()
        return inv.id


def _group_with_carol(w: World) -> str:
    from atoll.store.tables import GroupMember

    gid = w.fresh("group")
    with w.db.transaction() as s:
        s.add(GroupMember(group_id=gid, user_id=w.carol))
    return gid


def _config(w: World) -> str:
    from atoll.store.tables import Configuration

    name = f"t{w.counter + 1}.1"
    w.counter += 1
    with w.db.transaction() as s:
        s.add(Configuration(name=name, vcpu=1, ram_gb=1, units_per_second=1))
    return name


def _secret(w: World) -> str:
    from atoll.store.tables import Secret

    with w.db.transaction() as s:
        sec = Secret(project_id=w.project, name=w.next_name("sec"), ciphertext=b"x")
        s.add(sec)
        s.flush()
        return sec.name


def _ide_on(w: World) -> str:
    """The world's project, its community's external IDE link turned on (it is off by default)."""
    from atoll.store.tables import Community

    with w.db.transaction() as s:
        c = s.get(Community, w.community)
        assert c is not None
        r = dict(c.restrictions or {})
        c.restrictions = {**r, "features": {**dict(r.get("features") or {}), "externalIde": True}}
    return w.project


def _project_image(w: World, status: str = "FAILED") -> str:
    """A project's Docker image row: FAILED (rebuilding queues it; no daemon is needed) or READY."""
    from atoll.store.tables import ProjectImage

    with w.db.transaction() as s:
        project = s.get(Project, w.project)
        assert project is not None
        img = ProjectImage(
            project_id=w.project,
            community_id=project.community_id,
            name=w.next_name("img"),
            tag="1",
            dockerfile="FROM debian\n",
            status=status,
            image_id="sha256:" + "0" * 64 if status == "READY" else "",
        )
        s.add(img)
        s.flush()
        return img.id


def _project_env(w: World) -> str:
    """A project environment whose build failed (rebuilding it queues it; nothing runs here)."""
    from atoll.states import EnvironmentStatus
    from atoll.store.tables import EnvironmentRow

    with w.db.transaction() as s:
        env = EnvironmentRow(
            project_id=w.project,
            name=w.next_name("env"),
            python_version="3.11",
            requirements=["six==1.16.0"],
            resolved=["six==1.16.0"],
            status=EnvironmentStatus.FAILED,
        )
        s.add(env)
        s.flush()
        return env.id


def _notebook_file(w: World) -> str:
    """A notebook in the world project's storage, for projects/{id}:execute."""
    home = w.notebooks.projects_root / w.project / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "m.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    return "m.ipynb"


def _run(w: World) -> str:
    from atoll.store.tables import NotebookRun

    with w.db.transaction() as s:
        run = NotebookRun(
            project_id=w.project, notebook_id="m.ipynb", configuration="c1.4", created_by=w.carol
        )
        s.add(run)
        s.flush()
        return run.id


EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256 of b""


def _job(w: World, output: bool = False) -> str:
    """A job in CREATING (nothing to upload), optionally with an output whose content exists."""
    from atoll.jobspec.config import parse_config
    from atoll.store.tables import Job

    files: dict[str, Any] = {"inputs": [], "modules": [], "python": None, "envVars": {}}
    if output:
        files["outputs"] = [{"path": "out.txt", "var": None, "sha256": EMPTY_SHA, "size": 0, "isDir": False}]
        w.blobs.put_stream(iter([b""]))
    with w.db.transaction() as s:
        cfg, _ = parse_config("cmd: echo hi\ncloud-instance-types: c1.80\n")
        job = Job(project_id=w.project, config_yaml="cmd: echo hi\n", config=cfg.to_dict(), files=files)
        s.add(job)
        s.flush()
        return job.id


_ECHO: list[int] = []


def _echo_port() -> int:
    """A tiny HTTP server on loopback, standing in for a node's instance (started once)."""
    if not _ECHO:
        import http.server
        import threading

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a: object) -> None:
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        _ECHO.append(srv.server_address[1])
    return _ECHO[0]


def _node(w: World, healthy: bool = False) -> str:
    """A node of the world project (not started: controllers do not run here)."""
    from atoll.store.tables import Node, NodeInstance

    with w.db.transaction() as s:
        node = Node(
            project_id=w.project,
            name=w.next_name("node"),
            kind="command",
            spec={"command": ["true"], "env": {}, "healthCheck": {"path": "/"}},
            configuration="c1.4",
        )
        s.add(node)
        s.flush()
        if healthy:
            s.add(NodeInstance(node_id=node.id, project_id=w.project, status="Healthy", port=_echo_port()))
        return node.id


def _instance(w: World) -> str:
    """``nodes/{node}/instances/{instance}`` of a world project's node with one (never started) instance."""
    from atoll.store.tables import NodeInstance

    node = _node(w)
    with w.db.transaction() as s:
        inst = NodeInstance(node_id=node, project_id=w.project)
        s.add(inst)
        s.flush()
        return f"nodes/{node}/instances/{inst.id}"


def _model(w: World) -> str:
    from atoll.store.tables import Model

    with w.db.transaction() as s:
        m = Model(project_id=w.project, name=w.next_name("m"), version=1, format="noop", meta={}, files={})
        s.add(m)
        s.flush()
        return m.id


def _dataset(w: World) -> str:
    from atoll.store.tables import Dataset

    with w.db.transaction() as s:
        d = Dataset(project_id=w.project, name=w.next_name("ds"), size_gb=1, labels={})
        s.add(d)
        s.flush()
        return d.id


def _alias(w: World) -> str:
    from atoll.store.tables import Alias

    node = _node(w)
    with w.db.transaction() as s:
        a = Alias(project_id=w.project, name=w.next_name("al"), nodes=[{"nodeId": node, "weight": 100}])
        s.add(a)
        s.flush()
        return a.name


def _provider(w: World) -> str:
    """An identity provider of the world's organization (its issuer is never called here)."""
    from atoll.store.tables import IdentityProvider

    with w.db.transaction() as s:
        row = IdentityProvider(
            name=w.next_name("idp"),
            issuer="https://idp.example.test",
            client_id="atoll",
            organization_id=w.org,
        )
        s.add(row)
        s.flush()
        return row.id


def _sso_user(w: World) -> str:
    """carol, signed in once through a provider of the world's organization."""
    from atoll.store.tables import ExternalIdentity

    provider = _provider(w)
    with w.db.transaction() as s:
        s.add(ExternalIdentity(provider_id=provider, subject=w.next_name("sub"), user_id=w.carol))
    return w.carol


def _sso_code(w: World, p: str) -> tuple[str, Any]:
    """A finished `atoll login --sso` of the persona: its one-time code and verifier."""
    from datetime import timedelta

    from atoll.domain import auth, sso_accounts
    from atoll.store.tables import SsoSignIn, utcnow

    code, verifier = f"code-{w.next_name(p)}", f"verifier-{w.next_name(p)}-0123456789abcdef"
    provider = _provider(w)
    with w.db.transaction() as s:
        s.add(
            SsoSignIn(
                state_hash=auth.sha256(code + "-state"),
                provider_id=provider,
                nonce="n",
                code_verifier=b"",
                redirect_uri="http://127.0.0.1/cb",
                cli_port=50000,
                cli_state="s" * 20,
                cli_challenge=sso_accounts.challenge_of(verifier),
                user_id=w.users[p],
                cli_code_hash=auth.sha256(code),
                expires_at=utcnow() + timedelta(minutes=5),
            )
        )
    return f"{V}/auth/sso/tokens", {"code": code, "verifier": verifier, "name": "sso"}


V = "/api/v1"
CASES: dict[tuple[str, str], Case] = {
    # auth and the caller's own account
    ("POST", f"{V}/auth/sessions"): Case(
        "public",
        "any",
        None,
        lambda w, p: (f"{V}/auth/sessions", {"username": p.replace(".", "-"), "password": PASSWORD}),
    ),
    ("DELETE", f"{V}/auth/sessions/current"): Case(
        "self", "any", None, _w(lambda w: f"{V}/auth/sessions/current")
    ),
    ("POST", f"{V}/auth/tokens"): Case(
        "public",
        "any",
        None,
        lambda w, p: (f"{V}/auth/tokens", {"username": p.replace(".", "-"), "password": PASSWORD}),
    ),
    ("GET", f"{V}/auth/providers"): Case("public", "any", None, _w(lambda w: f"{V}/auth/providers")),
    ("POST", f"{V}/auth/sso/tokens"): Case("public", "any", None, _sso_code),
    ("GET", f"{V}/identity-providers"): Case(
        "system.manage", "any", None, _w(lambda w: f"{V}/identity-providers")
    ),
    ("POST", f"{V}/identity-providers"): Case(
        "system.manage",
        "any",
        None,
        lambda w, p: (
            f"{V}/identity-providers",
            {
                "name": w.next_name("idp"),
                "issuer": "https://idp.example.test/realms/acme",
                "clientId": "atoll",
                "clientSecret": "s3cr3t-client",
                "organizationId": w.org,
            },
        ),
    ),
    ("GET", f"{V}/identity-providers/{{provider_id}}"): Case(
        "system.manage", "any", None, _w(lambda w: f"{V}/identity-providers/{_provider(w)}")
    ),
    ("PATCH", f"{V}/identity-providers/{{provider_id}}"): Case(
        "system.manage",
        "any",
        None,
        lambda w, p: (f"{V}/identity-providers/{_provider(w)}", {"displayName": "Acme SSO"}),
    ),
    ("DELETE", f"{V}/identity-providers/{{provider_id}}"): Case(
        "system.manage", "any", None, _w(lambda w: f"{V}/identity-providers/{_provider(w)}")
    ),
    ("POST", f"{V}/users/{{user_id}}:end-sso-sessions"): Case(
        "organization.manageAccess",
        "path",
        ORG,
        _w(lambda w: f"{V}/users/{_sso_user(w)}:end-sso-sessions"),
        raw=True,
    ),
    ("GET", f"{V}/audit-records"): Case("system.manage", "any", None, _w(lambda w: f"{V}/audit-records")),
    ("GET", f"{V}/organizations/{{org_id}}/audit-records"): Case(
        "organization.viewAudit", "path", ORG, _w(lambda w: f"{V}/organizations/{w.org}/audit-records")
    ),
    ("GET", f"{V}/organizations/{{org_id}}/audit-records:export"): Case(
        "organization.viewAudit", "path", ORG, _w(lambda w: f"{V}/organizations/{w.org}/audit-records:export")
    ),
    ("GET", f"{V}/users/me"): Case("self", "any", None, _w(lambda w: f"{V}/users/me")),
    ("PUT", f"{V}/users/me/password"): Case(
        "self",
        "any",
        None,
        lambda w, p: (f"{V}/users/me/password", {"currentPassword": PASSWORD, "newPassword": PASSWORD}),
    ),
    ("GET", f"{V}/tokens"): Case("self", "any", None, _w(lambda w: f"{V}/tokens")),
    ("POST", f"{V}/tokens"): Case("self", "any", None, lambda w, p: (f"{V}/tokens", {"name": "t"})),
    ("DELETE", f"{V}/tokens/{{token_id}}"): Case(
        "self", "any", None, lambda w, p: (f"{V}/tokens/{_own_token(w, p)}", None)
    ),
    ("GET", f"{V}/users"): Case("self", "any", None, _w(lambda w: f"{V}/users")),
    ("POST", f"{V}/users"): Case(
        "system.manage",
        "any",
        None,
        lambda w, p: (f"{V}/users", {"username": w.next_name("u"), "password": PASSWORD}),
    ),
    ("GET", f"{V}/system/capacity"): Case("self", "any", None, _w(lambda w: f"{V}/system/capacity")),
    # organizations
    ("GET", f"{V}/organizations"): Case("organization.view", "list", ORG, _w(lambda w: f"{V}/organizations")),
    ("POST", f"{V}/organizations"): Case(
        "system.manage", "any", None, lambda w, p: (f"{V}/organizations", {"name": w.next_name("neworg")})
    ),
    ("GET", f"{V}/organizations/{{organization_id}}"): Case(
        "organization.view", "path", ORG, _w(lambda w: f"{V}/organizations/{w.org}")
    ),
    ("PATCH", f"{V}/organizations/{{organization_id}}"): Case(
        "organization.update", "path", ORG, lambda w, p: (f"{V}/organizations/{w.org}", {"description": "x"})
    ),
    ("DELETE", f"{V}/organizations/{{organization_id}}"): Case(
        "system.manage", "path", ORG, _w(lambda w: f"{V}/organizations/{w.fresh(ORG)}")
    ),
    ("GET", f"{V}/organizations/{{organization_id}}/access-bindings"): Case(
        "organization.view", "path", ORG, _w(lambda w: f"{V}/organizations/{w.org}/access-bindings")
    ),
    ("POST", f"{V}/organizations/{{organization_id}}/access-bindings"): Case(
        "organization.manageAccess",
        "path",
        ORG,
        lambda w, p: (f"{V}/organizations/{w.org}/access-bindings", {"subject": "carol", "role": "member"}),
    ),
    ("DELETE", f"{V}/organizations/{{organization_id}}/access-bindings/{{binding_id}}"): Case(
        "organization.manageAccess",
        "path",
        ORG,
        _w(lambda w: f"{V}/organizations/{w.org}/access-bindings/{w.binding(ORG, w.org)}"),
    ),
    # groups
    ("GET", f"{V}/groups"): Case("group.view", "list", "group", _w(lambda w: f"{V}/groups")),
    ("POST", f"{V}/groups"): Case(
        "group.manage",
        "body",
        ORG,
        lambda w, p: (f"{V}/groups", {"organizationId": w.org, "name": w.next_name("g")}),
    ),
    ("GET", f"{V}/groups/{{group_id}}"): Case(
        "group.view", "path", ORG, _w(lambda w: f"{V}/groups/{w.group_project}")
    ),
    ("PATCH", f"{V}/groups/{{group_id}}"): Case(
        "group.manage", "path", ORG, lambda w, p: (f"{V}/groups/{w.group_project}", {"description": "x"})
    ),
    ("DELETE", f"{V}/groups/{{group_id}}"): Case(
        "group.manage", "path", ORG, _w(lambda w: f"{V}/groups/{w.fresh('group')}")
    ),
    ("GET", f"{V}/groups/{{group_id}}/members"): Case(
        "group.view", "path", ORG, _w(lambda w: f"{V}/groups/{w.group_project}/members")
    ),
    ("POST", f"{V}/groups/{{group_id}}/members"): Case(
        "group.manage",
        "path",
        ORG,
        lambda w, p: (f"{V}/groups/{w.fresh('group')}/members", {"user": "carol"}),
    ),
    ("DELETE", f"{V}/groups/{{group_id}}/members/{{user}}"): Case(
        "group.manage", "path", ORG, _w(lambda w: f"{V}/groups/{_group_with_carol(w)}/members/carol")
    ),
    # billing accounts
    ("GET", f"{V}/billing-accounts"): Case(
        "billingAccount.view", "list", BA, _w(lambda w: f"{V}/billing-accounts")
    ),
    ("POST", f"{V}/billing-accounts"): Case(
        "billingAccount.create",
        "body",
        ORG,
        lambda w, p: (f"{V}/billing-accounts", {"organizationId": w.org, "name": w.next_name("b")}),
    ),
    ("GET", f"{V}/billing-accounts/{{billing_account_id}}"): Case(
        "billingAccount.view", "path", BA, _w(lambda w: f"{V}/billing-accounts/{w.ba}")
    ),
    ("PATCH", f"{V}/billing-accounts/{{billing_account_id}}"): Case(
        "billingAccount.update",
        "path",
        BA,
        lambda w, p: (f"{V}/billing-accounts/{w.ba}", {"description": "x"}),
    ),
    ("DELETE", f"{V}/billing-accounts/{{billing_account_id}}"): Case(
        "billingAccount.update", "path", BA, _w(lambda w: f"{V}/billing-accounts/{w.fresh(BA)}")
    ),
    ("GET", f"{V}/billing-accounts/{{billing_account_id}}/usage"): Case(
        "billingAccount.view", "path", BA, _w(lambda w: f"{V}/billing-accounts/{w.ba}/usage")
    ),
    ("GET", f"{V}/billing-accounts/{{billing_account_id}}/access-bindings"): Case(
        "billingAccount.view", "path", BA, _w(lambda w: f"{V}/billing-accounts/{w.ba}/access-bindings")
    ),
    ("POST", f"{V}/billing-accounts/{{billing_account_id}}/access-bindings"): Case(
        "billingAccount.manageAccess",
        "path",
        BA,
        lambda w, p: (f"{V}/billing-accounts/{w.ba}/access-bindings", {"subject": "carol", "role": "viewer"}),
    ),
    ("DELETE", f"{V}/billing-accounts/{{billing_account_id}}/access-bindings/{{binding_id}}"): Case(
        "billingAccount.manageAccess",
        "path",
        BA,
        _w(lambda w: f"{V}/billing-accounts/{w.ba}/access-bindings/{w.binding(BA, w.ba)}"),
    ),
    # communities
    ("GET", f"{V}/communities"): Case("community.view", "list", COM, _w(lambda w: f"{V}/communities")),
    ("POST", f"{V}/communities"): Case(
        "community.create",
        "body",
        ORG,
        lambda w, p: (f"{V}/communities", {"organizationId": w.org, "name": w.next_name("c")}),
    ),
    ("GET", f"{V}/communities/{{community_id}}"): Case(
        "community.view", "path", COM, _w(lambda w: f"{V}/communities/{w.community}")
    ),
    ("PATCH", f"{V}/communities/{{community_id}}"): Case(
        "community.update", "path", COM, lambda w, p: (f"{V}/communities/{w.community}", {"description": "x"})
    ),
    ("DELETE", f"{V}/communities/{{community_id}}"): Case(
        "community.delete", "path", COM, _w(lambda w: f"{V}/communities/{w.fresh(COM)}")
    ),
    ("PUT", f"{V}/communities/{{community_id}}/billing-account"): Case(
        "community.linkBillingAccount",
        "path",
        COM,
        lambda w, p: (f"{V}/communities/{w.community}/billing-account", {"billingAccountId": None}),
    ),
    ("GET", f"{V}/communities/{{community_id}}/restrictions"): Case(
        "community.view", "path", COM, _w(lambda w: f"{V}/communities/{w.community}/restrictions")
    ),
    ("PATCH", f"{V}/communities/{{community_id}}/restrictions"): Case(
        "community.setRestrictions",
        "path",
        COM,
        lambda w, p: (f"{V}/communities/{w.community}/restrictions", {"features": {"datasets": True}}),
    ),
    ("GET", f"{V}/communities/{{community_id}}/access-bindings"): Case(
        "community.view", "path", COM, _w(lambda w: f"{V}/communities/{w.community}/access-bindings")
    ),
    ("POST", f"{V}/communities/{{community_id}}/access-bindings"): Case(
        "community.manageAccess",
        "path",
        COM,
        lambda w, p: (
            f"{V}/communities/{w.community}/access-bindings",
            {"subject": "carol", "role": "viewer"},
        ),
    ),
    ("DELETE", f"{V}/communities/{{community_id}}/access-bindings/{{binding_id}}"): Case(
        "community.manageAccess",
        "path",
        COM,
        _w(lambda w: f"{V}/communities/{w.community}/access-bindings/{w.binding(COM, w.community)}"),
    ),
    ("POST", f"{V}/communities/{{community_id}}/invites"): Case(
        "community.manageAccess",
        "path",
        COM,
        lambda w, p: (f"{V}/communities/{w.community}/invites", {"role": "viewer"}),
    ),
    ("GET", f"{V}/communities/{{community_id}}/invites"): Case(
        "community.manageAccess", "path", COM, _w(lambda w: f"{V}/communities/{w.community}/invites")
    ),
    ("DELETE", f"{V}/communities/{{community_id}}/invites/{{invite_id}}"): Case(
        "community.manageAccess",
        "path",
        COM,
        _w(lambda w: f"{V}/communities/{w.community}/invites/{_invite_id(w, COM, w.community)}"),
    ),
    # projects
    ("GET", f"{V}/projects"): Case("project.view", "list", PRJ, _w(lambda w: f"{V}/projects")),
    ("POST", f"{V}/projects"): Case(
        "project.create",
        "body",
        COM,
        lambda w, p: (f"{V}/projects", {"communityId": w.community, "name": w.next_name("p")}),
    ),
    ("GET", f"{V}/projects/{{project_id}}"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}")
    ),
    ("PATCH", f"{V}/projects/{{project_id}}"): Case(
        "project.update",
        "path",
        PRJ,
        lambda w, p: (f"{V}/projects/{w.project}", {"settings": {"vmInactivityTimeout": "2h"}}),
    ),
    ("DELETE", f"{V}/projects/{{project_id}}"): Case(
        "project.delete", "path", PRJ, _w(lambda w: f"{V}/projects/{w.fresh(PRJ)}")
    ),
    ("GET", f"{V}/projects/{{project_id}}/limits"): Case(
        "project.viewLimits", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/limits")
    ),
    ("PATCH", f"{V}/projects/{{project_id}}/limits"): Case(
        "project.setLimits",
        "path",
        PRJ,
        lambda w, p: (f"{V}/projects/{w.project}/limits", {"maxUnitsPerHour": 100000}),
    ),
    ("GET", f"{V}/projects/{{project_id}}/access-bindings"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/access-bindings")
    ),
    ("POST", f"{V}/projects/{{project_id}}/access-bindings"): Case(
        "project.manageAccess",
        "path",
        PRJ,
        lambda w, p: (f"{V}/projects/{w.project}/access-bindings", {"subject": "carol", "role": "viewer"}),
    ),
    ("DELETE", f"{V}/projects/{{project_id}}/access-bindings/{{binding_id}}"): Case(
        "project.manageAccess",
        "path",
        PRJ,
        _w(lambda w: f"{V}/projects/{w.project}/access-bindings/{w.binding(PRJ, w.project)}"),
    ),
    ("POST", f"{V}/projects/{{project_id}}/invites"): Case(
        "project.manageAccess",
        "path",
        PRJ,
        lambda w, p: (f"{V}/projects/{w.project}/invites", {"role": "viewer"}),
    ),
    ("GET", f"{V}/projects/{{project_id}}/invites"): Case(
        "project.manageAccess", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/invites")
    ),
    ("DELETE", f"{V}/projects/{{project_id}}/invites/{{invite_id}}"): Case(
        "project.manageAccess",
        "path",
        PRJ,
        _w(lambda w: f"{V}/projects/{w.project}/invites/{_invite_id(w, PRJ, w.project)}"),
    ),
    # project secrets: names visible to project Viewers, writes need project Developer
    ("GET", f"{V}/projects/{{project_id}}/secrets"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/secrets")
    ),
    ("POST", f"{V}/projects/{{project_id}}/secrets"): Case(
        "project.use",
        "path",
        PRJ,
        lambda w, p: (
            f"{V}/projects/{w.project}/secrets",
            {"name": w.next_name("s").replace("-", "_"), "value": "v"},
        ),
    ),
    ("GET", f"{V}/projects/{{project_id}}/secrets/{{secret}}"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/secrets/{_secret(w)}")
    ),
    ("PATCH", f"{V}/projects/{{project_id}}/secrets/{{secret}}"): Case(
        "project.use",
        "path",
        PRJ,
        lambda w, p: (f"{V}/projects/{w.project}/secrets/{_secret(w)}", {"value": "new"}),
    ),
    ("DELETE", f"{V}/projects/{{project_id}}/secrets/{{secret}}"): Case(
        "project.use", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/secrets/{_secret(w)}")
    ),
    # jobs (spec §5): running and managing them needs project Developer, reading project Viewer
    ("POST", f"{V}/projects/{{project_id}}/jobs"): Case(
        "project.use",
        "path",
        PRJ,
        lambda w, p: (f"{V}/projects/{w.project}/jobs", {"config": "cmd: echo hi\n"}),
    ),
    ("GET", f"{V}/projects/{{project_id}}/jobs"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/jobs")
    ),
    ("PUT", f"{V}/projects/{{project_id}}/blobs/{{sha256}}"): Case(
        "project.use", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/blobs/{EMPTY_SHA}"), raw=True
    ),
    ("GET", f"{V}/jobs/{{job_id}}"): Case("project.view", "path", PRJ, _w(lambda w: f"{V}/jobs/{_job(w)}")),
    ("POST", f"{V}/jobs/{{job_id}}/execute"): Case(
        "project.use", "path", PRJ, _w(lambda w: f"{V}/jobs/{_job(w)}/execute"), raw=True
    ),
    ("POST", f"{V}/jobs/{{job_id}}/cancel"): Case(
        "project.use", "path", PRJ, lambda w, p: (f"{V}/jobs/{_job(w)}/cancel", {"graceful": False})
    ),
    ("POST", f"{V}/jobs/{{job_id}}/fork"): Case(
        "project.use", "path", PRJ, lambda w, p: (f"{V}/jobs/{_job(w)}/fork", {"name": "forked"})
    ),
    ("PUT", f"{V}/jobs/{{job_id}}/data-ttl"): Case(
        "project.use", "path", PRJ, lambda w, p: (f"{V}/jobs/{_job(w)}/data-ttl", {"days": 3})
    ),
    ("GET", f"{V}/jobs/{{job_id}}/logs"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/jobs/{_job(w)}/logs")
    ),
    ("GET", f"{V}/jobs/{{job_id}}/follow"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/jobs/{_job(w)}/follow")
    ),
    ("GET", f"{V}/jobs/{{job_id}}/events"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/jobs/{_job(w)}/events?duration=0")
    ),
    # notebooks (spec §2: the IDE needs project Developer; its status is visible to Viewers)
    ("GET", f"{V}/projects/{{project_id}}/notebook"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/notebook")
    ),
    ("POST", f"{V}/projects/{{project_id}}/notebook/ide-link"): Case(
        "project.use",
        "path",
        PRJ,
        lambda w, p: (f"{V}/projects/{_ide_on(w)}/notebook/ide-link", {"expiresInDays": 1}),
    ),
    ("POST", f"{V}/projects/{{project_id}}/notebook/open"): Case(
        "project.use", "path", PRJ, lambda w, p: (f"{V}/projects/{w.project}/notebook/open", {})
    ),
    ("POST", f"{V}/projects/{{project_id}}:execute"): Case(
        "project.use",
        "path",
        PRJ,
        lambda w, p: (f"{V}/projects/{w.project}:execute", {"notebookId": _notebook_file(w)}),
    ),
    ("GET", f"{V}/projects/{{project_id}}/executions/{{execution_id}}"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/executions/{_run(w)}")
    ),
    ("POST", f"{V}/projects/{{project_id}}/notebook/stop"): Case(
        "project.use", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/notebook/stop"), raw=True
    ),
    ("GET", f"{V}/jobs/{{job_id}}/files/{{sha256}}"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/jobs/{_job(w, output=True)}/files/{EMPTY_SHA}")
    ),
    ("GET", f"{V}/projects/{{project_id}}/usage"): Case(
        "project.viewUsage", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/usage")
    ),
    ("GET", f"{V}/communities/{{community_id}}/usage"): Case(
        "community.viewUsage", "path", COM, _w(lambda w: f"{V}/communities/{w.community}/usage")
    ),
    # invite links: holding the link is the authorization
    ("GET", f"{V}/invites/{{token}}"): Case("public", "any", None, _w(lambda w: f"{V}/invites/{_invite(w)}")),
    ("POST", f"{V}/invites/{{token}}/accept"): Case(
        "public", "any", None, lambda w, p: (f"{V}/invites/{_invite(w)}/accept", {})
    ),
    # deploy (spec §6, §8.1): visible to project Viewers; creating and changing needs Developer
    ("GET", f"{V}/projects/{{project_id}}/models"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/models")
    ),
    ("GET", f"{V}/projects/{{project_id}}/models/{{model}}"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/models/{_model(w)}")
    ),
    ("DELETE", f"{V}/projects/{{project_id}}/models/{{model}}"): Case(
        "project.use", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/models/{_model(w)}")
    ),
    # datasets made by jobs' output-datasets: visible to Viewers, deleted by Developers
    ("GET", f"{V}/projects/{{project_id}}/datasets"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/datasets")
    ),
    ("GET", f"{V}/projects/{{project_id}}/datasets/{{dataset}}"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/datasets/{_dataset(w)}")
    ),
    ("DELETE", f"{V}/projects/{{project_id}}/datasets/{{dataset}}"): Case(
        "project.use", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/datasets/{_dataset(w)}")
    ),
    ("GET", f"{V}/projects/{{project_id}}/nodes"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/nodes")
    ),
    ("POST", f"{V}/projects/{{project_id}}/nodes"): Case(
        "project.use",
        "path",
        PRJ,
        lambda w, p: (f"{V}/projects/{w.project}/nodes", {"name": w.next_name("n"), "command": ["true"]}),
    ),
    ("GET", f"{V}/projects/{{project_id}}/nodes/{{node}}"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/nodes/{_node(w)}")
    ),
    ("PATCH", f"{V}/projects/{{project_id}}/nodes/{{node}}"): Case(
        "project.use",
        "path",
        PRJ,
        lambda w, p: (f"{V}/projects/{w.project}/nodes/{_node(w)}", {"description": "x"}),
    ),
    ("POST", f"{V}/projects/{{project_id}}/nodes/{{node}}:suspend"): Case(
        "project.use",
        "path",
        PRJ,
        lambda w, p: (f"{V}/projects/{w.project}/nodes/{_node(w)}:suspend", None),
        raw=True,  # no body
    ),
    ("POST", f"{V}/projects/{{project_id}}/nodes/{{node}}:resume"): Case(
        "project.use",
        "path",
        PRJ,
        lambda w, p: (f"{V}/projects/{w.project}/nodes/{_node(w)}:resume", None),
        raw=True,  # no body
    ),
    ("DELETE", f"{V}/projects/{{project_id}}/nodes/{{node}}"): Case(
        "project.use", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/nodes/{_node(w)}")
    ),
    ("GET", f"{V}/projects/{{project_id}}/nodes/{{node}}/logs"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/nodes/{_node(w)}/logs")
    ),
    ("GET", f"{V}/projects/{{project_id}}/nodes/{{node}}/instances/{{instance}}/runs"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/{_instance(w)}/runs")
    ),
    ("GET", f"{V}/projects/{{project_id}}/nodes/{{node}}/metrics"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/nodes/{_node(w)}/metrics")
    ),
    ("GET", f"{V}/projects/{{project_id}}/nodes/{{node}}/telemetry"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/nodes/{_node(w)}/telemetry")
    ),
    ("POST", f"{V}/projects/{{project_id}}/nodes/{{node}}:request"): Case(
        "project.use",
        "path",
        PRJ,
        lambda w, p: (
            f"{V}/projects/{w.project}/nodes/{_node(w, healthy=True)}:request",
            {"method": "GET", "path": "/"},
        ),
    ),
    ("GET", f"{V}/projects/{{project_id}}/aliases"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/aliases")
    ),
    ("POST", f"{V}/projects/{{project_id}}/aliases"): Case(
        "project.use",
        "path",
        PRJ,
        lambda w, p: (
            f"{V}/projects/{w.project}/aliases",
            {"name": w.next_name("a"), "nodes": [{"nodeId": _node(w), "weight": 100}]},
        ),
    ),
    ("GET", f"{V}/projects/{{project_id}}/aliases/{{alias}}"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/aliases/{_alias(w)}")
    ),
    ("PATCH", f"{V}/projects/{{project_id}}/aliases/{{alias}}"): Case(
        "project.use",
        "path",
        PRJ,
        lambda w, p: (f"{V}/projects/{w.project}/aliases/{_alias(w)}", {"public": True}),
    ),
    ("DELETE", f"{V}/projects/{{project_id}}/aliases/{{alias}}"): Case(
        "project.use", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/aliases/{_alias(w)}")
    ),
    ("GET", f"{V}/projects/{{project_id}}/aliases/{{alias}}/metrics"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/aliases/{_alias(w)}/metrics")
    ),
    # configurations
    ("GET", f"{V}/configurations"): Case("catalog.view", "any", None, _w(lambda w: f"{V}/configurations")),
    ("GET", f"{V}/environments"): Case("catalog.view", "any", None, _w(lambda w: f"{V}/environments")),
    ("GET", f"{V}/environments/{{ref}}"): Case(
        "catalog.view", "any", None, _w(lambda w: f"{V}/environments/datascience")
    ),
    ("GET", f"{V}/environments/{{ref}}/log"): Case(
        "catalog.view", "any", None, _w(lambda w: f"{V}/environments/datascience/log")
    ),
    # a project's environments: made, rebuilt and deleted by its Editors
    ("POST", f"{V}/projects/{{project_id}}/environments"): Case(
        "project.update",
        "path",
        PRJ,
        lambda w, p: (
            f"{V}/projects/{w.project}/environments",
            {"name": w.next_name("env"), "requirements": ["six==1.16.0"]},
        ),
    ),
    ("POST", f"{V}/environments/{{env_id}}:build"): Case(
        "project.update", "path", PRJ, _w(lambda w: f"{V}/environments/{_project_env(w)}:build"), raw=True
    ),
    ("DELETE", f"{V}/environments/{{env_id}}"): Case(
        "project.update", "path", PRJ, _w(lambda w: f"{V}/environments/{_project_env(w)}")
    ),
    # a project's Docker images: seen by its Viewers, built, activated and deleted by its Editors
    ("GET", f"{V}/projects/{{project_id}}/images"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/images")
    ),
    ("POST", f"{V}/projects/{{project_id}}/images"): Case(
        "project.update",
        "path",
        PRJ,
        lambda w, p: (
            f"{V}/projects/{w.project}/images",
            {"name": w.next_name("img"), "tag": "1", "dockerfile": "FROM debian\n"},
        ),
        also_ok=(409,),
    ),
    ("GET", f"{V}/images/{{ref}}"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/images/{_project_image(w)}")
    ),
    ("GET", f"{V}/images/{{ref}}/log"): Case(
        "project.view", "path", PRJ, _w(lambda w: f"{V}/images/{_project_image(w)}/log")
    ),
    ("POST", f"{V}/images/{{image_id}}:build"): Case(
        "project.update", "path", PRJ, _w(lambda w: f"{V}/images/{_project_image(w)}:build"), raw=True
    ),
    ("POST", f"{V}/images/{{image_id}}:activate"): Case(
        "project.update",
        "path",
        PRJ,
        _w(lambda w: f"{V}/images/{_project_image(w, 'READY')}:activate"),
        raw=True,
    ),
    ("POST", f"{V}/projects/{{project_id}}/images:deactivate"): Case(
        "project.update", "path", PRJ, _w(lambda w: f"{V}/projects/{w.project}/images:deactivate"), raw=True
    ),
    ("DELETE", f"{V}/images/{{image_id}}"): Case(
        "project.update", "path", PRJ, _w(lambda w: f"{V}/images/{_project_image(w)}")
    ),
    ("GET", f"{V}/configurations/{{name}}"): Case(
        "catalog.view", "any", None, _w(lambda w: f"{V}/configurations/c1.4")
    ),
    ("PUT", f"{V}/configurations/{{name}}"): Case(
        "system.manage", "any", None, lambda w, p: (f"{V}/configurations/{_config(w)}", {"description": "x"})
    ),
    ("DELETE", f"{V}/configurations/{{name}}"): Case(
        "system.manage", "any", None, _w(lambda w: f"{V}/configurations/{_config(w)}")
    ),
}


@pytest.fixture(scope="module")
def world(app: FastAPI) -> World:
    w = build_world(app.state.db)
    w.blobs = app.state.services.blobs
    w.notebooks = app.state.services.notebooks
    return w


@pytest.fixture(scope="module")
def clients(app: FastAPI, world: World) -> Iterator[dict[str, TestClient]]:
    yield {p: as_token(app, world.tokens[p]) for p in PERSONAS}


def test_every_route_has_a_case() -> None:
    routes = {(m, path): action for m, path, action in api_route_table()}
    missing = sorted(set(routes) - set(CASES))
    assert not missing, f"API routes without a role-matrix case: {missing}"
    stale = sorted(set(CASES) - set(routes))
    assert not stale, f"role-matrix cases for routes that no longer exist: {stale}"
    wrong = {k: (routes[k], c.action) for k, c in CASES.items() if routes[k] != c.action}
    assert not wrong, f"routes declare a different action than the matrix expects: {wrong}"


def test_openapi_lists_exactly_the_routes(client: TestClient) -> None:
    """Routes added straight onto the app (outside the routers) would escape the matrix."""
    spec = client.get("/api/v1/openapi.json").json()
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops if p.startswith("/api/v1")}
    table = {(m, p) for m, p, _ in api_route_table() if m != "HEAD"}
    assert documented == table
    for p, ops in spec["paths"].items():
        for m, op in ops.items():
            assert "x-atoll-action" in op, f"{m.upper()} {p} declares no access action"


def test_spec_actions_are_all_covered() -> None:
    via_routes = {c.action for c in CASES.values()}
    not_routed = SPEC_ACTIONS - via_routes
    assert not_routed <= {"resource.publish"}, not_routed


@pytest.mark.parametrize("route", sorted(CASES), ids=lambda r: f"{r[0]} {r[1].removeprefix('/api/v1')}")
def test_route_for_every_role(route: tuple[str, str], world: World, clients: dict[str, TestClient]) -> None:
    method, _ = route
    case = CASES[route]
    failures = []
    for persona in PERSONAS:
        path, body = case.build(world, persona)
        r = clients[persona].request(method, path, json=body)
        ok = allowed(persona, case.action)
        if case.kind == "list":
            if r.status_code != 200:
                failures.append(f"{persona}: list gave {r.status_code} {r.text[:200]}")
                continue
            ids = {
                ORG: world.org,
                COM: world.community,
                PRJ: world.project,
                BA: world.ba,
                "group": world.group_project,
            }
            listed = ids[case.scope or ""] in {i["id"] for i in r.json()["items"]}
            rank_on = ORG if case.scope == "group" else case.scope or ""
            if listed != (RANKS[persona][rank_on] >= 1):
                failures.append(f"{persona}: world {case.scope} listed={listed}")
            continue
        if ok:
            if not 200 <= r.status_code < 300 and r.status_code not in case.also_ok:
                failures.append(f"{persona}: expected success, got {r.status_code} {r.text[:200]}")
            continue
        if case.kind == "path":
            expected = 404 if RANKS[persona][case.scope or ""] == 0 else 403
        elif case.kind == "body":
            expected = 422 if RANKS[persona][case.scope or ""] == 0 else 403
        else:
            expected = 403
        if r.status_code != expected:
            failures.append(f"{persona}: expected {expected}, got {r.status_code} {r.text[:200]}")
        elif expected == 404:
            # The 404 must read exactly like the one for a resource that does not exist.
            assert r.headers["content-type"].startswith("application/problem+json")
    assert not failures, "\n".join(failures)


def test_no_role_404_is_indistinguishable(clients: dict[str, TestClient], world: World) -> None:
    real = clients["outsider"].get(f"/api/v1/projects/{world.project}")
    missing = clients["outsider"].get("/api/v1/projects/prj-0000000000000000")
    assert real.status_code == missing.status_code == 404
    assert real.json()["title"] == missing.json()["title"]
    assert set(real.json()) == set(missing.json())


def test_unauthenticated_gets_401(client: TestClient, world: World) -> None:
    for method, path in [
        ("GET", f"/api/v1/projects/{world.project}"),
        ("GET", "/api/v1/users/me"),
        ("POST", "/api/v1/communities"),
    ]:
        r = client.request(method, path, json={}, headers={"Authorization": ""})
        assert r.status_code in (401, 422), (path, r.status_code)
        if method == "GET":
            assert r.status_code == 401
    assert client.get("/api/v1/users/me", headers={"Authorization": "Bearer atl_nope"}).status_code == 401


def test_actions_without_routes(app: FastAPI, world: World) -> None:
    """resource.publish has no route yet: check it (and project.use) on the access module directly."""
    with app.state.db.session() as s:
        project = s.get(Project, world.project)
        community = s.get(Community, world.community)
        assert project is not None and community is not None
        for persona in PERSONAS:
            user = s.get(User, world.users[persona])
            assert user is not None
            p = access.load_principal(s, user)
            assert access.can(s, p, Action.PROJECT_USE, project) == allowed(persona, "project.use"), persona
            # Publishing needs project Editor AND community Developer (spec §2).
            want = RANKS[persona][PRJ] >= 3 and RANKS[persona][COM] >= 2
            try:
                access.authorize_publish(s, p, project, community)
                got = True
            except Exception:
                got = False
            assert got == want, persona


@pytest.mark.parametrize(
    "route",
    sorted(k for k, c in CASES.items() if k[0] in ("POST", "PUT", "PATCH") and not c.raw),
    ids=lambda r: f"{r[0]} {r[1].removeprefix('/api/v1')}",
)
def test_every_body_refuses_unknown_and_mistyped_fields(
    route: tuple[str, str], world: World, clients: dict[str, TestClient]
) -> None:
    """Bad input on any endpoint: 422 problem+json naming the field, and nothing changes."""
    method, _ = route
    path, body = CASES[route].build(world, "sysadmin")
    assert body is not None, "every POST/PUT/PATCH route takes a JSON body"
    c = clients["sysadmin"]
    r = c.request(method, path, json={**body, "bogusField": 1})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "bogusField"
    r = c.request(method, path, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    for key, value in body.items():
        if isinstance(value, str):
            r = c.request(method, path, json={**body, key: {"nested": True}})
            assert r.status_code == 422, (key, r.text)
            assert r.json()["errors"][0]["field"].split(".")[0] == key
