"""How a project's JupyterLab knows a request came through Atoll's gateway.

This file runs *inside* the JupyterLab process, in the notebook environment (not Atoll's): it
may import only the standard library and jupyter_server. ``jupyter_command`` copies it into the
server's private config dir and its ``jupyter_server_config.py`` loads it as the server's
``identity_provider_class``.

Jupyter's own token is a secret it also *renders*: ``data-jupyter-api-token`` on every page it
builds from its templates (404 and other error pages included), ``page_config.token`` on /lab, the
``?token=`` links it logs. So Jupyter is given no token at all (``token = ""``: nothing to render)
and this provider checks the server's secret itself, in the one place only the gateway can put
it: ``Authorization: token <secret>`` (the gateway drops whatever Authorization and Cookie the
browser sent and adds its own). ``?token=`` in a URL, cookies and the login form authenticate
nothing; no login cookie is ever set. The secret comes in the environment variable
``ATOLL_NOTEBOOK_SECRET``, which is removed at once so that kernels and terminals started by the
server do not inherit it.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, User  # type: ignore[import-not-found]
from traitlets import default  # type: ignore[import-not-found]

SECRET_ENV = "ATOLL_NOTEBOOK_SECRET"  # noqa: S105 - the variable's name, not a secret


class AtollIdentityProvider(IdentityProvider):
    """Every request is the project's one user when it carries the gateway's secret, else nobody."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._secret = os.environ.pop(SECRET_ENV, "").encode()
        # Fail closed: without a secret (started by hand, or by a version of Atoll that did not set
        # it) no request authenticates.
        self._user = User(
            username="atoll", name="Atoll", display_name="Atoll", initials="A", avatar_url=None, color=None
        )

    @default("token")
    def _token_default(self) -> str:
        return ""  # not JUPYTER_TOKEN nor a generated one: whatever Jupyter knows, it may render

    def get_user(self, handler: Any) -> User | None:
        if not self._secret:
            return None
        scheme, _, value = handler.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "token" or not hmac.compare_digest(value.strip().encode(), self._secret):
            return None
        # As for Jupyter's own token auth: a request the gateway vouched for skips Jupyter's XSRF
        # and Origin checks (the gateway made them, against Atoll's own origin).
        handler._token_authenticated = True
        return self._user

    @property
    def login_available(self) -> bool:
        return False  # no /login page: there is nothing a browser could type in

    @property
    def logout_available(self) -> bool:
        return False
