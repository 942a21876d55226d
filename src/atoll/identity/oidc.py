"""OpenID Connect sign-in, the relying party's side: discovery, the authorization request (PKCE,
nonce, state) and the checks an ID token must pass. Authlib does the protocol (the authorization
URL, the code exchange, the claims rules); this module decides what Atoll accepts.

What is refused, each with a message a person can act on:
- an ID token not signed by one of the provider's keys, or signed with an algorithm outside
  ALLOWED_ALGS ("none" and the HMAC ones included: a provider may advertise them);
- an issuer other than the provider's, an audience without Atoll's client id, an expired token;
- a nonce other than the one this sign-in sent, or one already used (a replayed token);
- an authorization response whose RFC 9207 ``iss`` names another issuer (a mix-up);
- a state that is unknown, used or expired;
- a provider that cannot be reached or answers nonsense (502, never a 500).

Accounts, groups and sessions made from the claims are in domain/sso_accounts.py; the providers'
settings in domain/sso_providers.py.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session

from atoll.domain.secrets import SecretBox
from atoll.errors import Invalid, ProviderUnavailable, Unauthenticated
from atoll.store.tables import IdentityProvider, SsoSignIn, as_utc, utcnow

# Asymmetric signatures only: an HMAC one would be keyed with the client secret, "none" is none.
ALLOWED_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
HTTP_TIMEOUT_S = 10.0
METADATA_TTL_S = 600.0  # discovery and keys are fetched again after this (a key rotation)
CLOCK_SKEW_S = 60  # how far the provider's clock may be from ours


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algs: tuple[str, ...]
    iss_parameter: bool  # RFC 9207: the provider puts `iss` in its authorization responses
    fetched_at: float
    keys: dict[str, Any] | None = None


class Discovery:
    """Each provider's discovery document and keys, fetched on first use and kept a while."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, Metadata] = {}

    def metadata(self, provider: IdentityProvider) -> Metadata:
        with self._lock:
            found = self._cache.get(provider.issuer)
        if found is not None and time.monotonic() - found.fetched_at < METADATA_TTL_S:
            return found
        url = provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = _get_json(provider, url)
        if doc.get("issuer") != provider.issuer:
            raise ProviderUnavailable(
                f"identity provider {provider.name!r}: its discovery document names issuer "
                f"{str(doc.get('issuer'))[:200]!r}, not {provider.issuer!r}; fix the provider's issuer URL"
            )
        missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not doc.get(k)]
        if missing:
            raise ProviderUnavailable(
                f"identity provider {provider.name!r}: its discovery document lacks {', '.join(missing)}"
            )
        offered = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
        algs = tuple(a for a in ALLOWED_ALGS if a in offered)
        if not algs:
            raise ProviderUnavailable(
                f"identity provider {provider.name!r} signs ID tokens with none of {', '.join(ALLOWED_ALGS)}"
            )
        meta = Metadata(
            issuer=doc["issuer"],
            authorization_endpoint=doc["authorization_endpoint"],
            token_endpoint=doc["token_endpoint"],
            jwks_uri=doc["jwks_uri"],
            algs=algs,
            iss_parameter=bool(doc.get("authorization_response_iss_parameter_supported")),
            fetched_at=time.monotonic(),
        )
        with self._lock:
            self._cache[provider.issuer] = meta
        return meta

    def keys(self, provider: IdentityProvider, meta: Metadata, *, refresh: bool = False) -> KeySet:
        if meta.keys is None or refresh:
            meta.keys = _get_json(provider, meta.jwks_uri)
        try:
            return KeySet.import_key_set(meta.keys)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as e:
            raise ProviderUnavailable(
                f"identity provider {provider.name!r}: its key set is not valid ({e})"
            ) from e

    def forget(self, issuer: str) -> None:
        with self._lock:
            self._cache.pop(issuer, None)


DISCOVERY = Discovery()


def _get_json(provider: IdentityProvider, url: str) -> dict[str, Any]:
    try:
        r = requests.get(url, timeout=HTTP_TIMEOUT_S, headers={"Accept": "application/json"})
    except requests.RequestException as e:
        raise ProviderUnavailable(
            f"identity provider {provider.name!r} cannot be reached at {url}: {type(e).__name__}; "
            "try again later or ask your administrator"
        ) from e
    if r.status_code != 200:
        raise ProviderUnavailable(f"identity provider {provider.name!r} answered {r.status_code} at {url}")
    try:
        body = r.json()
    except ValueError as e:
        raise ProviderUnavailable(
            f"identity provider {provider.name!r} sent something other than JSON at {url}"
        ) from e
    if not isinstance(body, dict):
        raise ProviderUnavailable(f"identity provider {provider.name!r} sent no JSON object at {url}")
    return body


def _session(provider: IdentityProvider, box: SecretBox, redirect_uri: str) -> OAuth2Session:
    secret = box.open(provider.client_secret) if provider.client_secret else None
    return OAuth2Session(
        client_id=provider.client_id,
        client_secret=secret,
        scope=provider.scopes,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
    )


# --- the authorization request ---------------------------------------------------------------


@dataclass
class CliReturn:
    """Where `atoll login --sso` waits: a loopback port, its state, the sha256 of its verifier."""

    port: int
    state: str
    challenge: str


def start(
    db: Session,
    box: SecretBox,
    provider: IdentityProvider,
    redirect_uri: str,
    next_url: str,
    ttl_s: int,
    browser: str,
    cli: CliReturn | None = None,
) -> str:
    """Record a sign-in in flight and return the provider's authorization URL to send the browser
    to. ``browser``: the value of a cookie of the browser that starts it (only it may finish it)."""
    meta = DISCOVERY.metadata(provider)
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    with _session(provider, box, redirect_uri) as oauth:
        url, _ = oauth.create_authorization_url(
            meta.authorization_endpoint, state=state, nonce=nonce, code_verifier=verifier
        )
    db.add(
        SsoSignIn(
            state_hash=_sha256(state),
            browser_hash=_sha256(browser),
            provider_id=provider.id,
            nonce=nonce,
            code_verifier=box.seal(verifier),
            redirect_uri=redirect_uri,
            next_url=next_url,
            cli_port=cli.port if cli else None,
            cli_state=cli.state if cli else "",
            cli_challenge=cli.challenge if cli else "",
            expires_at=utcnow() + timedelta(seconds=ttl_s),
        )
    )
    return str(url)


def take_sign_in(db: Session, state: str, browser: str) -> SsoSignIn:
    """The sign-in a callback's state belongs to, marked used: a second callback is refused, and
    so is one from another browser than the one that started it (a link someone sent you)."""
    row = db.scalar(select(SsoSignIn).where(SsoSignIn.state_hash == _sha256(state or "")).with_for_update())
    if row is None:
        raise Unauthenticated("this sign-in is unknown to Atoll: start it again from the sign-in page")
    if row.used_at is not None:
        raise Unauthenticated("this sign-in was already used (a replayed response): start a new one")
    if as_utc(row.expires_at) < utcnow():
        raise Unauthenticated("this sign-in took too long and expired: start it again")
    if not browser or not hmac.compare_digest(row.browser_hash, _sha256(browser)):
        raise Unauthenticated(
            "this sign-in was started in another browser: start it here, from Atoll's sign-in page"
        )
    row.used_at = utcnow()
    return row


@dataclass
class Identity:
    """What a valid ID token says about the user."""

    subject: str
    claims: dict[str, Any]


def finish(
    db: Session,
    box: SecretBox,
    provider: IdentityProvider,
    sign_in: SsoSignIn,
    code: str,
    iss: str | None,
) -> Identity:
    """Trade the authorization code for tokens and check the ID token; raise with a clear reason."""
    meta = DISCOVERY.metadata(provider)
    if iss is not None and iss != meta.issuer:
        raise Unauthenticated(
            f"the sign-in response names issuer {iss[:200]!r}, not {provider.name!r}'s: "
            "refused (RFC 9207 mix-up)"
        )
    if iss is None and meta.iss_parameter:
        raise Unauthenticated(
            f"the sign-in response lacks the issuer {provider.name!r} always sends: refused"
        )
    if not code or len(code) > 2048:
        raise Invalid("the provider sent no authorization code", field="code")
    verifier = box.open(sign_in.code_verifier)
    try:
        with _session(provider, box, sign_in.redirect_uri) as oauth:
            token = oauth.fetch_token(
                meta.token_endpoint, code=code, code_verifier=verifier, timeout=HTTP_TIMEOUT_S
            )
    except requests.RequestException as e:
        raise ProviderUnavailable(
            f"identity provider {provider.name!r} cannot be reached to finish the sign-in: {type(e).__name__}"
        ) from e
    except AuthlibBaseError as e:
        raise Unauthenticated(
            f"identity provider {provider.name!r} refused the sign-in: {e.error}"
            + (f" ({str(e.description)[:200]})" if getattr(e, "description", None) else "")
        ) from e
    raw = token.get("id_token")
    if not isinstance(raw, str) or not raw:
        raise Unauthenticated(
            f"identity provider {provider.name!r} sent no ID token (is 'openid' in the scopes?)"
        )
    claims = check_id_token(db, provider, meta, raw, sign_in.nonce, token.get("access_token"))
    return Identity(subject=str(claims["sub"]), claims=claims)


def _issuers(issuer: str) -> list[str]:
    # Google documents that its ID tokens may name their issuer without the scheme.
    return [issuer, "accounts.google.com"] if issuer == "https://accounts.google.com" else [issuer]


def check_id_token(
    db: Session,
    provider: IdentityProvider,
    meta: Metadata,
    raw: str,
    nonce: str,
    access_token: str | None,
) -> dict[str, Any]:
    """The ID token's claims, once its signature, issuer, audience, times and nonce hold."""
    registry = JWSRegistry(algorithms=list(meta.algs))
    try:
        try:
            decoded = jwt.decode(raw, DISCOVERY.keys(provider, meta), registry=registry)
        except InvalidKeyIdError:  # a key the provider added since: fetch the key set once more
            decoded = jwt.decode(raw, DISCOVERY.keys(provider, meta, refresh=True), registry=registry)
    except BadSignatureError as e:
        raise Unauthenticated(
            f"the ID token from {provider.name!r} has a bad signature: "
            "it was not signed by the provider's keys"
        ) from e
    except (JoseError, ValueError) as e:
        raise Unauthenticated(
            f"the ID token from {provider.name!r} could not be read or verified: {e}"
        ) from e
    params: dict[str, Any] = {"nonce": nonce, "client_id": provider.client_id}
    if access_token:
        params["access_token"] = access_token
    options: dict[str, Any] = {
        "iss": {"essential": True, "values": _issuers(meta.issuer)},
        "aud": {"essential": True, "value": provider.client_id},
        "sub": {"essential": True},
        "nonce": {"essential": True},
    }
    claims = CodeIDToken(decoded.claims, decoded.header, options, params)
    try:
        claims.validate(leeway=CLOCK_SKEW_S)
    except ExpiredTokenError as e:
        raise Unauthenticated(
            f"the ID token from {provider.name!r} has expired (check the clocks of Atoll and the provider)"
        ) from e
    except (InvalidClaimError, MissingClaimError) as e:
        name = getattr(e, "claim", "") or str(e)
        if name == "nonce":
            raise Unauthenticated(
                f"the ID token from {provider.name!r} carries a nonce this sign-in did not send: "
                "a replayed or forged token, refused"
            ) from e
        if name == "aud":
            raise Unauthenticated(
                f"the ID token from {provider.name!r} is for another client (wrong audience): "
                f"it does not name Atoll's client id {provider.client_id!r}"
            ) from e
        if name == "iss":
            raise Unauthenticated(f"the ID token was not issued by {provider.name!r} ({meta.issuer})") from e
        raise Unauthenticated(
            f"the ID token from {provider.name!r} was refused: claim {name!r} is not valid"
        ) from e
    except JoseError as e:
        raise Unauthenticated(f"the ID token from {provider.name!r} was refused: {e}") from e
    return dict(claims)
