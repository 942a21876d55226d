"""The node page's run selector (spec §6.1): which run of an instance its log panel shows.

A crashed instance restarts as a new run; the panel shows the latest one unless the reader picks
an earlier one here, each labelled with why it ended. The choices are rendered here, from the
same domain calls as ``GET …/nodes/{node}/instances/{instance}/runs``; ``static/deploy.js``
reads the chosen run into the logs it fetches, and asks for fresh choices when the instance
restarts.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from atoll.domain import deploy, instance_runs
from atoll.errors import NotFound
from atoll.web.context import WebCtx, WebRoute, render, signed_in

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Ctx = Annotated[WebCtx, Depends(signed_in)]
MAX_ID = 64  # as the API bounds ids (the web never imports the API)


@router.get("/projects/{project_id}/nodes/{node}/runs")
def node_runs(
    project_id: str,
    node: str,
    ctx: Ctx,
    instance: str = Query("", max_length=MAX_ID),
    run: int = Query(0, ge=0, le=instance_runs.MAX_RUNS - 1),
) -> Response:
    """The ``<option>``s of an instance's runs (the first instance's without ``instance``), the
    one chosen before kept chosen; an instance gone from the node leaves only "latest"."""
    n = deploy.get_node(ctx.db, ctx.me, project_id, node)
    try:
        inst = instance_runs.find_instance(ctx.db, n, instance or None)
    except NotFound:
        inst = None  # deleted between two refreshes of the page: nothing earlier to offer
    runs = instance_runs.runs(ctx.db, inst) if inst is not None else []
    chosen = run if run < len(runs) else 0
    return render(ctx, "node_runs.html", runs=runs, chosen=chosen)
