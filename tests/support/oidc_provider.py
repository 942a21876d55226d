"""A real OpenID provider on loopback for the sign-in tests: canaille (built on Authlib), run by
pytest-iam's server in a thread of the test process, on a free port.

Its users, groups and clients are canaille's own models; the tests change them as an admin of a
company's provider would (a user leaves a group), and reconfigure the provider to misbehave as a
broken or hostile one would (another audience, a new signing key under the old key id, expired
ID tokens) — nothing here forges a token by hand.
"""

from __future__ import annotations

import contextlib
import datetime
import secrets
import threading
from collections.abc import Iterator
from typing import Any

from tests.support.postgres import free_port


class Provider:
    def __init__(self) -> None:
        # Imported here: Flask and canaille load only in the tests that use a provider.
        from canaille import create_app
        from canaille.backends import Backend
        from joserfc.jwk import RSAKey
        from pytest_iam import Server

        self.port = free_port()
        self.key = RSAKey.generate_key(2048)
        self.key.ensure_kid()
        config: dict[str, Any] = {
            "TESTING": True,
            "SECRET_KEY": secrets.token_hex(16),
            "WTF_CSRF_ENABLED": False,
            "PREFERRED_URL_SCHEME": "http",
            "SERVER_NAME": f"localhost:{self.port}",
            "CANAILLE": {
                "DATABASE": "memory",
                "JAVASCRIPT": False,
                "ACL": {"DEFAULT": {"PERMISSIONS": ["use_oidc"]}},
                "LOGGING": {"version": 1, "disable_existing_loggers": False},
            },
            "CANAILLE_OIDC": {"ACTIVE_JWKS": [self.key.as_dict(private=True)]},
        }
        app = create_app(config=config, env_file=None, env_prefix="ATOLL_TEST_IAM_")
        self.server = Server(app, self.port, Backend.instance)
        self.models = self.server.models
        self.backend = self.server.backend
        self._thread = threading.Thread(
            target=self.server.httpd.serve_forever, name="oidc-provider", daemon=True
        )
        self._thread.start()
        self._ctx = app.app_context()
        self._ctx.push()

    @property
    def issuer(self) -> str:
        return f"http://localhost:{self.port}"

    def stop(self) -> None:
        self.server.httpd.shutdown()
        self._thread.join(timeout=10)
        self.server.httpd.server_close()
        self._ctx.pop()

    # --- what an admin of the provider does ---------------------------------------------------

    def add_client(self, redirect_uris: list[str], **kw: Any) -> Any:
        c = self.models.Client(
            client_id=f"atoll-{secrets.token_hex(4)}",
            client_secret=secrets.token_urlsafe(24),
            client_name="Atoll",
            client_id_issued_at=datetime.datetime.now(datetime.UTC),
            redirect_uris=redirect_uris,
            grant_types=["authorization_code"],
            response_types=["code"],
            scope=["openid", "profile", "email", "groups"],
            token_endpoint_auth_method="client_secret_basic",
            id_token_signed_response_alg="RS256",
            **kw,
        )
        self.backend.save(c)
        c.audience = [c]
        self.backend.save(c)
        return c

    def add_user(self, username: str, password: str, name: str, email: str) -> Any:
        given, _, family = name.partition(" ")
        u = self.models.User(
            user_name=username,
            given_name=given,
            family_name=family or given,
            formatted_name=name,
            emails=[email],
            password=password,
        )
        self.backend.save(u)
        return u

    def add_group(self, name: str, members: list[Any]) -> Any:
        g = self.models.Group(display_name=name, members=members)
        self.backend.save(g)
        return g

    def set_members(self, group: Any, members: list[Any]) -> None:
        group.members = members
        self.backend.save(group)
        for u in self.backend.query(self.models.User):
            self.backend.reload(u)

    def consent(self, user: Any, client: Any) -> None:
        """The user agreed once to share their profile with the client (no consent page)."""
        self.server.consent(user, client)

    # --- a provider misbehaving -------------------------------------------------------------

    @contextlib.contextmanager
    def audience(self, client: Any, other: Any) -> Iterator[None]:
        """ID tokens for ``client`` name only ``other`` as their audience."""
        client.audience = [other]
        self.backend.save(client)
        try:
            yield
        finally:
            client.audience = [client]
            self.backend.save(client)

    @contextlib.contextmanager
    def signing_with_a_new_key(self) -> Iterator[None]:
        """The provider signs with a new key under the old key's id: a relying party that still
        holds the old key sees a bad signature."""
        from joserfc.jwk import RSAKey

        oidc = self.server.app.config["CANAILLE_OIDC"]
        impostor = RSAKey.generate_key(2048, parameters={"kid": self.key.kid})
        oidc["ACTIVE_JWKS"] = [impostor.as_dict(private=True)]
        try:
            yield
        finally:
            oidc["ACTIVE_JWKS"] = [self.key.as_dict(private=True)]

    @contextlib.contextmanager
    def expired_id_tokens(self) -> Iterator[None]:
        """ID tokens that expired an hour before they are issued."""
        from canaille.oidc.provider import OpenIDCode

        before = OpenIDCode.DEFAULT_EXPIRES_IN
        OpenIDCode.DEFAULT_EXPIRES_IN = -3600
        try:
            yield
        finally:
            OpenIDCode.DEFAULT_EXPIRES_IN = before


# --- Atoll configured for the provider ----------------------------------------------------------

SIGN_IN_TIMEOUT_S = 30


def sso_env(provider: Provider, client: Any, *, organization: str = "acme", **extra: Any) -> dict[str, str]:
    """ATOLL_SSO_PROVIDERS naming the provider as "canaille", as an admin would set it."""
    import json

    entry = {
        "name": "canaille",
        "displayName": "Canaille",
        "issuer": provider.issuer,
        "clientId": client.client_id,
        "clientSecret": client.client_secret,
        "organization": organization,
        "scopes": "openid profile email groups",
        **extra,
    }
    return {"ATOLL_SSO_PROVIDERS": json.dumps([entry])}


def register_redirect(provider: Provider, client: Any, atoll_url: str, name: str = "canaille") -> None:
    client.redirect_uris = [f"{atoll_url}/login/sso/{name}/callback"]
    provider.backend.save(client)


def walk(
    http: Any, provider: Provider, url: str, username: str, password: str, *, present: bool = True
) -> Any:
    """Follow a sign-in from ``url`` through the provider's own pages (its login, password and
    consent forms, as a person fills them) until the provider sends the browser back; that
    response (Atoll's callback, or the CLI's loopback) is returned, not followed further.
    ``present=False``: the URL the provider sends the browser back to, not requested."""
    import html
    import re

    r = http.get(url, follow_redirects=False)
    for _ in range(20):
        if r.is_redirect:
            target = r.headers["location"]
            if target.startswith("/"):
                target = str(r.url.join(target))
            if not target.startswith(provider.issuer) and not present:
                return target
            r = http.get(target, follow_redirects=False)
            if not target.startswith(provider.issuer):
                return r
            continue
        page = r.text
        if r.status_code != 200 or str(r.url).startswith(provider.issuer) is False:
            return r
        action = re.search(r'<form[^>]*action="([^"]*)"', page)
        post_to = html.unescape(action.group(1)) if action and action.group(1) else str(r.url)
        if 'name="login"' in page:
            data = {"login": username}
        elif 'name="password"' in page:
            data = {"password": password}
        elif 'value="accept"' in page:
            data = {"answer": "accept"}
        else:
            raise AssertionError(f"an unexpected page at the provider: {r.url}\n{page[:2000]}")
        r = http.post(post_to, data=data, follow_redirects=False)
    raise AssertionError("the sign-in went round in circles")


def confirm_cli(http: Any, page: Any, answer: str = "allow") -> Any:
    """Answer Atoll's "Sign in the Atoll CLI?" page as the person would; Atoll's response (a
    redirect to the CLI's loopback port) is returned, not followed."""
    import re

    assert 'action="/login/sso/cli"' in page.text, page.text[:1000]
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    return http.post(
        str(page.url.join("/login/sso/cli")), data={**fields, "answer": answer}, follow_redirects=False
    )
