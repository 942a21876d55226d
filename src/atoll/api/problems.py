"""RFC 9457 problem+json for every error, naming the field at fault."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from atoll.errors import DomainError, TooManyRequests

PROBLEM = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    instance: str = "",
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://atoll.dev/problems/{title.lower().replace(' ', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


# What Pydantic puts in a location for the member of a union it tried ("constrained-str",
# "function-after[…]"): not part of the field's name.
_UNION_MEMBER = re.compile(r"^(constrained-)?(str|int|float|bool|list|dict)$|^function-[a-z]+\[.*\]$")


def _field(loc: tuple[Any, ...]) -> str:
    # The first element says where (body, query…); the rest is the field, which may itself be
    # named "path" or "body" (a test request's fields are).
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]
    if len(loc) > 1 and isinstance(loc[-1], str) and _UNION_MEMBER.match(loc[-1]):
        loc = loc[:-1]
    # A map's key is part of the location: a key refused for its length is shown cut short.
    parts = [s if len(s := str(x)) <= 80 else s[:80] + "…" for x in loc]
    out = ""
    for p in parts:
        if p.isdigit():
            out += f"[{p}]"
        else:
            out += ("." if out else "") + p
    return out or "body"


def _message(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "invalid"))
    if err.get("type") == "extra_forbidden":
        return "unknown field"
    if err.get("type") == "missing":
        return "is required"
    return msg.removeprefix("Value error, ")


HtmlErrors = Callable[[Request, int, str, str], Response]


def install(app: FastAPI, html_errors: HtmlErrors | None = None) -> None:
    """Error handlers: problem+json for the API; `html_errors` renders pages for browsers elsewhere."""

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        errors = [{"field": exc.field, "message": exc.detail}] if exc.field else None
        # A 429 says when to come back (RFC 9110 §10.2.3), so clients need not guess.
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
        return problem(
            exc.status, exc.title, exc.detail, instance=request.url.path, errors=errors, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(tuple(e.get("loc", ()))), "message": _message(e)} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(422, "Invalid input", detail, instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Not found", 405: "Method not allowed", 401: "Authentication required"}
        title = titles.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) else title
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.method} {request.url.path}"
            wants_html = "text/html" in request.headers.get("accept", "")
            if html_errors is not None and wants_html and not request.url.path.startswith("/api/"):
                return html_errors(request, 404, "Not found", "There is no page at this address.")
        return problem(exc.status_code, title, detail, instance=request.url.path)
