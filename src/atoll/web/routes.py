"""Web UI routes: server-rendered pages (Jinja2 + htmx) that call the domain directly."""

from fastapi import APIRouter

from atoll.web import (
    pages_auth,
    pages_community,
    pages_deploy,
    pages_home,
    pages_images,
    pages_jobs,
    pages_members,
    pages_node_runs,
    pages_notebooks,
    pages_project,
    pages_sso,
    pages_sso_admin,
)

router = APIRouter(include_in_schema=False)
for _module in (
    pages_auth,
    pages_sso,
    pages_sso_admin,
    pages_home,
    pages_community,
    pages_project,
    pages_images,
    pages_members,
    pages_jobs,
    pages_notebooks,
    pages_deploy,
    pages_node_runs,
):
    router.include_router(_module.router)
