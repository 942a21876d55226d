"""`atoll doctor`: what this installation can do, checked on this machine.

It reads the same ATOLL_* settings as `atoll up`: the database (does it connect, is its schema
at the newest revision), the data dir, how resource limits can be enforced, the CPUs, memory
and GPUs the compute pool would get, and whether the configured server answers. It changes
nothing. The exit status is 0 unless the database cannot be used.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from atoll import __version__
from atoll.cli.output import Format, FormatOpt, out, print_json
from atoll.client import AtollError, Client, load_config

GPU_NOTE = "no GPU detected: GPU configurations (g1.*, g2.*, gt4.1) are unavailable here"


def _database(url: str) -> dict[str, Any]:
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.exc import SQLAlchemyError

    from atoll.store.db import normalize_url

    normalized = normalize_url(url)
    parsed = make_url(normalized)
    info: dict[str, Any] = {
        "url": parsed.render_as_string(hide_password=True),
        "backend": parsed.get_backend_name(),
        "ok": False,
        "status": "error",
        "revision": None,
        "head": _head_revision(normalized),
        "message": "",
    }
    connect_args: dict[str, Any] = {}
    if info["backend"] == "sqlite":
        path = Path(parsed.database or "")
        if parsed.database and parsed.database != ":memory:" and not path.exists():
            # Do not create the file: `atoll up` makes and migrates it.
            parent = next((p for p in path.parents if p.exists()), None)
            usable = parent is not None and os.access(parent, os.W_OK)
            info.update(
                ok=usable,
                status="not created yet" if usable else "error",
                message=f"{path} does not exist yet; `atoll up` creates it"
                if usable
                else f"{path} does not exist and {parent} is not writable",
            )
            return info
    elif info["backend"] == "postgresql":
        connect_args["connect_timeout"] = 5
    try:
        engine = create_engine(normalized, connect_args=connect_args)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                from alembic.runtime.migration import MigrationContext

                info["revision"] = MigrationContext.configure(conn).get_current_revision()
        finally:
            engine.dispose()
    except SQLAlchemyError as e:
        info["message"] = (
            f"cannot connect: {str(e.orig if hasattr(e, 'orig') and e.orig else e).splitlines()[0]}"
        )
        return info
    info["ok"] = True
    if info["revision"] is None:
        info.update(status="empty", message="connects; no schema yet (`atoll up` creates it)")
    elif info["revision"] == info["head"]:
        info.update(status="ok", message=f"connects; schema at the newest revision {info['head']}")
    else:
        info.update(
            status="needs migration",
            message=f"connects; schema at {info['revision']}, newest is {info['head']} "
            "(`atoll up` migrates on start)",
        )
    return info


def _head_revision(url: str) -> str | None:
    from alembic.script import ScriptDirectory

    from atoll.store.migrate import alembic_config

    head: str | None = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    return head


def _data_dir(path: Path) -> dict[str, Any]:
    existing = next((p for p in (path, *path.parents) if p.exists()), path)
    free = shutil.disk_usage(existing).free / 1024**3 if existing.exists() else None
    return {
        "path": str(path),
        "exists": path.exists(),
        "writable": os.access(existing, os.W_OK),
        "freeGb": round(free, 1) if free is not None else None,
    }


def _compute(pool_cpus: float, pool_memory_gb: float, gpus_override: str | None) -> dict[str, Any]:
    from atoll.runtime import inventory

    inv = inventory.detect(pool_cpus, pool_memory_gb, gpus_override)
    return {
        "cpus": inv.cpus,
        "memoryGb": inv.memory_gb,
        "gpus": [
            {"index": g.index, "name": g.name, "memoryMb": g.memory_mb, "uuid": g.uuid} for g in inv.gpus
        ],
        "gpuSource": inv.gpu_source,
        "gpuNote": "" if inv.gpus else GPU_NOTE + (f" ({inv.gpu_error})" if inv.gpu_error else ""),
    }


def _cluster(runtime: str, address: str, namespace: str, node_ip: str) -> dict[str, Any]:
    """The Ray cluster the ray runtime places workloads on: its alive nodes and their resources."""
    if runtime != "ray":
        return {"runtime": runtime, "ok": True, "nodes": [], "message": "workloads run on this machine"}
    from atoll.runtime.ray.runtime import RayUnavailable, cluster_inventory, connect

    try:
        inv = cluster_inventory(connect(address, namespace, node_ip or None))
    except RayUnavailable as e:
        return {"runtime": runtime, "address": address, "ok": False, "nodes": [], "message": str(e)}
    nodes = [
        {
            "id": h.name,
            "address": h.address,
            "cpus": h.cpus,
            "memoryGb": h.memory_gb,
            "gpus": [g.name for g in h.gpus],
        }
        for h in inv.hosts
    ]
    return {
        "runtime": runtime,
        "address": address,
        "ok": bool(nodes),
        "nodes": nodes,
        "message": f"{len(nodes)} node(s), {inv.cpus:g} CPUs, {inv.memory_gb:g} GB, {len(inv.gpus)} GPU(s)"
        if nodes
        else "the cluster has no alive node",
    }


def _limits() -> dict[str, Any]:
    from atoll.runtime.local import limits

    lim = limits.detect_limits()
    return {
        "mechanism": lim.mechanism,
        "detail": lim.detail,
        "cpu": lim.cpu,
        "memory": lim.memory,
        "pids": lim.pids,
    }


def _isolation(settings: Any) -> list[dict[str, Any]]:
    """The isolation between projects this machine gives, with these settings."""
    from atoll.runtime.isolation import in_force

    found = in_force(
        settings.data_dir,
        settings.workload_uid_base,
        settings.runtime,
        settings.network_isolation,
        settings.docker_host,
    )
    return [{"what": what, "inForce": ok, "detail": detail} for what, ok, detail in found.rows()]


def _images(settings: Any) -> dict[str, Any]:
    """Where projects' Docker images are built and kept (the daemon is not asked)."""
    import shutil

    if not settings.docker_host:
        return {"ok": True, "message": "off: no Docker daemon (ATOLL_DOCKER_HOST), no project images"}
    if settings.image_registry:
        kept = settings.image_registry
    elif not settings.image_registry_port:
        kept = "on the daemon only (ATOLL_IMAGE_REGISTRY_PORT=0)"
    elif shutil.which("docker-registry") is None:
        kept = "on the daemon only: docker-registry is not installed (apt-get install docker-registry)"
    else:
        kept = f"Atoll's own registry, 127.0.0.1:{settings.image_registry_port} (started at the first push)"
    quota = settings.quota_images_per_community or "no limit"
    return {
        "ok": True,
        "message": f"built on {settings.docker_host}; kept in {kept}; {quota} per community",
    }


def _data_plane(settings: Any) -> dict[str, Any]:
    """The HAProxy that serves the gateway port: its version, and whether its keeper runs."""
    if not settings.gateway_port:
        off = "off (ATOLL_GATEWAY_PORT=0): nodes and aliases are not served"
        return {"kind": "haproxy", "ok": True, "message": off}
    import subprocess

    from atoll.dataplane.proxy import HAProxyPlane, haproxy_binary

    try:
        binary = haproxy_binary(settings.haproxy_binary)
        out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10).stdout
        version = out.split("\n", 1)[0].removeprefix("HAProxy version ").split(" ")[0]
    except (OSError, subprocess.SubprocessError) as e:
        return {"kind": "haproxy", "ok": False, "message": f"no usable haproxy: {e}"}
    pid = HAProxyPlane(settings.data_dir / "gateway", binary, "", 0).keeper_pid()
    state = f"serving (keeper pid {pid})" if pid else "not running (`atoll up` starts it)"
    return {
        "kind": "haproxy",
        "ok": True,
        "binary": binary,
        "version": version,
        "keeperPid": pid,
        "message": f"HAProxy {version} on port {settings.gateway_port}: {state}",
    }


def _environments(settings: Any) -> dict[str, Any]:
    """The built-in environments in this installation's cache, and the Pythons uv finds here."""
    import time

    from atoll.envs.build import EnvironmentBuilder, metadata
    from atoll.envs.builtins import BUILTINS

    builder = EnvironmentBuilder(settings.envs_dir or settings.data_dir / "envs")
    found = []
    for env in BUILTINS.values():
        built = env.lookup(builder) if builder.cache_dir.exists() else None
        since = builder.building_since(env.key()) if builder.cache_dir.exists() and built is None else None
        item: dict[str, Any] = {"name": env.name, "built": built is not None, "building": since is not None}
        if built is not None:
            meta = metadata(built)
            size = meta.get("size_bytes")
            item["message"] = f"ready: {meta.get('packages')} packages" + (
                f", {int(size) / 1e9:.1f} GB" if isinstance(size, int) else ""
            )
        elif since is not None:
            item["message"] = f"building for {time.time() - since:.0f} s (`atoll up` started it)"
        else:
            item["message"] = "not built yet: `atoll up` builds it in the background at start"
        found.append(item)
    try:
        pythons = builder.available_pythons()
    except (OSError, FileNotFoundError) as e:
        pythons, found_error = [], str(e)
    else:
        found_error = ""
    return {
        "cache": str(builder.cache_dir),
        "builtIn": found,
        "pythons": pythons,
        "pythonsError": found_error,
    }


def _server(url: str) -> dict[str, Any]:
    try:
        with Client(url, anonymous=True) as c:
            health = c.healthz()
    except AtollError as e:
        return {"url": url, "ok": False, "message": e.message()}
    return {
        "url": url,
        "ok": health.get("status") == "ok",
        "version": health.get("version"),
        "database": health.get("database"),
        "message": f"answers /healthz (Atoll {health.get('version')}, {health.get('database')})",
    }


def report(url: str | None = None) -> dict[str, Any]:
    """Everything `atoll doctor` checks, as a JSON-ready dict."""
    from atoll.settings import Settings

    settings = Settings()
    server_url = (url or os.environ.get("ATOLL_URL") or load_config().get("url") or settings.base_url).rstrip(
        "/"
    )
    database = _database(settings.resolved_database_url)
    cluster = _cluster(settings.runtime, settings.ray_address, settings.ray_namespace, settings.ray_node_ip)
    return {
        "version": __version__,
        "ok": bool(database["ok"] and cluster["ok"]),
        "cluster": cluster,
        "database": database,
        "dataDir": _data_dir(settings.data_dir),
        "limits": _limits(),
        "compute": _compute(settings.pool_cpus, settings.pool_memory_gb, settings.gpus_override),
        "server": _server(server_url),
        "dataPlane": _data_plane(settings),
        "images": _images(settings),
        "isolation": _isolation(settings),
        "environments": _environments(settings),
    }


def _mark(ok: bool) -> str:
    return "[green]ok[/]" if ok else "[red]fail[/]"


def _print_table(r: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    db, dd, lim, comp, srv = r["database"], r["dataDir"], r["limits"], r["compute"], r["server"]
    gpus = ", ".join(
        f"{g['index']}: {g['name']}" + (f" ({g['memoryMb']} MB)" if g["memoryMb"] else "")
        for g in comp["gpus"]
    )
    enforced = ", ".join(k for k in ("cpu", "memory", "pids") if lim[k])
    rows = [
        ("database", _mark(db["ok"]), f"{db['backend']} {db['url']}: {db['status']}; {db['message']}"),
        (
            "data dir",
            _mark(dd["writable"]),
            f"{dd['path']}"
            + ("" if dd["exists"] else " (not created yet)")
            + (f", {dd['freeGb']} GB free" if dd["freeGb"] is not None else ""),
        ),
        (
            "resource limits",
            _mark(True),
            f"{lim['mechanism']}, enforces {enforced or 'nothing'}: {lim['detail']}",
        ),
        ("cpu / memory", _mark(True), f"{comp['cpus']:g} CPUs, {comp['memoryGb']:g} GB"),
        ("gpus", _mark(True), gpus or comp["gpuNote"]),
        ("server", _mark(srv["ok"]), f"{srv['url']}: {srv['message']}"),
        ("data plane", _mark(r["dataPlane"]["ok"]), r["dataPlane"]["message"]),
        ("project images", _mark(r["images"]["ok"]), r["images"]["message"]),
    ]
    envs = r["environments"]
    for env in envs["builtIn"]:  # not a failure: the first notebook waits for it
        status = (
            "[green]ready[/]"
            if env["built"]
            else "[yellow]building[/]"
            if env["building"]
            else "[yellow]pending[/]"
        )
        rows.append((f"environment: {env['name']}", status, env["message"]))
    pythons = ", ".join(envs["pythons"]) or envs["pythonsError"] or "none found"
    rows.append(
        ("python versions", _mark(bool(envs["pythons"])), f"{pythons} (env.python.version may name these)")
    )
    for iso in r["isolation"]:  # not a failure: a single-team install may run without it
        status = "[green]isolated[/]" if iso["inForce"] else "[yellow]shared[/]"
        rows.append((f"isolation: {iso['what']}", status, iso["detail"]))
    cl = r["cluster"]
    if cl["runtime"] == "ray":
        rows.append(("ray cluster", _mark(cl["ok"]), f"{cl['address']}: {cl['message']}"))
        for n in cl["nodes"]:
            gpus = f", GPUs: {', '.join(n['gpus'])}" if n["gpus"] else ""
            detail = f"{n['address']} ({n['id'][:12]}): {n['cpus']:g} CPUs, {n['memoryGb']:g} GB{gpus}"
            rows.append(("  ray node", _mark(True), detail))
    table = Table(show_edge=False, box=None, pad_edge=False, header_style="bold")
    for header in ("CHECK", "STATUS", "DETAIL"):
        table.add_column(header, overflow="fold")
    for name, status, detail in rows:
        table.add_row(name, status, escape(detail))
    out.print(f"Atoll {r['version']}")
    out.print(table)


def doctor(
    url: Annotated[
        str | None,
        typer.Option(help="Server to check (default: ATOLL_URL, the saved one, or this machine's)"),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Check what this installation can do: database, data dir, limits, CPUs/GPUs, server."""
    r = report(url)
    if fmt is Format.json:
        print_json(r)
    else:
        _print_table(r)
    if not r["ok"]:
        raise typer.Exit(1)
