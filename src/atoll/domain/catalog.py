"""The compute configuration catalogue (spec §3.1) and each configuration's availability here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from atoll.capacity import Inventory
from atoll.domain import access
from atoll.domain.access import Action, Principal
from atoll.errors import Invalid, NotFound
from atoll.states import WORKLOAD_STARTED
from atoll.store.tables import Configuration, WorkloadRow

SHIPPED_CATALOG = Path(__file__).with_name("catalog.yaml")
ACCESS_TIERS = ("everyone", "deposit", "business", "local")
_CONFIG_NAME_RE = r"^[a-z][a-z0-9]*(\.[a-z0-9]+)*$"
FIELDS: dict[str, type] = {
    "description": str,
    "vcpu": float,
    "ram_gb": float,
    "gpu_count": int,
    "gpu_type": str,
    "vram_gb": float,
    "units_per_second": int,
    "async_units_per_second": int,
    "platform": str,
    "access_tier": str,
    "enabled": bool,
    "sort_order": int,
}
# API (camelCase) name → column.
API_FIELDS: dict[str, str] = {
    "description": "description",
    "vcpu": "vcpu",
    "ramGb": "ram_gb",
    "gpuCount": "gpu_count",
    "gpuType": "gpu_type",
    "vramGb": "vram_gb",
    "unitsPerSecond": "units_per_second",
    "asyncUnitsPerSecond": "async_units_per_second",
    "platform": "platform",
    "accessTier": "access_tier",
    "enabled": "enabled",
    "sortOrder": "sort_order",
}


def _check_entry(name: str, values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    import re

    if not re.match(_CONFIG_NAME_RE, name) or len(name) > 32:
        raise Invalid(
            f"configuration name {name!r} must look like 'c1.4' (lowercase, digits, dots)",
            field=f"{prefix}name",
        )
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in FIELDS:
            raise Invalid(f"unknown configuration field {key!r}", field=f"{prefix}{key}")
        typ = FIELDS[key]
        if value is None and key == "async_units_per_second":
            out[key] = None
            continue
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, typ) or (typ is not bool and isinstance(value, bool)):
            raise Invalid(f"{key} must be a {typ.__name__}", field=f"{prefix}{key}")
        if isinstance(value, int | float) and value < 0:
            raise Invalid(f"{key} must not be negative", field=f"{prefix}{key}")
        out[key] = value
    if out.get("access_tier", "everyone") not in ACCESS_TIERS:
        raise Invalid(f"access_tier must be one of {', '.join(ACCESS_TIERS)}", field=f"{prefix}access_tier")
    if "vcpu" in out and out["vcpu"] <= 0:
        raise Invalid("vcpu must be positive", field=f"{prefix}vcpu")
    if "units_per_second" in out and out["units_per_second"] <= 0:
        raise Invalid("units_per_second must be positive", field=f"{prefix}units_per_second")
    if out.get("gpu_count") and not out.get("gpu_type"):
        raise Invalid("a configuration with GPUs must name gpu_type", field=f"{prefix}gpu_type")
    return out


def load_catalog_file(path: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("configurations")
    if not isinstance(entries, list):
        raise Invalid(f"{path}: expected a top-level 'configurations' list", field="configurations")
    out = []
    for i, raw in enumerate(entries):
        raw = dict(raw)
        name = str(raw.pop("name", ""))
        checked = _check_entry(name, raw, prefix=f"configurations[{i}].")
        for req in ("vcpu", "ram_gb", "units_per_second"):
            if req not in checked:
                raise Invalid(
                    f"{path}: configuration {name!r} lacks {req}", field=f"configurations[{i}].{req}"
                )
        out.append({"name": name, "sort_order": i, **checked})
    return out


def seed(db: Session, catalog_file: str = "") -> int:
    """Load the catalogue into an empty table (admins' later edits are kept across restarts).

    With ATOLL_CATALOG_FILE set, the file is authoritative: its entries are upserted on start.
    """
    path = Path(catalog_file) if catalog_file else SHIPPED_CATALOG
    have = {c.name: c for c in db.scalars(select(Configuration))}
    if have and not catalog_file:
        return 0
    n = 0
    for entry in load_catalog_file(path):
        row = have.get(entry["name"]) or Configuration(name=entry["name"])
        for k, v in entry.items():
            setattr(row, k, v)
        db.add(row)
        n += 1
    return n


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str


def availability(cfg: Configuration, inv: Inventory, overcommit: float = 1.0) -> Availability:
    """Can this installation run `cfg` at all: does it fit the pool, are its GPUs present?"""
    if not cfg.enabled:
        return Availability(False, "disabled by the administrator")
    if cfg.gpu_count:
        have = inv.gpus_of_type(cfg.gpu_type)
        if have < cfg.gpu_count:
            found = f"{len(inv.gpus)} GPU(s) detected" if inv.gpus else "no GPU detected"
            return Availability(False, f"needs {cfg.gpu_count}× {cfg.gpu_type}; {found}, {have} of that type")
    if cfg.vcpu > inv.cpus * overcommit:
        return Availability(False, f"needs {cfg.vcpu:g} vCPU; the pool has {inv.cpus * overcommit:g}")
    if cfg.ram_gb > inv.memory_gb * overcommit:
        return Availability(
            False, f"needs {cfg.ram_gb:g} GB RAM; the pool has {inv.memory_gb * overcommit:g} GB"
        )
    return Availability(True, "fits the compute pool")


# DataSphere's default configuration (spec §3.2): what a project runs on when it names none.
FALLBACK_CONFIGURATION = "c1.4"


@dataclass(frozen=True)
class FreeNow:
    """What the compute pool has left at this moment (overcommit applied)."""

    cpus: float
    memory_gb: float
    total_cpus: float

    def fits(self, cfg: Configuration) -> bool:
        return cfg.vcpu <= self.cpus + 1e-9 and cfg.ram_gb <= self.memory_gb + 1e-9

    def note(self) -> str:
        """Why a configuration that fits the pool would wait now."""
        return f"busy now: {max(self.cpus, 0):g} of {self.total_cpus:g} vCPU free, it would queue"


def free_now(db: Session, inv: Inventory, overcommit: float = 1.0) -> FreeNow:
    """The pool's CPUs and memory not held by a running workload (the scheduler's view, summed
    over the machines: a picker's hint, not a promise)."""
    sizes = {c.name: (c.vcpu, c.ram_gb) for c in db.scalars(select(Configuration))}
    cpus, memory = inv.cpus * overcommit, inv.memory_gb * overcommit
    for name in db.scalars(select(WorkloadRow.configuration).where(WorkloadRow.state.in_(WORKLOAD_STARTED))):
        vcpu, ram = sizes.get(name or "", (0.0, 0.0))
        cpus, memory = cpus - vcpu, memory - ram
    return FreeNow(cpus=cpus, memory_gb=memory, total_cpus=inv.cpus * overcommit)


def fitting_default(
    db: Session, inv: Inventory, overcommit: float, allowed: Callable[[str], bool], fallback: str
) -> str | None:
    """The configuration a new project should default to when ``fallback`` (DataSphere's c1.4)
    cannot run here: the largest enabled CPU configuration that fits this machine's pool and that
    ``allowed`` (the community's allow-list) lets through. None when ``fallback`` can run, or
    when nothing else can either (its own error then says why)."""
    configs = list(db.scalars(select(Configuration)))
    fits = [c for c in configs if not c.gpu_count and availability(c, inv, overcommit).available]
    usable = [c for c in fits if allowed(c.name)]
    if any(c.name == fallback for c in usable) or not usable:
        return None
    return max(usable, key=lambda c: (c.vcpu, c.ram_gb, c.name)).name


def list_configurations(db: Session, p: Principal) -> list[Configuration]:
    access.authorize(db, p, Action.CATALOG_VIEW)
    return list(db.scalars(select(Configuration).order_by(Configuration.sort_order, Configuration.name)))


def get_configuration(db: Session, p: Principal, name: str) -> Configuration:
    access.authorize(db, p, Action.CATALOG_VIEW)
    cfg = db.get(Configuration, name)
    if cfg is None:
        raise NotFound(f"configuration {name!r} not found")
    return cfg


def put_configuration(db: Session, p: Principal, name: str, values: dict[str, Any]) -> Configuration:
    """Create or update a catalogue entry (installation admins)."""
    access.authorize(db, p, Action.SYSTEM_MANAGE)
    cols: dict[str, Any] = {}
    for key, value in values.items():
        if key not in API_FIELDS:
            raise Invalid(f"unknown configuration field {key!r}; known: {', '.join(API_FIELDS)}", field=key)
        cols[API_FIELDS[key]] = value
    try:
        checked = _check_entry(name, cols)
    except Invalid as e:
        # The file uses column names; the API speaks camelCase.
        to_api = {col: api for api, col in API_FIELDS.items()}
        raise Invalid(e.detail, field=to_api.get(e.field or "", e.field)) from None
    row = db.get(Configuration, name)
    if row is None:
        for req, api in (("vcpu", "vcpu"), ("ram_gb", "ramGb"), ("units_per_second", "unitsPerSecond")):
            if req not in checked:
                raise Invalid(f"{api} is required for a new configuration", field=api)
        row = Configuration(name=name, sort_order=1000)
        db.add(row)
    for k, v in checked.items():
        setattr(row, k, v)
    if row.gpu_count and not row.gpu_type:
        raise Invalid("a configuration with GPUs must name gpuType", field="gpuType")
    db.flush()
    return row


def delete_configuration(db: Session, p: Principal, name: str) -> None:
    access.authorize(db, p, Action.SYSTEM_MANAGE)
    cfg = db.get(Configuration, name)
    if cfg is None:
        raise NotFound(f"configuration {name!r} not found")
    db.delete(cfg)
