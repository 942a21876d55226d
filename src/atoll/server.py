"""`atoll up`: migrate, bootstrap, print how to sign in, serve on 127.0.0.1:8800."""

from __future__ import annotations

import os
import sys

import uvicorn

from atoll.app import create_app, prepare
from atoll.errors import DomainError
from atoll.settings import Settings


def banner(settings: Settings, first_admin_line: str) -> str:
    lines = [
        f"Atoll is up at {settings.base_url}",
        f"  data dir : {settings.data_dir}",
        f"  database : {settings.resolved_database_url.split('@')[-1]}",
        f"  API docs : {settings.base_url}/api/v1/docs",
    ]
    if settings.gateway_port:
        lines.append(f"  gateway  : {settings.gateway_url} (aliases and nodes)")
    if first_admin_line:
        lines.append(first_admin_line)
    lines.append(f"  CLI      : atoll login --url {settings.base_url}")
    return "\n".join(lines)


def serve(settings: Settings | None = None) -> None:
    # What Atoll writes in the data dir is its own unless it says otherwise (datasets and models
    # are opened to their project's group, environments to every workload, by explicit modes).
    os.umask(0o077)
    settings = settings or Settings()
    try:
        prepared = prepare(settings)
    except DomainError as e:
        # A setting to fix (e.g. a weak ATOLL_ADMIN_PASSWORD): one line that names it, no traceback.
        print(f"error: {e.detail}", file=sys.stderr, flush=True)
        sys.exit(1)
    first = ""
    if prepared.first_admin is not None:
        fa = prepared.first_admin
        if fa.generated:
            path = settings.data_dir / "initial-admin-password"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(fa.password + "\n")
            first = (
                f"  first admin: sign in as '{fa.username}' with password {fa.password}\n"
                f"               (also saved to {path}; change it under Account)"
            )
        else:
            first = f"  first admin: sign in as '{fa.username}' with the password from ATOLL_ADMIN_PASSWORD"
    if "ATOLL_DATA_PLANE" in os.environ:
        # Settings ignore it now; say so rather than let a choice made for the former Python
        # gateway pass unseen.
        print("note: ATOLL_DATA_PLANE is no longer read: HAProxy is the only data plane", file=sys.stderr)
    app = create_app(settings, prepared, data_plane=True)
    print(banner(settings, first), flush=True)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        access_log=False,
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(1)
