"""Jobs from the server's side (spec §5.5-§5.7): create, upload, execute, cancel, fork, TTL.

The flow is DataSphere's: the client parses config.yaml, hashes its inputs and local modules and
creates the job; the server answers which files (by sha256) it lacks; the client uploads only
those and asks to execute. The job controller then prepares the environment and the working
dir, runs a Workload and collects the outputs.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Select, select, update
from sqlalchemy.orm import Session

from atoll.domain import datasets, tenancy, workloads
from atoll.domain.access import Action, Principal
from atoll.errors import Conflict, Invalid, NotFound
from atoll.jobspec.archive import MAX_FILE_BYTES, MAX_TOTAL_BYTES
from atoll.jobspec.capabilities import unsupported_keys
from atoll.jobspec.config import JobConfig, parse_config
from atoll.jobspec.fork import apply_fork
from atoll.jobspec.requirements import normalize_requirement
from atoll.states import JOB_ACTIVE, JOB_TERMINAL, JobStatus
from atoll.store.tables import (
    Blob,
    Configuration,
    Job,
    JobFiles,
    JobPython,
    Project,
    ProjectBlob,
    StoredFile,
    utcnow,
)

# What this installation serves of config.yaml (the rest is refused with a clear message).
SERVED = frozenset({"project-disk", "graceful-shutdown", "working-storage", "output-datasets", "datasets"})
DEFAULT_TTL_DAYS = 14
MAX_TTL_DAYS = 36500
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_VERSION_RE = re.compile(r"^3\.\d+$")


def _check_files(files: list[StoredFile], field: str) -> None:
    total = 0
    for i, f in enumerate(files):
        where = f"{field}[{i}]"
        if not _SHA_RE.match(f.sha256):
            raise Invalid("sha256 must be 64 lowercase hex digits", field=f"{where}.sha256")
        if f.size < 0 or f.size > MAX_FILE_BYTES:
            raise Invalid("each file must be at most 5 GB", field=f"{where}.size")
        if not f.path or (f.path.startswith("/") and f.var is None) or ".." in f.path.split("/"):
            raise Invalid(
                f"path {f.path!r} must be relative without '..' (or have a var)", field=f"{where}.path"
            )
        total += f.size
    if total > MAX_TOTAL_BYTES:
        raise Invalid("inputs and local modules must be at most 10 GB in all", field=field)


def _match_inputs(cfg: JobConfig, inputs: list[StoredFile]) -> None:
    declared = {(p.path, p.var) for p in cfg.inputs}
    given = {(f.path, f.var) for f in inputs}
    for i, f in enumerate(inputs):
        if (f.path, f.var) not in declared:
            raise Invalid(f"{f.path!r} is not an input of the config", field=f"inputs[{i}]")
    for i, p in enumerate(cfg.inputs):
        if (p.path, p.var) not in given:
            raise Invalid(f"no file was sent for input {p.path!r}", field=f"inputs[{i}]")


def _python(cfg: JobConfig, python: dict[str, Any] | None) -> JobPython | None:
    """The resolved environment the client detected (version, pinned requirements, pip options)."""
    if cfg.env.python is None:
        if python:
            raise Invalid("the config has no env.python: send no Python environment", field="python")
        return None
    if not python:
        raise Invalid("env.python is set: send the detected Python environment", field="python")
    version = str(python.get("version", ""))
    if not _VERSION_RE.match(version):
        raise Invalid(f"python.version must look like 3.11 (got {version!r})", field="python.version")
    reqs = python.get("requirements", [])
    if not isinstance(reqs, list) or not all(isinstance(r, str) and r.strip() for r in reqs):
        raise Invalid(
            "python.requirements must be a list of requirement strings", field="python.requirements"
        )
    clean = [normalize_requirement(r, "python.requirements") for r in reqs]
    return JobPython.model_validate(
        {"version": version, "requirements": clean, "pip": python.get("pip") or None}
    )


def _env_vars(cfg: JobConfig, given: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, v in enumerate(cfg.env.vars):
        if v.value is not None:
            out[v.name] = v.value
        elif v.name in given:
            out[v.name] = given[v.name]
        else:
            raise Invalid(
                f"{v.name} is copied from your environment, but it was not sent", field=f"env.vars[{i}]"
            )
    return out


def missing_blobs(db: Session, project_id: str, shas: list[str], has_file: Any) -> list[str]:
    """The digests this project has not uploaded yet (or whose content is gone)."""
    have = set(
        db.scalars(
            select(ProjectBlob.sha256).where(
                ProjectBlob.project_id == project_id, ProjectBlob.sha256.in_(shas)
            )
        )
    )
    return sorted({s for s in shas if s not in have or not has_file(s)})


def create_job(
    db: Session,
    p: Principal,
    project_id: str,
    *,
    config_yaml: str,
    name: str | None = None,
    desc: str | None = None,
    inputs: list[StoredFile],
    modules: list[StoredFile],
    python: dict[str, Any] | None,
    env_vars: dict[str, str],
    data_ttl_days: int | None = DEFAULT_TTL_DAYS,
    parent: Job | None = None,
    config: JobConfig | None = None,
    served: frozenset[str] = SERVED,
) -> Job:
    """Validate and record a job in CREATING; it runs once its files are uploaded and it is executed.
    ``served``: what this installation serves of config.yaml (``docker`` where a Docker daemon is)."""
    project = tenancy.get_project(db, p, project_id, Action.PROJECT_USE)
    if config is None:
        config, _warnings = parse_config(config_yaml)
        config = _default_instance_type(config, config_yaml, project)
    for field, message in unsupported_keys(config, served):
        raise Invalid(message, field=field)  # the message already starts with the field
    for i, instance_type in enumerate(config.cloud_instance_types):
        if db.get(Configuration, instance_type) is None:
            raise Invalid(
                f"unknown configuration {instance_type!r}; see `atoll config list`",
                field=f"cloud-instance-types[{i}]",
            )
    datasets.check_names_free(db, project.id, [d.name for d in config.output_datasets])
    datasets.resolve_mounts(db, project.id, [m.id for m in config.datasets])
    _check_files(inputs, "inputs")
    _check_files(modules, "modules")
    for i, m in enumerate(modules):
        # Local modules land at their path inside the working dir: never absolute, never a var.
        if m.var is not None or m.path.startswith("/") or "\\" in m.path:
            raise Invalid("a local module path must be relative, without a var", field=f"modules[{i}].path")
    _match_inputs(config, inputs)
    if data_ttl_days is not None and not 1 <= data_ttl_days <= MAX_TTL_DAYS:
        raise Invalid(f"dataTtlDays must be 1-{MAX_TTL_DAYS}, or null for no expiry", field="dataTtlDays")
    job = Job(
        project_id=project.id,
        name=name or config.name or "",
        desc=desc or config.desc or "",
        config_yaml=config_yaml,
        config=config.to_dict(),
        files=JobFiles(
            inputs=list(inputs),
            modules=list(modules),
            python=_python(config, python),
            env_vars=_env_vars(config, env_vars),
        ),
        status=JobStatus.CREATING,
        created_by=p.user.id,
        parent_job_id=parent.id if parent else None,
        data_ttl_days=data_ttl_days,
        data_size_bytes=sum(f.size for f in [*inputs, *modules]),
    )
    db.add(job)
    db.flush()
    return job


def _default_instance_type(config: JobConfig, config_yaml: str, project: Project) -> JobConfig:
    """A config that names no instance type runs on the project's default configuration, when the
    project sets one (DataSphere's fixed default, c1.4, does not fit a laptop)."""
    import yaml

    try:
        raw = yaml.safe_load(config_yaml)
    except yaml.YAMLError:  # parse_config already read it its own way; tags it never needs
        return config
    named = isinstance(raw, dict) and ("cloud-instance-types" in raw or "cloud-instance-type" in raw)
    if named or not project.default_configuration:
        return config
    return dataclasses.replace(config, cloud_instance_types=(project.default_configuration,))


def job_config(job: Job) -> JobConfig:
    return JobConfig.from_dict(job.config)


def job_shas(job: Job) -> list[str]:
    return [f.sha256 for f in (*job.files.inputs, *job.files.modules)]


def job_for_followers(db: Session, job_id: str) -> Job | None:
    """A job read once for everyone following it. Only for callers that authorized each follower
    with ``get_job`` already (and do so again every minute while they follow)."""
    return db.get(Job, job_id)


def get_job(db: Session, p: Principal, job_id: str, action: Action = Action.PROJECT_VIEW) -> Job:
    job = db.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id!r} not found")
    project = db.get(Project, job.project_id)
    if project is None:
        raise NotFound(f"job {job_id!r} not found")
    try:
        tenancy.get_project(db, p, project.id, action)
    except NotFound:
        raise NotFound(f"job {job_id!r} not found") from None
    return job


def list_jobs(db: Session, p: Principal, project_id: str) -> Select[Job]:
    project = tenancy.get_project(db, p, project_id)
    return select(Job).where(Job.project_id == project.id)


def record_blob(db: Session, project_id: str, sha256: str, size: int) -> None:
    """Remember that `project_id` uploaded this content (the bytes are already stored)."""
    if db.get(Blob, sha256) is None:
        db.add(Blob(sha256=sha256, size=size))
        db.flush()
    if db.get(ProjectBlob, (project_id, sha256)) is None:
        db.add(ProjectBlob(project_id=project_id, sha256=sha256))


def execute_job(db: Session, p: Principal, job_id: str, has_file: Any) -> Job:
    job = get_job(db, p, job_id, Action.PROJECT_USE)
    if job.status != JobStatus.CREATING:
        raise Conflict(f"job {job.id} is {job.status}: only a job in CREATING can be executed")
    missing = missing_blobs(db, job.project_id, job_shas(job), has_file)
    if missing:
        raise Conflict(f"{len(missing)} file(s) are not uploaded yet, e.g. {missing[0]}")
    job.status = JobStatus.PREPARING
    job.status_details = "waiting to prepare the environment"
    return job


def cancel_job(
    db: Session, p: Principal, job_id: str, *, graceful: bool, reason: str = "cancelled by user"
) -> Job:
    """Cancel: with `graceful`, the config's graceful-shutdown signal and timeout; else SIGKILL."""
    job = get_job(db, p, job_id, Action.PROJECT_USE)
    if job.status in JOB_TERMINAL:
        raise Conflict(f"job {job.id} already finished ({job.status})")
    if job.workload_id is None:
        # Compare-and-set: if the controller attached a workload meanwhile, stop that instead.
        now = utcnow()
        done = cast(
            CursorResult[Any],
            db.execute(
                update(Job)
                .where(Job.id == job.id, Job.workload_id.is_(None), Job.status.in_(JOB_ACTIVE))
                .values(status=JobStatus.CANCELLED, status_details=reason, finished_at=now)
                .execution_options(synchronize_session=False)
            ),
        ).rowcount
        db.refresh(job)
        if done:
            set_expiry(job)
            return job
        if job.workload_id is None:
            raise Conflict(f"job {job.id} already finished ({job.status})")
    cfg = job_config(job)
    gs = cfg.graceful_shutdown
    if graceful and gs is not None:
        sig, grace = gs.signal_number, gs.timeout_seconds if gs.timeout_seconds is not None else 15.0
    else:
        sig, grace = 9, 0.0
    workloads.request_stop(db, job.workload_id, reason, sig=sig, grace=grace)
    job.status = JobStatus.CANCELLING
    job.status_details = reason
    return job


def set_expiry(job: Job) -> None:
    base = job.finished_at or job.created_at
    job.data_expires_at = None if job.data_ttl_days is None else base + timedelta(days=job.data_ttl_days)


def set_data_ttl(db: Session, p: Principal, job_id: str, days: int | None) -> Job:
    """TTL of the job's data in days (None: keep forever), counted from the job's end."""
    job = get_job(db, p, job_id, Action.PROJECT_USE)
    if days is not None and not 1 <= days <= MAX_TTL_DAYS:
        raise Invalid(f"days must be 1-{MAX_TTL_DAYS}, or null for infinity", field="days")
    job.data_ttl_days = days
    if job.status in JOB_TERMINAL:
        set_expiry(job)
    return job


def fork_job(
    db: Session,
    p: Principal,
    job_id: str,
    *,
    overrides: dict[str, Any],
    new_inputs: list[StoredFile],
    env_vars: dict[str, str],
) -> Job:
    """A new job from a source job with the overrides of spec §5.7; the source is its parent."""
    source = get_job(db, p, job_id, Action.PROJECT_USE)
    if source.data_cleared:
        raise Conflict(f"job {source.id}'s data is cleared: it cannot be forked")
    cfg = apply_fork(job_config(source), **overrides)
    # Inputs: the source's files, except those whose var now points at a new file.
    new_by_var = {f.var: f for f in new_inputs}
    inputs: list[StoredFile] = []
    for spec in cfg.inputs:
        if spec.var in new_by_var:
            inputs.append(new_by_var[spec.var])
            continue
        old = next((f for f in source.files.inputs if f.path == spec.path and f.var == spec.var), None)
        if old is None:
            raise Invalid(f"input {spec.path!r} needs a new file", field="vars")
        inputs.append(old)
    modules = list(source.files.modules)
    python = source.files.python
    return create_job(
        db,
        p,
        source.project_id,
        config_yaml=source.config_yaml,
        name=cfg.name,
        desc=cfg.desc,
        inputs=inputs,
        modules=modules,
        python=python.model_dump(exclude_none=True) if python else None,
        env_vars=env_vars or source.files.env_vars,
        data_ttl_days=source.data_ttl_days,
        parent=source,
        config=cfg,
    )


def expired_jobs(db: Session, now: datetime) -> list[Job]:
    q = select(Job).where(
        Job.data_cleared.is_(False), Job.data_expires_at.is_not(None), Job.data_expires_at < now
    )
    return list(db.scalars(q))
