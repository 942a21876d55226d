"""Build the ASGI app from Settings: migrate, seed, mount API, web UI and static assets."""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp

from atoll import __version__
from atoll.api import API_PREFIX, bounds, problems
from atoll.api.audit_log import AuditLog
from atoll.api.body_limit import BodyLimit
from atoll.api.routes_access import router as access_router
from atoll.api.routes_audit import router as audit_router
from atoll.api.routes_auth import router as auth_router
from atoll.api.routes_catalog import router as catalog_router
from atoll.api.routes_deploy import router as deploy_router
from atoll.api.routes_environments import router as environments_router
from atoll.api.routes_images import router as images_router
from atoll.api.routes_job_follow import router as job_follow_router
from atoll.api.routes_jobs import router as jobs_router
from atoll.api.routes_notebooks import router as notebooks_router
from atoll.api.routes_secrets import router as secrets_router
from atoll.api.routes_sso import router as sso_router
from atoll.api.routes_tenancy import router as tenancy_router
from atoll.domain import catalog, sso_providers
from atoll.domain.bootstrap import FirstAdmin, ensure_first_admin
from atoll.domain.secrets import SecretBox
from atoll.gateway.access_log import METRICS_PATH, AccessLogFeed, metrics_endpoint
from atoll.gateway.metrics import Recorder
from atoll.gateway.notebooks import NotebookGateway
from atoll.runtime import inventory
from atoll.services import Services
from atoll.settings import Settings
from atoll.store.db import Database
from atoll.store.migrate import upgrade

log = logging.getLogger("atoll")
API_ROUTERS = (
    auth_router,
    sso_router,
    audit_router,
    tenancy_router,
    access_router,
    catalog_router,
    environments_router,
    images_router,
    secrets_router,
    jobs_router,
    job_follow_router,
    notebooks_router,
    deploy_router,
)


def api_route_table() -> list[tuple[str, str, str | None]]:
    """(method, path, declared action) for every REST route; the role-matrix test walks it."""
    from fastapi.routing import APIRoute

    from atoll.api.common import ACTION_KEY

    out: list[tuple[str, str, str | None]] = []
    for router in API_ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute):
                action = (route.openapi_extra or {}).get(ACTION_KEY)
                out.extend((m, API_PREFIX + route.path, action) for m in sorted(route.methods or ()))
    return out


STATIC_DIR = Path(__file__).parent / "web" / "static"
# Bodies with a bound of their own (atoll.api.body_limit); every other one gets MAX_BODY_BYTES.
BODY_LIMITS = (
    # Blob uploads stream to disk and are bounded per file by the endpoint (5 GB).
    ("PUT", re.compile(rf"^{API_PREFIX}/projects/[^/]+/blobs/[^/]+$"), None),
    # The node page's test console sends up to 16 MB on the instance's behalf.
    ("POST", re.compile(rf"^{API_PREFIX}/projects/[^/]+/nodes/[^/]+:request$"), bounds.MAX_TEST_REQUEST),
    ("*", re.compile(r"^/nb/"), None),  # JupyterLab's own (its uploads, saved notebooks)
)


class AtollApp(FastAPI):
    """FastAPI with the security headers outside everything, so even a 500 carries them."""

    public_https = False  # the public URL is https: HSTS on every response

    def build_middleware_stack(self) -> ASGIApp:
        from atoll.web.security_headers import SecurityHeaders

        return SecurityHeaders(
            super().build_middleware_stack(),
            public_https=self.public_https,
            docs_paths=[p for p in (self.docs_url, self.swagger_ui_oauth2_redirect_url) if p],
        )


@dataclass
class Prepared:
    db: Database
    first_admin: FirstAdmin | None


def prepare(settings: Settings) -> Prepared:
    """Migrate the schema, load the catalogue, create the first admin. Safe to run on every start."""
    settings.ensure_data_dir()
    db = Database(settings.resolved_database_url)
    upgrade(db.engine)
    with db.transaction() as s:
        catalog.seed(s, settings.catalog_file)
        first = ensure_first_admin(s, settings)
        sso_providers.from_settings(s, SecretBox(settings.secret_key), settings.sso_providers)
    return Prepared(db, first)


def create_app(
    settings: Settings | None = None, prepared: Prepared | None = None, *, data_plane: bool = False
) -> FastAPI:
    """The app; ``data_plane``: also drive the gateway's HAProxy (what `atoll up` asks for)."""
    settings = settings or Settings()
    prepared = prepared or prepare(settings)
    inventory_fn = lambda: inventory.cached(  # noqa: E731 - one line, reused below
        settings.pool_cpus, settings.pool_memory_gb, settings.gpus_override
    )
    box = SecretBox(settings.secret_key)
    services = Services(settings, prepared.db, box, inventory_fn, data_plane=data_plane)
    gateway = NotebookGateway(prepared.db, box, services.activity, settings)
    # With HAProxy as the data plane, its request log feeds the node and alias metrics here.
    feed: AccessLogFeed | None = None
    if services.data_plane is not None:
        feed = AccessLogFeed(services.data_plane.plane.directory, prepared.db, Recorder(secrets.token_hex(6)))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        stop_feed = threading.Event()
        if feed is not None:
            threading.Thread(
                target=feed.serve, args=(stop_feed,), name="atoll-access-log", daemon=True
            ).start()
        try:
            yield
        finally:
            stop_feed.set()
            await services.stop()
            await gateway.aclose()

    app = AtollApp(
        lifespan=lifespan,
        title="Atoll",
        version=__version__,
        description="Self-hosted ML platform: communities, projects, notebooks, jobs, deploy.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.public_https = settings.public_url.lower().startswith("https://")
    app.state.db = prepared.db
    app.state.secret_box = box
    app.state.inventory = services.inventory  # the cluster's, on the ray runtime
    app.state.services = services
    from atoll.web.context import error_page

    problems.install(app, html_errors=error_page)
    app.add_middleware(BodyLimit, default=bounds.MAX_BODY_BYTES, rules=BODY_LIMITS)
    # Outermost of the app's own middleware: it sees every answer, the body limit's too.
    app.add_middleware(AuditLog)

    api = APIRouter(prefix=API_PREFIX)
    for r in API_ROUTERS:
        api.include_router(r)
    app.include_router(api)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        body = {"status": "ok", "version": __version__, "database": prepared.db.backend}
        if settings.gateway_port:
            body["gatewayUrl"] = settings.gateway_url  # where aliases and nodes are called
        return JSONResponse(body)

    from atoll.web.routes import router as web_router

    app.include_router(web_router)
    STATIC_DIR.mkdir(parents=True, exist_ok=True)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # Projects' JupyterLab servers, HTTP and WebSocket, behind Atoll's sign-in.
    app.mount("/nb/{project_id}", gateway, name="notebooks")
    if feed is not None:
        endpoint = metrics_endpoint(feed, settings.resolved_metrics_token)
        app.add_route(METRICS_PATH, endpoint, include_in_schema=False)
    return app
