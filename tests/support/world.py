"""A small world for access tests: one organization, community, project, billing account and
group, and one user ("persona") per role, each with a personal API token.

The expected ranks are written out by hand from spec §2 — not computed by the access module
the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from atoll.domain import auth
from atoll.store.db import Database
from atoll.store.tables import (
    AccessBinding,
    BillingAccount,
    Community,
    Group,
    GroupMember,
    Organization,
    Project,
    User,
)

ORG, COM, PRJ, BA = "organization", "community", "project", "billingAccount"

# persona -> bindings (resource type, role); "group:<type>:<role>" puts the persona in a group
# that holds that role.
PERSONAS: dict[str, list[str]] = {
    "stranger": [],
    "outsider": ["organization:member"],
    "org.admin": ["organization:admin"],
    "c.viewer": ["organization:member", "community:viewer"],
    "c.developer": ["organization:member", "community:developer"],
    "c.editor": ["organization:member", "community:editor"],
    "c.admin": ["organization:member", "community:admin"],
    "p.viewer": ["organization:member", "project:viewer"],
    "p.developer": ["organization:member", "project:developer"],
    "p.editor": ["organization:member", "project:editor"],
    "p.admin": ["organization:member", "project:admin"],
    "g.p.developer": ["organization:member", "group:project:developer"],
    "g.c.editor": ["organization:member", "group:community:editor"],
    "ba.editor": ["organization:member", "billingAccount:editor"],
    "sysadmin": [],
}

# Effective rank (0 none, 1 viewer/member, 2 developer, 3 editor, 4 admin) per resource type,
# by spec §2: a community role grants the matching project role (viewer and developer → project
# viewer, editor → editor, admin → admin); an organization admin administers all of it.
RANKS: dict[str, dict[str, int]] = {
    "stranger": {ORG: 0, COM: 0, PRJ: 0, BA: 0},
    "outsider": {ORG: 1, COM: 0, PRJ: 0, BA: 0},
    "org.admin": {ORG: 4, COM: 4, PRJ: 4, BA: 4},
    "c.viewer": {ORG: 1, COM: 1, PRJ: 1, BA: 0},
    "c.developer": {ORG: 1, COM: 2, PRJ: 1, BA: 0},
    "c.editor": {ORG: 1, COM: 3, PRJ: 3, BA: 0},
    "c.admin": {ORG: 1, COM: 4, PRJ: 4, BA: 0},
    "p.viewer": {ORG: 1, COM: 0, PRJ: 1, BA: 0},
    "p.developer": {ORG: 1, COM: 0, PRJ: 2, BA: 0},
    "p.editor": {ORG: 1, COM: 0, PRJ: 3, BA: 0},
    "p.admin": {ORG: 1, COM: 0, PRJ: 4, BA: 0},
    "g.p.developer": {ORG: 1, COM: 0, PRJ: 2, BA: 0},
    "g.c.editor": {ORG: 1, COM: 3, PRJ: 3, BA: 0},
    "ba.editor": {ORG: 1, COM: 0, PRJ: 0, BA: 3},
    "sysadmin": {ORG: 4, COM: 4, PRJ: 4, BA: 4},
}
PASSWORD = "persona-pass-123"


@dataclass
class World:
    db: Database
    org: str = ""
    community: str = ""
    project: str = ""
    ba: str = ""
    group_project: str = ""
    group_community: str = ""
    carol: str = ""  # an org member with no role: the subject of grants in tests
    users: dict[str, str] = field(default_factory=dict)  # persona -> user id
    tokens: dict[str, str] = field(default_factory=dict)  # persona -> API token
    counter: int = 0
    blobs: Any = None  # the app's blob store, for cases that need stored content
    notebooks: Any = None  # the app's notebook controller (where project storage lives)

    def next_name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def _bind(self, s: Session, rtype: str, rid: str, subject_type: str, sid: str, role: str) -> None:
        s.add(
            AccessBinding(
                resource_type=rtype, resource_id=rid, subject_type=subject_type, subject_id=sid, role=role
            )
        )

    def clone_bindings(self, rtype: str, src: str, dst: str) -> None:
        """Give the new resource `dst` the same bindings as `src` (for destructive routes)."""
        with self.db.transaction() as s:
            for b in s.query(AccessBinding).filter_by(resource_type=rtype, resource_id=src).all():
                self._bind(s, rtype, dst, b.subject_type, b.subject_id, b.role)

    def fresh(self, kind: str) -> str:
        """A new resource of `kind` with the same bindings as the world's own."""
        with self.db.transaction() as s:
            if kind == ORG:
                obj: Organization | Community | Project | BillingAccount | Group = Organization(
                    name=self.next_name("org")
                )
            elif kind == COM:
                obj = Community(
                    organization_id=self.org, name=self.next_name("com"), zone_id="local", restrictions={}
                )
            elif kind == PRJ:
                obj = Project(community_id=self.community, name=self.next_name("prj"))
            elif kind == BA:
                obj = BillingAccount(organization_id=self.org, name=self.next_name("ba"))
            elif kind == "group":
                obj = Group(organization_id=self.org, name=self.next_name("grp"))
            else:
                raise ValueError(kind)
            s.add(obj)
            s.flush()
            new_id = obj.id
        src = {ORG: self.org, COM: self.community, PRJ: self.project, BA: self.ba}.get(kind)
        if src:
            self.clone_bindings(kind, src, new_id)
        return new_id

    def binding(self, rtype: str, rid: str) -> str:
        """A binding of a new organization member on the resource, for removal routes."""
        with self.db.transaction() as s:
            user = User(username=self.next_name("member"))
            s.add(user)
            s.flush()
            self._bind(s, ORG, self.org, "user", user.id, "member")
            if rtype == ORG:
                s.flush()
                found = s.query(AccessBinding).filter_by(resource_type=ORG, subject_id=user.id).one()
                return found.id
            b = AccessBinding(
                resource_type=rtype, resource_id=rid, subject_type="user", subject_id=user.id, role="viewer"
            )
            s.add(b)
            s.flush()
            return b.id


def build_world(db: Database) -> World:
    w = World(db=db)
    with db.transaction() as s:
        org = Organization(name="world")
        s.add(org)
        s.flush()
        com = Community(organization_id=org.id, name="world-com", zone_id="local", restrictions={})
        ba = BillingAccount(organization_id=org.id, name="world-ba")
        s.add_all([com, ba])
        s.flush()
        prj = Project(community_id=com.id, name="world-prj")
        gp = Group(organization_id=org.id, name="project-devs")
        gc = Group(organization_id=org.id, name="community-editors")
        s.add_all([prj, gp, gc])
        s.flush()
        w.org, w.community, w.project, w.ba = org.id, com.id, prj.id, ba.id
        w.group_project, w.group_community = gp.id, gc.id
        ids = {ORG: org.id, COM: com.id, PRJ: prj.id, BA: ba.id}
        w._bind(s, PRJ, prj.id, "group", gp.id, "developer")
        w._bind(s, COM, com.id, "group", gc.id, "editor")
        carol = auth.create_user(s, username="carol", password=PASSWORD)
        w.carol = carol.id
        w._bind(s, ORG, org.id, "user", carol.id, "member")
        for persona, grants in PERSONAS.items():
            user = User(
                username=persona.replace(".", "-"),
                password_hash=auth.hash_password(PASSWORD),
                is_admin=persona == "sysadmin",
            )
            s.add(user)
            s.flush()
            w.users[persona] = user.id
            for g in grants:
                parts = g.split(":")
                if parts[0] == "group":
                    gid = gp.id if parts[1] == PRJ else gc.id
                    s.add(GroupMember(group_id=gid, user_id=user.id))
                else:
                    w._bind(s, parts[0], ids[parts[0]], "user", user.id, parts[1])
            _, raw = auth.create_token(s, user, "world", None)
            w.tokens[persona] = raw
    return w
