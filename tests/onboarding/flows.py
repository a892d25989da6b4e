"""The official MCP SDK client connecting with a metadata-document client_id or through RFC 7591
registration (nothing pre-registered in its storage), with a person at a browser who logs in at the
sandbox IdP and approves our consent page, or meets the awaiting-approval page instead."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2 as httpx
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from oauth2_provider.models import AccessToken, Application, Grant

from consent.models import Consent, LoginSession
from tests.clients import LOOPBACK_REDIRECT
from tests.consent.flows import ConsentBrowser, Outcome


class AwaitingApproval(Exception):
    """The person was shown a page instead of being sent back to the client."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(f"{outcome.response.status_code} at {outcome.response.url}")
        self.outcome = outcome


class EmptyStorage:
    """A client that has never met this server: no tokens, no client information."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def _authorize(browser: ConsentBrowser, url: str) -> AuthorizationCodeResult:
    outcome = browser.open(url)
    if outcome.kind == "consent":
        outcome = browser.decide(outcome)
    if outcome.kind != "redirect":
        raise AwaitingApproval(outcome)
    params = outcome.params
    if "code" not in params:
        raise AssertionError(f"authorization failed: {params}")
    return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))


@asynccontextmanager
async def sdk_connection(
    server_url: str,
    browser: ConsentBrowser,
    storage: EmptyStorage,
    *,
    client_metadata_url: str | None = None,
    mode: str = "2026-07-28",
) -> AsyncIterator[Client]:
    pending: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:
        pending["url"] = url

    async def callback_handler() -> AuthorizationCodeResult:
        return await anyio.to_thread.run_sync(_authorize, browser, pending.pop("url"))

    provider = OAuthClientProvider(
        server_url=server_url + "/mcp",
        client_metadata=OAuthClientMetadata(
            redirect_uris=[LOOPBACK_REDIRECT],
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            client_name="Onboarding SDK client",
            application_type="native",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata_url=client_metadata_url,
    )
    async with httpx.AsyncClient(auth=provider, timeout=30) as http:
        transport = streamable_http_client(server_url + "/mcp", http_client=http)
        async with Client(transport, mode=mode, cache=None) as client:  # type: ignore[arg-type]
            yield client


def connect_and_call(server_url: str, browser: ConsentBrowser, storage: EmptyStorage, **kwargs: Any) -> dict[str, Any]:
    """Connect, list tools and call whoami; the refusal page surfaces as AwaitingApproval."""

    async def scenario() -> dict[str, Any]:
        async with sdk_connection(server_url, browser, storage, **kwargs) as client:
            listed = await client.list_tools()
            me = await client.call_tool("whoami", {})
            return {"tools": sorted(t.name for t in listed.tools), "whoami": me.structured_content}

    try:
        return anyio.run(scenario)
    except BaseException as exc:  # the SDK wraps the handler's exception in exception groups
        refusal = _find(exc, AwaitingApproval)
        if refusal is not None:
            raise refusal from None
        raise


def _find(exc: BaseException, kind: type[BaseException], seen: set[int] | None = None) -> Any:
    seen = seen if seen is not None else set()
    if id(exc) in seen:
        return None
    seen.add(id(exc))
    if isinstance(exc, kind):
        return exc
    for inner in [*(getattr(exc, "exceptions", ()) or ()), exc.__cause__, exc.__context__]:
        if inner is not None:
            found = _find(inner, kind, seen)
            if found is not None:
                return found
    return None


def issued_to(client_id: str) -> dict[str, int]:
    """Everything a client could have been given."""
    app = Application.objects.filter(client_id=client_id).first()
    if app is None:
        return {"codes": 0, "access": 0, "consents": 0, "sessions": 0}
    return {
        "codes": Grant.objects.filter(application=app).count(),
        "access": AccessToken.objects.filter(application=app, user__isnull=False).count(),
        "consents": Consent.objects.filter(application=app).count(),
        "sessions": LoginSession.objects.filter(application=app).count(),
    }


NOTHING = {"codes": 0, "access": 0, "consents": 0, "sessions": 0}
