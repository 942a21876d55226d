"""What an SSO sign-in does to Atoll's accounts: the user it signs in as (created at the first
sign-in, into the provider's organization), groups synced from a claim, the admin mapping, the
one-time code `atoll login --sso` trades for a token, and the SSO sign-out an admin asks for.

An external identity is the provider's ``sub``, never a username or an email: an account is never
taken over because a provider let someone pick a name that exists in Atoll.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from atoll.domain import auth
from atoll.domain.access import ResourceType
from atoll.domain.validation import USERNAME_RE
from atoll.errors import Forbidden, Unauthenticated
from atoll.store.tables import (
    AccessBinding,
    ApiToken,
    ExternalIdentity,
    Group,
    GroupMember,
    IdentityProvider,
    SsoSignIn,
    User,
    WebSession,
    as_utc,
    utcnow,
)

MAX_GROUPS = 500  # claim values looked at per sign-in
_NOT_NAME = re.compile(r"[^a-z0-9]+")


@dataclass
class SignedIn:
    user: User
    created: bool
    groups_added: list[str] = field(default_factory=list)
    groups_removed: list[str] = field(default_factory=list)
    admin: bool | None = None  # True: became org admin; False: no longer; None: unchanged

    def summary(self) -> str:
        parts = ["account created" if self.created else "existing account"]
        if self.groups_added:
            parts.append("joined groups " + ",".join(self.groups_added))
        if self.groups_removed:
            parts.append("left groups " + ",".join(self.groups_removed))
        if self.admin is not None:
            parts.append("organization admin granted" if self.admin else "organization admin removed")
        return "; ".join(parts)


def group_name(value: str) -> str:
    """An Atoll group name for a claim value: "/ML Team" (Keycloak's paths, display names) → "ml-team"."""
    name = _NOT_NAME.sub("-", value.strip().lower()).strip("-")[:63].strip("-")
    if not name or not name[0].isalpha():
        name = ("g-" + name)[:63].strip("-")
    return name


def claim_values(claims: dict[str, Any], claim: str) -> list[str]:
    """The claim's values as strings: a list, or one string; missing: none."""
    raw = claims.get(claim) if claim else None
    if raw is None:
        return []
    values = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    return [str(v)[:255] for v in values[:MAX_GROUPS] if isinstance(v, str | int) and str(v).strip()]


def _free_username(db: Session, wanted: str) -> str:
    base = re.sub(r"[^-_.a-z0-9]+", "-", wanted.lower()).strip("-_.")[:56] or "user"
    if not base[0].isalpha():
        base = ("u-" + base)[:56]
    if len(base) < 2:
        base = f"{base}-user"
    candidate, n = base, 1
    while not USERNAME_RE.match(candidate) or db.scalar(select(User.id).where(User.username == candidate)):
        n += 1
        candidate = f"{base}-{n}"
        if n > 50:
            candidate = f"{base[:40]}-{secrets.token_hex(4)}"
    return candidate


def sign_in(db: Session, provider: IdentityProvider, subject: str, claims: dict[str, Any]) -> SignedIn:
    """The user the provider's ``subject`` signs in as, brought up to date with the (verified) claims."""
    link = db.scalar(
        select(ExternalIdentity).where(
            ExternalIdentity.provider_id == provider.id, ExternalIdentity.subject == subject
        )
    )
    email = str(claims.get("email") or "")[:254] if claims.get("email_verified", True) is not False else ""
    display = str(claims.get("name") or "")[:128]
    created = False
    if link is None:
        wanted = str(
            claims.get(provider.username_claim) or str(claims.get("email") or "").split("@")[0] or "user"
        )
        user = User(
            username=_free_username(db, wanted),
            email=email,
            display_name=display or wanted[:128],
            password_hash="",  # signs in through the provider only
        )
        db.add(user)
        db.flush()
        link = ExternalIdentity(provider_id=provider.id, subject=subject, user_id=user.id)
        db.add(link)
        created = True
    else:
        found = db.get(User, link.user_id)
        if found is None:
            raise Unauthenticated("the account this identity signed in as is gone")
        user = found
        if email:
            user.email = email
        if display:
            user.display_name = display
    if not user.is_active:
        raise Forbidden(f"the account {user.username!r} is deactivated in Atoll")
    link.last_sign_in_at = utcnow()
    values = claim_values(claims, provider.groups_claim)
    link.groups = values
    out = SignedIn(user=user, created=created)
    out.admin = _sync_membership(db, provider, user, values)
    if provider.groups_claim:
        out.groups_added, out.groups_removed = _sync_groups(db, provider, user, values)
    db.flush()
    return out


def _sync_membership(db: Session, provider: IdentityProvider, user: User, values: list[str]) -> bool | None:
    """The user's one role binding on the organization: member, or admin while a claim names one
    of the provider's admin groups. Returns True when admin was granted, False when taken back,
    None when unchanged. An admin role someone granted by hand is never taken back."""
    mine = list(
        db.scalars(
            select(AccessBinding).where(
                AccessBinding.resource_type == ResourceType.ORGANIZATION.value,
                AccessBinding.resource_id == provider.organization_id,
                AccessBinding.subject_type == "user",
                AccessBinding.subject_id == user.id,
            )
        )
    )
    admin_groups = {group_name(g) for g in provider.admin_groups or []}
    wants_admin = bool(admin_groups & {group_name(v) for v in values})
    if not mine:
        role = "admin" if wants_admin else "member"
        db.add(
            AccessBinding(
                resource_type=ResourceType.ORGANIZATION.value,
                resource_id=provider.organization_id,
                subject_type="user",
                subject_id=user.id,
                role=role,
                created_by=provider.id,
            )
        )
        return True if wants_admin else None
    admin = next((b for b in mine if b.role == "admin"), None)
    if wants_admin and admin is None:
        mine[0].role, mine[0].created_by = "admin", provider.id
        return True
    if not wants_admin and admin is not None and admin.created_by == provider.id and admin_groups:
        # The provider's word, even for the organization's last admin: installation admins can
        # always manage it, and someone the provider no longer calls an admin must not stay one.
        admin.role = "member"
        return False
    return None


def _sync_groups(
    db: Session, provider: IdentityProvider, user: User, values: list[str]
) -> tuple[list[str], list[str]]:
    """Make the user's provider-synced memberships in the organization's groups be the claim's."""
    wanted: dict[str, str] = {}
    for v in values:
        wanted.setdefault(group_name(v), v)
    groups = {
        g.name: g
        for g in db.scalars(
            select(Group).where(
                Group.organization_id == provider.organization_id, Group.name.in_(list(wanted))
            )
        )
    }
    for name, value in wanted.items():
        if name not in groups:
            g = Group(
                organization_id=provider.organization_id,
                name=name,
                description=f"from {provider.name}: {value}"[:256],
            )
            db.add(g)
            db.flush()
            groups[name] = g
    added: list[str] = []
    for name, g in groups.items():
        if db.get(GroupMember, (g.id, user.id)) is None:
            db.add(GroupMember(group_id=g.id, user_id=user.id, provider_id=provider.id))
            added.append(name)
    # Memberships this provider made, in groups the claim no longer names, end; ones an admin
    # made by hand stay.
    synced = db.execute(
        select(GroupMember, Group.name)
        .join(Group, Group.id == GroupMember.group_id)
        .where(GroupMember.user_id == user.id, GroupMember.provider_id == provider.id)
    ).all()
    removed: list[str] = []
    for member, name in synced:
        if name not in groups:
            db.delete(member)
            removed.append(name)
    return sorted(added), sorted(removed)


# --- `atoll login --sso`: the one-time code --------------------------------------------------


def challenge_of(verifier: str) -> str:
    """PKCE's S256 (RFC 7636): base64url(sha256(verifier)), unpadded."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue_cli_code(row: SsoSignIn, user: User) -> str:
    code = secrets.token_urlsafe(32)
    row.user_id = user.id
    row.cli_code_hash = auth.sha256(code)
    return code


def redeem_cli_code(
    db: Session, code: str, verifier: str, name: str, expires_in_days: int | None
) -> tuple[ApiToken, str]:
    """The personal token for a CLI that finished its SSO sign-in; the code works once, and only
    with the verifier whose challenge the CLI sent at the start."""
    row = db.scalar(
        select(SsoSignIn).where(SsoSignIn.cli_code_hash == auth.sha256(code or "")).with_for_update()
    )
    refused = Unauthenticated("this sign-in code is unknown, used or expired: run `atoll login --sso` again")
    if row is None or row.user_id is None or as_utc(row.expires_at) < utcnow():
        raise refused
    if not hmac.compare_digest(challenge_of(verifier or ""), row.cli_challenge):
        raise refused
    row.cli_code_hash = None  # once
    user = db.get(User, row.user_id)
    if user is None or not user.is_active:
        raise refused
    tok, raw = auth.create_token(db, user, name, expires_in_days)
    tok.provider_id = row.provider_id
    return tok, raw


# --- the SSO sign-out an admin asks for -------------------------------------------------------


def end_sso_access(db: Session, user: User) -> tuple[int, int]:
    """End the user's browser sessions and revoke the tokens that came through SSO; (sessions,
    tokens). A user without a password came in only through SSO: everything of theirs ends,
    tokens they made on their account page included. A user with a password keeps what they made
    with it."""
    only_sso = not user.password_hash
    session_q = delete(WebSession).where(WebSession.user_id == user.id)
    token_q = update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    if not only_sso:
        session_q = session_q.where(WebSession.provider_id.is_not(None))
        token_q = token_q.where(ApiToken.provider_id.is_not(None))
    sessions = db.execute(session_q)
    tokens = db.execute(token_q.values(revoked_at=utcnow()))
    return int(getattr(sessions, "rowcount", 0) or 0), int(getattr(tokens, "rowcount", 0) or 0)
