"""Pieces of the OAuth flow for tests that attack one step at a time: an authorization URL built by
hand, a browser that can stop at our consent page (and post it with or without its CSRF token),
raw calls to /token, /revoke and /mcp, and a snapshot of every row a refused request must leave
alone."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx2 as httpx

from tests.clients import LOOPBACK_REDIRECT, Browser, Form, callback_params, parse_forms

MCP_PROTOCOL = "2026-07-28"


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> "Pkce":
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode())


def authorize_url(
    server_url: str,
    *,
    client_id: str,
    pkce: Pkce | None,
    redirect_uri: str = LOOPBACK_REDIRECT,
    scope: str | None = "mcp.read",
    state: str | None = None,
    method: str | None = "S256",
    resource: str | list[str] | None = None,
    **extra: str,
) -> str:
    """An authorization request; parameters given as None are left out."""
    params: list[tuple[str, str]] = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("state", state if state is not None else secrets.token_urlsafe(12)),
    ]
    if scope is not None:
        params.append(("scope", scope))
    if pkce is not None:
        params.append(("code_challenge", pkce.challenge))
        if method is not None:
            params.append(("code_challenge_method", method))
    for value in [resource] if isinstance(resource, str) else resource or []:
        params.append(("resource", value))
    params.extend((k, v) for k, v in extra.items())
    return f"{server_url}/authorize?{urlencode(params)}"


@dataclass
class Outcome:
    """Where an authorization request ended: a redirect to the client, our consent page, or some
    other page (an error page, a refusal)."""

    kind: str  # "redirect" | "consent" | "page"
    response: httpx.Response
    location: str = ""
    form: Form | None = None
    visited: list[str] = field(default_factory=list)

    @property
    def params(self) -> dict[str, str]:
        return callback_params(self.location)

    @property
    def html(self) -> str:
        return self.response.text


class ConsentBrowser(Browser):
    """The Browser of tests/clients.py that stops where the test wants to look: at our consent page,
    at the redirect back to the client, or at any other page."""

    def open(self, url: str, redirect_uri: str = LOOPBACK_REDIRECT) -> Outcome:
        return self._follow(self.http.get(url), redirect_uri)

    def decide(
        self,
        outcome: Outcome,
        *,
        allow: bool = True,
        redirect_uri: str = LOOPBACK_REDIRECT,
        drop: tuple[str, ...] = (),
        override: dict[str, str] | None = None,
    ) -> Outcome:
        """Submit the consent form of `outcome`, optionally without some fields or with others changed."""
        assert outcome.kind == "consent" and outcome.form is not None, outcome.kind
        data = {k: v for k, v in outcome.form.fields.items() if k not in drop}
        if allow:
            data["allow"] = "Authorize"
        data.update(override or {})
        url = urljoin(str(outcome.response.url), outcome.form.action)
        response = self.http.post(url, data=data, headers={"Referer": str(outcome.response.url)})
        return self._follow(response, redirect_uri)

    def code(self, url: str, redirect_uri: str = LOOPBACK_REDIRECT) -> dict[str, str]:
        """Authorize (approving the page if shown) and return the callback's parameters."""
        outcome = self.open(url, redirect_uri)
        if outcome.kind == "consent":
            outcome = self.decide(outcome, redirect_uri=redirect_uri)
        assert outcome.kind == "redirect", f"{outcome.kind}: {outcome.response.status_code} {outcome.html[:300]}"
        return outcome.params

    def _follow(self, response: httpx.Response, redirect_uri: str) -> Outcome:
        visited: list[str] = []
        for _ in range(30):
            visited.append(str(response.url))
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(redirect_uri):
                    return Outcome("redirect", response, location=location, visited=visited)
                response = self.http.get(location)
                continue
            if response.status_code != 200:
                return Outcome("page", response, visited=visited)
            forms = parse_forms(response.text)
            login = next((f for f in forms if "/interaction/" in f.action), None)
            if login is not None:
                data = {**login.fields, "login": self.login, "password": self.password}
                response = self.http.post(urljoin(str(response.url), login.action), data=data)
                continue
            consent = next((f for f in forms if "csrfmiddlewaretoken" in f.fields), None)
            if consent is not None:
                self.consent_pages.append(response.text)
                return Outcome("consent", response, form=consent, visited=visited)
            return Outcome("page", response, visited=visited)
        raise AssertionError("too many redirects")


_http: httpx.Client | None = None


def http() -> httpx.Client:
    """One client for the direct calls to the server (a client per call costs a TLS context each)."""
    global _http
    if _http is None:
        _http = httpx.Client(timeout=30)
    return _http


def post_token(server_url: str, data: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return http().post(f"{server_url}/token", data={k: v for k, v in data.items() if v is not None}, **kwargs)


def redeem(
    server_url: str,
    code: str,
    pkce: Pkce,
    *,
    client_id: str,
    redirect_uri: str = LOOPBACK_REDIRECT,
    resource: str | None = None,
    verifier: str | None = None,
    auth: tuple[str, str] | None = None,
) -> httpx.Response:
    """Redeem a code; `auth` is client_secret_basic for a confidential client."""
    return post_token(
        server_url,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": verifier if verifier is not None else pkce.verifier,
            "resource": resource,
        },
        **({"auth": auth} if auth else {}),
    )


def refresh(server_url: str, refresh_token: str, *, client_id: str, resource: str | None = None) -> httpx.Response:
    return post_token(
        server_url,
        {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id, "resource": resource},
    )


def revoke(server_url: str, token: str, *, client_id: str, hint: str | None = None) -> httpx.Response:
    data = {"token": token, "client_id": client_id}
    if hint:
        data["token_type_hint"] = hint
    return http().post(f"{server_url}/revoke", data=data)


def mcp_list_tools(server_url: str, access_token: str) -> httpx.Response:
    """One stateless (2026-07-28) `tools/list` at /mcp with the token in the Authorization header."""
    return http().post(
        f"{server_url}/mcp",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/list",
            "params": {
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": MCP_PROTOCOL,
                    "io.modelcontextprotocol/clientCapabilities": {},
                }
            },
        },
        headers={
            "Authorization": f"Bearer {access_token}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": MCP_PROTOCOL,
            "Mcp-Method": "tools/list",
        },
    )


def checksum(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def state_of_grants() -> dict[str, list[tuple[Any, ...]]]:
    """Every row a refused request must neither create nor change: tokens, codes, consents and login
    sessions, with the fields that revocation or reuse would touch."""
    from oauth2_provider.models import AccessToken, Grant, RefreshToken

    from consent.models import Consent, LoginSession

    return {
        "access_tokens": list(
            AccessToken.objects.order_by("pk").values_list("pk", "token_checksum", "expires", "resource")
        ),
        "refresh_tokens": list(
            RefreshToken.objects.order_by("pk").values_list("pk", "token_checksum", "revoked", "access_token_id")
        ),
        "grants": list(Grant.objects.order_by("pk").values_list("pk", "code", "expires")),
        "consents": list(Consent.objects.order_by("pk").values_list("pk", "revoked_at", "expires_at", "scopes")),
        "login_sessions": list(LoginSession.objects.order_by("pk").values_list("pk", "revoked_at", "ends_at")),
    }


def counts() -> dict[str, int]:
    return {name: len(rows) for name, rows in state_of_grants().items()}


def idp_login_callback(
    browser: Browser, server_url: str, *, next_path: str = "/", tamper: Any = None
) -> tuple[str, str]:
    """Start our login (/oidc/authenticate/), sign in at the sandbox IdP, and stop at the IdP's
    redirect back to our callback. Returns (the IdP authorization URL we were sent to, the
    callback URL, not yet followed). `tamper(url) -> url` may change the IdP URL first."""
    response = browser.http.get(f"{server_url}/oidc/authenticate/", params={"next": next_path})
    assert response.is_redirect, response.status_code
    idp_url = urljoin(str(response.url), response.headers["location"])
    response = browser.http.get(tamper(idp_url) if tamper else idp_url)
    for _ in range(20):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith(f"{server_url}/oidc/callback/"):
                return idp_url, location
            response = browser.http.get(location)
            continue
        login = next((f for f in parse_forms(response.text) if "/interaction/" in f.action), None)
        assert response.status_code == 200 and login is not None, f"{response.status_code}: {response.text[:300]}"
        data = {**login.fields, "login": browser.login, "password": browser.password}
        response = browser.http.post(urljoin(str(response.url), login.action), data=data)
    raise AssertionError("the IdP never redirected back")
