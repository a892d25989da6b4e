"""Real clients for the end-to-end tests: a cookie-keeping HTTP client that plays the person at the
browser (submits the sandbox IdP's login form and our consent page), and the official MCP SDK
client doing the whole OAuth flow against the server under test."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import anyio
import httpx2 as httpx
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

LOOPBACK_REDIRECT = "http://127.0.0.1:33418/callback"
USERS = {
    "alice": ("alice@acme.example", "alice-pass"),
    "bob": ("bob@acme.example", "bob-pass"),
    "carol": ("carol@acme.example", "carol-pass"),
}


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(action=a.get("action", ""), method=a.get("method", "get").lower()))
        elif self.forms and tag == "input" and a.get("name"):
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif self.forms and tag == "button" and a.get("name"):
            self.forms[-1].buttons.append((a["name"], a.get("value", "")))


def parse_forms(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


class Browser:
    """A person at a browser without JavaScript: follows redirects, logs in at the IdP, and
    approves or denies our consent page. Keeps cookies, so a second authorization reuses the
    login session like a real browser."""

    def __init__(self, user: str = "alice", approve: bool = True, verify: ssl.SSLContext | bool = True) -> None:
        self.login, self.password = USERS[user]
        self.approve = approve
        self.http = httpx.Client(follow_redirects=False, timeout=30, verify=verify)
        self.pages: list[str] = []
        self.consent_pages: list[str] = []

    def close(self) -> None:
        self.http.close()

    def authorize(self, url: str, redirect_uri: str = LOOPBACK_REDIRECT) -> str:
        """Drive an authorization request to the redirect back to the client; return that URL."""
        response = self.http.get(url)
        for _ in range(30):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(redirect_uri):
                    return location
                response = self.http.get(location)
                continue
            if response.status_code != 200:
                raise AssertionError(f"unexpected {response.status_code} at {response.url}: {response.text[:300]}")
            self.pages.append(response.text)
            forms = parse_forms(response.text)
            login = next((f for f in forms if "/interaction/" in f.action), None)
            if login is not None:
                data = {**login.fields, "login": self.login, "password": self.password}
                response = self.http.post(urljoin(str(response.url), login.action), data=data)
                continue
            consent = next((f for f in forms if "csrfmiddlewaretoken" in f.fields), None)
            if consent is not None:
                self.consent_pages.append(response.text)
                data = dict(consent.fields)
                if self.approve:
                    data["allow"] = "Authorize"
                response = self.http.post(
                    urljoin(str(response.url), consent.action), data=data, headers={"Referer": str(response.url)}
                )
                continue
            raise AssertionError(f"no form to submit at {response.url}: {response.text[:300]}")
        raise AssertionError("too many redirects")


def callback_params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


class MemoryTokenStorage:
    """The client's token store, pre-loaded with its static registration (no DCR here)."""

    def __init__(self, client_id: str, redirect_uri: str = LOOPBACK_REDIRECT) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info = OAuthClientInformationFull(
            client_id=client_id,
            redirect_uris=[redirect_uri],
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        )

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@dataclass
class Connection:
    client: Client
    provider: OAuthClientProvider
    storage: MemoryTokenStorage
    authorizations: list[str]

    def force_refresh(self) -> None:
        """Make the SDK treat its access token as expired so the next request refreshes it."""
        self.provider.context.token_expiry_time = time.time() - 1


@asynccontextmanager
async def mcp_connection(
    server_url: str,
    browser: Browser,
    storage: MemoryTokenStorage,
    *,
    mode: str = "legacy",
    scope: str = "mcp.read",
    verify: ssl.SSLContext | bool = True,
) -> AsyncIterator[Connection]:
    """The official MCP SDK client, discovering everything from the server's 401 and doing the
    authorization-code flow with PKCE; `browser` plays the user when the SDK opens the login URL."""
    pending: dict[str, str] = {}
    authorizations: list[str] = []

    async def redirect_handler(url: str) -> None:
        pending["url"] = url
        authorizations.append(url)

    async def callback_handler() -> AuthorizationCodeResult:
        final = await anyio.to_thread.run_sync(browser.authorize, pending.pop("url"))
        params = callback_params(final)
        if "code" not in params:
            raise AssertionError(f"authorization failed: {params}")
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))

    provider = OAuthClientProvider(
        server_url=server_url + "/mcp",
        client_metadata=OAuthClientMetadata(
            redirect_uris=[LOOPBACK_REDIRECT],
            scope=scope,
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            client_name="pytest MCP client",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    async with httpx.AsyncClient(auth=provider, timeout=30, verify=verify) as http:
        transport = streamable_http_client(server_url + "/mcp", http_client=http)
        async with Client(transport, mode=mode, cache=None) as client:  # type: ignore[arg-type]
            yield Connection(client=client, provider=provider, storage=storage, authorizations=authorizations)


def tool_names(result: Any) -> list[str]:
    return sorted(t.name for t in result.tools)
