"""The identity providers an installation trusts: their checks, and the ones set in settings
(ATOLL_SSO_PROVIDERS), applied at every start."""

from __future__ import annotations

import ipaddress
import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atoll.domain.secrets import SecretBox
from atoll.domain.validation import check_name
from atoll.errors import Conflict, Invalid, NotFound
from atoll.store.tables import ExternalIdentity, IdentityProvider, Organization

log = logging.getLogger("atoll.sso")
MAX_ADMIN_GROUPS = 100


@dataclass
class ProviderFields:
    """What an admin sets (API, settings); None: leave as it is (an update)."""

    name: str | None = None
    display_name: str | None = None
    issuer: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    scopes: str | None = None
    organization: str | None = None  # an organization's id or name
    groups_claim: str | None = None
    admin_groups: list[str] | None = None
    username_claim: str | None = None
    enabled: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def redirect_uri(base_url: str, name: str) -> str:
    """Where the provider sends the browser back: the URI to register with it."""
    return f"{base_url}/login/sso/{name}/callback"


def check_issuer(value: str) -> str:
    """An https URL, or http on loopback (a provider on this machine, as in tests)."""
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise Invalid(
            "issuer must be the provider's https URL, e.g. https://idp.example.com/realms/acme",
            field="issuer",
        )
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise Invalid(
            "issuer must use https (http is allowed only on this machine's loopback)", field="issuer"
        )
    if len(value) > 512:
        raise Invalid("issuer must be at most 512 characters", field="issuer")
    return value


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _find_organization(db: Session, ref: str) -> Organization | None:
    return db.get(Organization, ref) or db.scalar(select(Organization).where(Organization.name == ref))


def _organization(db: Session, ref: str) -> Organization:
    org = _find_organization(db, ref)
    if org is None:
        raise Invalid(f"organization {ref!r} not found", field="organizationId")
    return org


def _text(value: str, name: str, most: int, *, empty: bool = False) -> str:
    value = value.strip()
    if (not value and not empty) or len(value) > most or any(c in value for c in "\r\n\t"):
        raise Invalid(f"{name} must be 1-{most} characters on one line", field=name)
    return value


def apply(db: Session, box: SecretBox, row: IdentityProvider, f: ProviderFields) -> IdentityProvider:
    """Check every given field and set it on ``row``."""
    if f.name is not None:
        row.name = check_name(f.name)
        clash = db.scalar(
            select(IdentityProvider.id).where(
                IdentityProvider.name == row.name, IdentityProvider.id != row.id
            )
        )
        if clash:
            raise Conflict(f"an identity provider named {row.name!r} exists", field="name")
    if f.display_name is not None:
        row.display_name = _text(f.display_name, "displayName", 128, empty=True)
    if f.issuer is not None:
        row.issuer = check_issuer(f.issuer)
    if f.client_id is not None:
        row.client_id = _text(f.client_id, "clientId", 255)
    if f.client_secret is not None:
        secret = _text(f.client_secret, "clientSecret", 1024, empty=True)
        row.client_secret = box.seal(secret) if secret else b""
    if f.scopes is not None:
        scopes = f.scopes.split()
        if "openid" not in scopes or len(f.scopes) > 512 or any(len(s) > 128 for s in scopes):
            raise Invalid("scopes must include 'openid' (e.g. 'openid profile email groups')", field="scopes")
        row.scopes = " ".join(dict.fromkeys(scopes))
    if f.organization is not None:
        row.organization_id = _organization(db, f.organization).id
    if f.groups_claim is not None:
        row.groups_claim = _text(f.groups_claim, "groupsClaim", 128, empty=True)
    if f.admin_groups is not None:
        if len(f.admin_groups) > MAX_ADMIN_GROUPS:
            raise Invalid(f"adminGroups may list at most {MAX_ADMIN_GROUPS} groups", field="adminGroups")
        row.admin_groups = [_text(g, "adminGroups", 255) for g in f.admin_groups]
    if f.username_claim is not None:
        row.username_claim = _text(f.username_claim, "usernameClaim", 128)
    if f.enabled is not None:
        row.enabled = f.enabled
    if not row.display_name:
        row.display_name = row.name
    return row


def create(db: Session, box: SecretBox, f: ProviderFields, managed_by: str = "api") -> IdentityProvider:
    for name, value in (
        ("name", f.name),
        ("issuer", f.issuer),
        ("clientId", f.client_id),
        ("organizationId", f.organization),
    ):
        if not value:
            raise Invalid(f"{name} is required", field=name)
    row = IdentityProvider(name="", issuer="", client_id="", organization_id="", managed_by=managed_by)
    apply(db, box, row, f)
    db.add(row)
    db.flush()
    return row


def get(db: Session, ref: str) -> IdentityProvider:
    row = db.get(IdentityProvider, ref) or db.scalar(
        select(IdentityProvider).where(IdentityProvider.name == ref)
    )
    if row is None:
        raise NotFound(f"identity provider {ref!r} not found")
    return row


def enabled(db: Session, ref: str) -> IdentityProvider:
    """A provider users may sign in with now."""
    row = db.scalar(select(IdentityProvider).where(IdentityProvider.name == ref))
    if row is None or not row.enabled:
        raise NotFound(f"there is no identity provider {ref!r} to sign in with")
    return row


def listed(db: Session, *, only_enabled: bool = False) -> list[IdentityProvider]:
    q = select(IdentityProvider).order_by(IdentityProvider.name)
    if only_enabled:
        q = q.where(IdentityProvider.enabled.is_(True))
    return list(db.scalars(q))


def refuse_settings_managed(row: IdentityProvider) -> None:
    if row.managed_by == "settings":
        raise Conflict(
            f"identity provider {row.name!r} is set in ATOLL_SSO_PROVIDERS: "
            "change it there (it is re-applied at start)"
        )


_SETTINGS_KEYS = {
    "name": "name",
    "displayName": "display_name",
    "issuer": "issuer",
    "clientId": "client_id",
    "clientSecret": "client_secret",
    "scopes": "scopes",
    "organization": "organization",
    "groupsClaim": "groups_claim",
    "adminGroups": "admin_groups",
    "usernameClaim": "username_claim",
    "enabled": "enabled",
}


def from_settings(db: Session, box: SecretBox, raw: str) -> list[str]:
    """Apply ATOLL_SSO_PROVIDERS (a JSON list of providers, the API's field names): create or
    update each, remove the settings' providers no longer listed. Returns the names applied; a
    mistake stops the start with a message naming it."""
    try:
        items = json.loads(raw) if raw.strip() else []
    except json.JSONDecodeError as e:
        raise Invalid(f"ATOLL_SSO_PROVIDERS is not valid JSON: {e}", field="ATOLL_SSO_PROVIDERS") from e
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise Invalid("ATOLL_SSO_PROVIDERS must be a JSON list of objects", field="ATOLL_SSO_PROVIDERS")
    names: list[str] = []
    for item in items:
        unknown = sorted(set(item) - set(_SETTINGS_KEYS))
        if unknown:
            raise Invalid(
                f"ATOLL_SSO_PROVIDERS: unknown field(s) {', '.join(unknown)}", field="ATOLL_SSO_PROVIDERS"
            )
        _check_types(item)
        # Every field, a left-out one at its default: the settings say the whole configuration.
        f = ProviderFields(**{_SETTINGS_KEYS[k]: v for k, v in {**_SETTINGS_DEFAULTS, **item}.items()})
        if isinstance(f.organization, str) and not _find_organization(db, f.organization):
            # The organization its users land in is part of the installation's setup: made here.
            db.add(
                Organization(
                    name=check_name(f.organization, "organization"), description="For single sign-on"
                )
            )
            db.flush()
        existing = db.scalar(select(IdentityProvider).where(IdentityProvider.name == (f.name or "")))
        try:
            if existing is None:
                create(db, box, f, managed_by="settings")
            else:
                existing.managed_by = "settings"
                apply(db, box, existing, f)
        except Invalid as e:
            raise Invalid(
                f"ATOLL_SSO_PROVIDERS, provider {f.name!r}: {e.detail}", field="ATOLL_SSO_PROVIDERS"
            ) from e
        names.append(str(f.name))
    for row in db.scalars(select(IdentityProvider).where(IdentityProvider.managed_by == "settings")):
        if row.name not in names:
            # Turned off, not removed: its users' links to their accounts stay, so putting it back
            # signs them in as before (an admin may remove it once it has no users).
            log.warning("identity provider %s is no longer in ATOLL_SSO_PROVIDERS: turned off", row.name)
            row.enabled, row.managed_by = False, "api"
    return names


_SETTINGS_DEFAULTS: dict[str, Any] = {
    "displayName": "",
    "clientSecret": "",
    "scopes": "openid profile email",
    "groupsClaim": "groups",
    "adminGroups": [],
    "usernameClaim": "preferred_username",
    "enabled": True,
}


def _check_types(item: dict[str, Any]) -> None:
    for key, value in item.items():
        if key == "adminGroups":
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            want = "a list of strings"
        elif key == "enabled":
            ok, want = isinstance(value, bool), "true or false"
        else:
            ok, want = isinstance(value, str), "a string"
        if not ok:
            name = item.get("name", "?")
            raise Invalid(
                f"ATOLL_SSO_PROVIDERS, provider {name!r}: {key} must be {want}", field="ATOLL_SSO_PROVIDERS"
            )


def remove(db: Session, row: IdentityProvider) -> None:
    """Remove a provider nobody signs in through; one with users is turned off instead, or its
    users would get new accounts if it came back."""
    refuse_settings_managed(row)
    users = db.scalar(select(func.count()).where(ExternalIdentity.provider_id == row.id)) or 0
    if users:
        raise Conflict(
            f"{users} user(s) sign in through identity provider {row.name!r}: turn it off instead "
            "(enabled: false), so that their accounts stay linked to it"
        )
    db.delete(row)
