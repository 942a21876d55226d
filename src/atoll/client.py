"""The HTTP client the `atoll` CLI and the Python SDK share.

Where the server and the token come from, first match wins:

1. arguments given to :class:`Client`;
2. the ``ATOLL_URL`` / ``ATOLL_TOKEN`` environment variables;
3. the user config file written by ``atoll login``:
   ``$ATOLL_CONFIG_DIR/config.json`` when that variable is set, else
   ``platformdirs.user_config_dir("atoll")/config.json``.

Every failure is an :class:`AtollError`: API errors carry the RFC 9457 problem+json
fields (status, title, detail and the per-field ``errors`` list); a server that cannot be
reached becomes one too, with a message saying so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
from platformdirs import user_config_dir

from atoll.tls import client_context

DEFAULT_URL = "http://127.0.0.1:8800"
API_PREFIX = "/api/v1"
CONFIG_DIR_ENV = "ATOLL_CONFIG_DIR"
URL_ENV = "ATOLL_URL"
TOKEN_ENV = "ATOLL_TOKEN"  # noqa: S105 - the variable's name, not a secret
GATEWAY_URL_ENV = "ATOLL_GATEWAY_URL"
DEFAULT_GATEWAY_PORT = 8801  # the default of the server's ATOLL_GATEWAY_PORT

Json = Any  # what json.loads returns


# --- errors ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """One entry of a problem's ``errors`` list: which input field is wrong and why."""

    field: str
    message: str


class AtollError(Exception):
    """An error from Atoll, or from trying to reach it.

    ``status`` is the HTTP status (``None`` when no response came back). ``errors`` names the
    fields at fault, as the API's problem+json reports them. ``hint`` says what to do next.
    """

    def __init__(
        self,
        detail: str,
        status: int | None = None,
        title: str = "Error",
        errors: list[FieldError] | None = None,
        hint: str = "",
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.title = title
        self.errors: list[FieldError] = list(errors or [])
        self.hint = hint

    def __str__(self) -> str:
        return self.message()

    def message(self) -> str:
        """One line a person can act on: the field errors if any, else the detail, plus a hint."""
        if self.errors:
            text = "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in self.errors)
        else:
            text = self.detail or self.title
        text = " ".join(text.split())  # never more than one line
        return f"{text} ({self.hint})" if self.hint else text

    @classmethod
    def from_response(cls, response: httpx.Response) -> AtollError:
        """Parse a problem+json body; fall back to the status line for anything else."""
        status = response.status_code
        body: Json = None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            raw_errors = body.get("errors")
            errors = [
                FieldError(str(e.get("field") or ""), str(e.get("message") or ""))
                for e in (raw_errors if isinstance(raw_errors, list) else [])
                if isinstance(e, dict)
            ]
            title = str(body.get("title") or response.reason_phrase or "Error")
            detail = body.get("detail")
            if not isinstance(detail, str) or not detail:
                # FastAPI's own {"detail": ...} shapes, just in case a route bypasses problem+json.
                detail = json.dumps(detail) if detail else title
        else:
            errors = []
            title = response.reason_phrase or "Error"
            text = response.text.strip()
            detail = f"HTTP {status} {title}" + (f": {text[:200]}" if text else "")
        return cls(detail=detail, status=status, title=title, errors=errors)


# --- the user config file -------------------------------------------------------------------


def config_dir() -> Path:
    """Where ``config.json`` lives: ``$ATOLL_CONFIG_DIR`` or the platform's user config dir."""
    env = os.environ.get(CONFIG_DIR_ENV)
    return Path(env) if env else Path(user_config_dir("atoll", appauthor=False))


def config_path() -> Path:
    return config_dir() / "config.json"


def load_config() -> dict[str, Any]:
    """The saved config (``url``, ``token``, ``tokenId``, ``username``), or ``{}``."""
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise AtollError(f"cannot read {path}: {e}; fix or delete it, then run `atoll login`") from e
    return data if isinstance(data, dict) else {}


def save_config(data: Mapping[str, Any]) -> Path:
    """Write the config file with mode 0600 (it holds a token), atomically."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(dict(data), f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    os.replace(tmp, path)
    return path


# --- the client -----------------------------------------------------------------------------


def resolve_url(url: str | None = None, config: Mapping[str, Any] | None = None) -> str:
    """The server URL: argument, then ``ATOLL_URL``, then the config file, then the default."""
    cfg = load_config() if config is None else config
    chosen = url or os.environ.get(URL_ENV) or cfg.get("url") or DEFAULT_URL
    # People paste the API's own address too: http://host:8800/api/v1 means http://host:8800.
    return str(chosen).strip().rstrip("/").removesuffix(API_PREFIX).rstrip("/")


def resolve_token(token: str | None = None, config: Mapping[str, Any] | None = None) -> str | None:
    """The API token: argument, then ``ATOLL_TOKEN``, then the config file."""
    cfg = load_config() if config is None else config
    chosen = token or os.environ.get(TOKEN_ENV) or cfg.get("token")
    return str(chosen) if chosen else None


def resolve_gateway_url(server_url: str, gateway: str | None = None) -> str:
    """The deploy gateway's URL: argument, then ``ATOLL_GATEWAY_URL``, then the server's host
    on port 8801 (the gateway's default port). Client.gateway_request asks the server first
    (``/healthz`` says where its gateway listens)."""
    chosen = gateway or os.environ.get(GATEWAY_URL_ENV)
    if chosen:
        return str(chosen).strip().rstrip("/")
    parts = urlsplit(server_url)
    host = parts.hostname or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme or 'http'}://{host}:{DEFAULT_GATEWAY_PORT}"


class Client:
    """A thin, typed wrapper over the REST API at ``{url}/api/v1``.

    Methods return the decoded JSON body (``None`` for 204) and raise :class:`AtollError`.
    Paths are relative to ``/api/v1`` (``"/projects"``); :meth:`raw_get` reaches others.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        anonymous: bool = False,
    ) -> None:
        """`anonymous=True` sends no token at all (e.g. to sign in with a password)."""
        config = load_config()
        self.url = resolve_url(url, config)
        self.token = None if anonymous else resolve_token(token, config)
        headers = {"Accept": "application/json", "User-Agent": "atoll-client"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        # The CA bundle is loaded at the first TLS handshake, not now (see tls.py): ~35 ms of
        # every CLI start, for nothing when the server is reached over http://.
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, verify=client_context()
        )

    # context manager, so `with Client() as c:` closes the connection pool
    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(
        self, method: str, path: str, *, params: Mapping[str, Any] | None, body: Json
    ) -> httpx.Response:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            return self._http.request(method, path, params=clean, json=body)
        except httpx.TimeoutException as e:
            raise AtollError(
                f"Atoll at {self.url} did not answer in time ({type(e).__name__})", title="Timeout"
            ) from e
        except httpx.HTTPError as e:
            # ConnectError, DNS failures, a closed port, a bad URL scheme…
            raise AtollError(
                f"cannot reach Atoll at {self.url}: is `atoll up` running? ({e})", title="Connection failed"
            ) from e

    def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Json = None
    ) -> Json:
        """Call ``/api/v1{path}``; the decoded body, or ``None`` for an empty response."""
        response = self._send(method, API_PREFIX + path, params=params, body=json)
        if response.status_code >= 400:
            error = AtollError.from_response(response)
            if response.status_code == 401 and path != "/auth/tokens":
                error.hint = "run `atoll login`"
                if not self.token:
                    error.detail, error.errors = f"not logged in to {self.url}", []
            raise error
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as e:
            raise AtollError(
                f"{method} {path} answered with something that is not JSON: is {self.url} an Atoll server?",
                status=response.status_code,
            ) from e

    def get(self, path: str, **params: Any) -> Json:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Json = None, **params: Any) -> Json:
        return self.request("POST", path, params=params, json=json if json is not None else {})

    def put(self, path: str, json: Json = None) -> Json:
        return self.request("PUT", path, json=json if json is not None else {})

    def patch(self, path: str, json: Json = None) -> Json:
        return self.request("PATCH", path, json=json if json is not None else {})

    def delete(self, path: str) -> Json:
        return self.request("DELETE", path)

    def stream(self, path: str, **params: Any) -> Iterator[bytes]:
        """GET ``/api/v1{path}`` and yield its body as it arrives (an export)."""
        clean = {k: v for k, v in params.items() if v is not None}
        try:
            with self._http.stream("GET", API_PREFIX + path, params=clean) as response:
                if response.status_code >= 400:
                    response.read()
                    raise AtollError.from_response(response)
                yield from response.iter_bytes()
        except httpx.HTTPError as e:
            raise AtollError(
                f"cannot read {path} from Atoll at {self.url}: {e}", title="Connection failed"
            ) from e

    def paginate(self, path: str, *, page_size: int = 100, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, following ``nextPageToken`` until the last page."""
        token: str | None = None
        while True:
            page = self.get(path, pageSize=page_size, pageToken=token, **params)
            if isinstance(page, list):  # a plain list endpoint: one "page" holds everything
                yield from page
                return
            yield from page.get("items", [])
            token = page.get("nextPageToken")
            if not token:
                return

    def healthz(self, timeout: float = 3.0) -> dict[str, Any]:
        """The server's ``/healthz`` answer (outside ``/api/v1``)."""
        try:
            response = self._http.get("/healthz", timeout=timeout)
        except httpx.HTTPError as e:
            raise AtollError(
                f"cannot reach Atoll at {self.url}: is `atoll up` running? ({e})", title="Connection failed"
            ) from e
        if response.status_code != 200:
            raise AtollError.from_response(response)
        data = response.json()
        return data if isinstance(data, dict) else {"status": str(data)}

    def _gateway_url(self) -> str | None:
        """Where the server says its gateway is (``/healthz``), if it says."""
        try:
            with httpx.Client(timeout=5) as http:
                r = http.get(self.url.rstrip("/") + "/healthz")
            return str(r.json().get("gatewayUrl") or "") or None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None

    def gateway_request(
        self,
        method: str,
        path: str,
        *,
        route: Mapping[str, str],
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        gateway: str | None = None,
        send_token: bool = True,
        timeout: float = 120.0,
    ) -> httpx.Response:
        """Call a deployed alias or node through the gateway, as model users do.

        ``route`` names the deployment (``{"x-node-alias": name}`` or ``{"x-node-id": id}``);
        the client's token goes along as ``Authorization: Bearer`` unless ``send_token`` is
        false or ``headers`` carry their own. Any HTTP status comes back as the response.
        """
        url = resolve_gateway_url(self.url, gateway or os.environ.get(GATEWAY_URL_ENV) or self._gateway_url())
        sent = {"User-Agent": "atoll-client", **route}
        if send_token and self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        for k, v in (headers or {}).items():
            for old in [h for h in sent if h.lower() == k.lower()]:
                del sent[old]
            sent[k] = v
        try:
            with httpx.Client(timeout=timeout) as http:
                return http.request(method, url + path, content=content, headers=sent)
        except httpx.TimeoutException as e:
            raise AtollError(
                f"the gateway at {url} did not answer in {timeout:.0f} s", title="Timeout"
            ) from e
        except httpx.HTTPError as e:
            raise AtollError(
                f"cannot reach the deploy gateway at {url} ({e})",
                title="Connection failed",
                hint=f"pass --gateway URL or set {GATEWAY_URL_ENV}",
            ) from e
