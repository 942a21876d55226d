"""Project secrets (spec §4.5): encrypted at rest, exposed to workloads as env vars, never shown.

Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from the
installation's secret key; the API and logs only ever see names and `***`.
"""

from __future__ import annotations

import base64
import re

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from atoll.domain import tenancy
from atoll.domain.access import Action, Principal
from atoll.errors import Conflict, Invalid, NotFound
from atoll.jobspec.env_names import reserved_env_message, reserved_env_name
from atoll.store.tables import Project, Secret, utcnow

# 2-63 characters: Latin letters, digits, hyphens (and underscores inside); starts with a
# letter; does not end with a hyphen or underscore.
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,61}[A-Za-z0-9]$")
MAX_VALUE_BYTES = 64 * 1024


class SecretBox:
    """Encrypts and decrypts secret values with a key derived from the installation key."""

    def __init__(self, installation_key: bytes) -> None:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"atoll-secrets-v1", info=b"fernet")
        self._fernet = Fernet(base64.urlsafe_b64encode(hkdf.derive(installation_key)))

    def seal(self, value: str) -> bytes:
        return self._fernet.encrypt(value.encode())

    def open(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken as e:  # a different installation key: say so instead of crashing
            raise Conflict(
                "this secret was encrypted with another installation key and cannot be read"
            ) from e


def check_secret_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise Invalid(
            "name must be 2-63 Latin letters, digits, hyphens or underscores, start with a letter "
            f"and not end with a hyphen or underscore (got {name!r})",
            field="name",
        )
    if reserved_env_name(name, secret=True):  # secrets become env vars: none may shadow Atoll's
        raise Invalid(reserved_env_message(name, secret=True), field="name")
    return name


def _check_value(value: str) -> str:
    if not value:
        raise Invalid("value must not be empty", field="value")
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise Invalid(f"value must be at most {MAX_VALUE_BYTES // 1024} KiB", field="value")
    return value


def list_secrets(db: Session, p: Principal, project_id: str) -> list[Secret]:
    """Names and metadata: project Viewers see that secrets exist, never their values."""
    project = tenancy.get_project(db, p, project_id)
    q = select(Secret).where(Secret.project_id == project.id).order_by(Secret.name)
    return list(db.scalars(q))


def get_secret(
    db: Session, p: Principal, project_id: str, ref: str, action: Action = Action.PROJECT_VIEW
) -> Secret:
    project = tenancy.get_project(db, p, project_id, action)
    s = db.get(Secret, ref)
    if s is None or s.project_id != project.id:
        s = db.scalar(select(Secret).where(Secret.project_id == project.id, Secret.name == ref))
    if s is None:
        raise NotFound(f"secret {ref!r} not found in this project")
    return s


def create_secret(
    db: Session, p: Principal, box: SecretBox, project_id: str, *, name: str, value: str
) -> Secret:
    """Creating, editing and deleting project resources needs project Developer (spec §2)."""
    project = tenancy.get_project(db, p, project_id, Action.PROJECT_USE)
    check_secret_name(name)
    _check_value(value)
    if db.scalar(select(Secret.id).where(Secret.project_id == project.id, Secret.name == name)):
        raise Conflict(f"a secret named {name!r} already exists in this project", field="name")
    s = Secret(project_id=project.id, name=name, ciphertext=box.seal(value), created_by=p.user.id)
    db.add(s)
    db.flush()
    return s


def update_secret(
    db: Session,
    p: Principal,
    box: SecretBox,
    project_id: str,
    ref: str,
    *,
    name: str | None = None,
    value: str | None = None,
) -> Secret:
    s = get_secret(db, p, project_id, ref, Action.PROJECT_USE)
    if name is not None and name != s.name:
        check_secret_name(name)
        if db.scalar(select(Secret.id).where(Secret.project_id == s.project_id, Secret.name == name)):
            raise Conflict(f"a secret named {name!r} already exists in this project", field="name")
        s.name = name
    if value is not None:
        s.ciphertext = box.seal(_check_value(value))
    s.updated_at = utcnow()
    return s


def delete_secret(db: Session, p: Principal, project_id: str, ref: str) -> None:
    db.delete(get_secret(db, p, project_id, ref, Action.PROJECT_USE))


def project_env(db: Session, box: SecretBox, project: Project) -> dict[str, str]:
    """All of a project's secrets as env vars, for the workloads the project starts."""
    rows = db.scalars(select(Secret).where(Secret.project_id == project.id))
    # A secret stored before its name was reserved is left out rather than shadow Atoll's variable.
    return {s.name: box.open(s.ciphertext) for s in rows if not reserved_env_name(s.name, secret=True)}
