"""Fixtures for the Okta tool catalogue tests: the server under daphne, the sandbox Okta API, and
the official MCP SDK client holding tokens from one real OAuth flow per user (a person at the
sandbox IdP approving our consent page), shared by every test in this folder.

Like tests/mcp, the shared data (client registration, demo policy, consents, tokens) is committed
outside pytest-django's per-test transactions: these tests are not marked `django_db`, they reach
the database through `db_access`, and the folder's teardown flushes it as a transactional test
would. A test elsewhere that flushes the database makes `world` authorize again. pytest-django
creates the test database only for a session that collects a `django_db` test: every file here has
one, so keep it in a `-k` selection."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2 as httpx
import mcp_types as types
import pytest
from django.conf import settings
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

from tests.clients import LOOPBACK_REDIRECT, Browser, MemoryTokenStorage, callback_params

MODERN = "2026-07-28"
LEGACY = "legacy"
CLIENT_ID = "okta-tools-client"
OTHER_CLIENT_ID = "okta-tools-other-client"

ALICE = "00u1alice00000000001"
BOB = "00u1bob0000000000001"
CAROL = "00u1carol00000000001"
JANE = "00u1jane000000000001"
EVERYONE = "00g1everyone000000001"
HELPDESK = "00g1helpdesk000000001"
IDENTITY_ADMINS = "00g1idadmins000000001"
CONTRACTORS = "00g1contract000000001"

# who -> (person, client, scopes)
CONNECTIONS = {
    "alice_write": ("alice", CLIENT_ID, "mcp.read mcp.write"),
    "alice": ("alice", CLIENT_ID, "mcp.read"),
    "alice_other_client": ("alice", OTHER_CLIENT_ID, "mcp.read mcp.write"),
    "bob": ("bob", CLIENT_ID, "mcp.read"),
    "carol": ("carol", CLIENT_ID, "mcp.read"),
}

Elicit = Callable[[Any, types.ElicitRequestParams], Awaitable[types.ElicitResult | types.ErrorData]]


class Sandbox:
    """The sandbox Okta API: its control API and, with the API token, Okta's own endpoints."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.auth = {"Authorization": f"SSWS {settings.OKTA_API_TOKEN}", "Accept": "application/json"}

    def reset(self, extra_users: int = 0) -> None:
        self.http.post("/__sandbox/reset", json={"extra_users": extra_users}).raise_for_status()

    def fault(self, **fault: Any) -> None:
        self.http.post("/__sandbox/faults", json=fault).raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        response = self.http.get("/__sandbox/requests")
        response.raise_for_status()
        return list(response.json()["requests"])

    def count(self) -> int:
        response = self.http.get("/__sandbox/requests")
        response.raise_for_status()
        return int(response.json()["count"])

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(path, params=params, headers=self.auth)
        response.raise_for_status()
        return response.json()

    def user(self, user_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v1/users/{user_id}"))

    def group_ids_of(self, user_id: str) -> set[str]:
        return {g["id"] for g in self.get(f"/api/v1/users/{user_id}/groups")}

    def sessions_cleared(self, user_id: str) -> list[dict[str, Any]]:
        return self.log_events(f'eventType eq "user.session.clear" and target.id eq "{user_id}"')

    def log_events(self, filter_: str) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/logs", filter=filter_, since="2000-01-01T00:00:00.000Z"))

    def close(self) -> None:
        self.http.close()


@asynccontextmanager
async def connect(
    server_url: str,
    storage: MemoryTokenStorage,
    *,
    browser: Browser | None = None,
    scope: str = "mcp.read",
    mode: str = MODERN,
    elicitation_callback: Elicit | None = None,
    headers: dict[str, str] | None = None,
    endpoint: str | None = None,
) -> AsyncIterator[Client]:
    """The official MCP SDK client with OAuth. With a `browser` it can authorize (the person logs in
    and approves); without one it must get by on the tokens already in `storage`."""
    pending: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:
        pending["url"] = url

    async def callback_handler() -> AuthorizationCodeResult:
        if browser is None:
            raise AssertionError("this connection was not expected to authorize again")
        final = await anyio.to_thread.run_sync(browser.authorize, pending.pop("url"))
        params = callback_params(final)
        assert "code" in params, params
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))

    provider = OAuthClientProvider(
        server_url=server_url + "/mcp",
        client_metadata=OAuthClientMetadata(
            redirect_uris=[LOOPBACK_REDIRECT],
            scope=scope,
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            client_name="pytest okta tools client",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    async with httpx.AsyncClient(auth=provider, timeout=60, headers=headers or {}) as http:
        transport = streamable_http_client((endpoint or server_url) + "/mcp", http_client=http)
        async with Client(transport, mode=mode, cache=None, elicitation_callback=elicitation_callback) as client:  # type: ignore[arg-type]
            yield client


@dataclass
class World:
    url: str
    okta_api_url: str
    storages: dict[str, MemoryTokenStorage] = field(default_factory=dict)
    browsers: dict[str, Browser] = field(default_factory=dict)

    def build(self) -> None:
        from audit.services import RequestMeta
        from consent.services import client_register
        from tools.services import policy_seed_demo

        Sandbox(self.okta_api_url).reset()
        for client_id, name in ((CLIENT_ID, "Okta tools test client"), (OTHER_CLIENT_ID, "Another client")):
            client_register(
                name=name, client_id=client_id, redirect_uris=[LOOPBACK_REDIRECT], confidential=False,
                actor=None, meta=RequestMeta.for_command("tests"),
            )  # fmt: skip
        policy_seed_demo()
        self.storages = {}
        for who, (person, client_id, scope) in CONNECTIONS.items():
            browser = self.browsers.setdefault(person, Browser(person))
            storage = MemoryTokenStorage(client_id)

            async def authorize(storage: MemoryTokenStorage = storage, browser: Browser = browser, scope: str = scope) -> None:
                async with connect(self.url, storage, browser=browser, scope=scope) as client:
                    await client.list_tools()
                    if "mcp.write" in scope:
                        # The SDK asks for the scopes of the server's challenge: a write tool's 403
                        # makes it step up (the person approves again). The id is invalid on purpose.
                        await client.call_tool("suspend_user", {"user_id": "step-up"})

            anyio.run(authorize)
            assert storage.tokens is not None and set(storage.tokens.scope.split()) == set(scope.split()), who
            self.storages[who] = storage

    def is_built(self) -> bool:
        from oauth2_provider.models import AccessToken, Application

        if not self.storages or not Application.objects.filter(client_id=CLIENT_ID).exists():
            return False
        return AccessToken.objects.filter(application__client_id=CLIENT_ID).exists()

    def client(self, who: str, **kwargs: Any) -> Any:
        """An MCP SDK connection for `who` using the tokens from the shared flow (never a new one)."""
        return connect(self.url, self.storages[who], scope=CONNECTIONS[who][2], **kwargs)

    def token(self, who: str) -> str:
        tokens = self.storages[who].tokens
        assert tokens is not None
        return tokens.access_token


@pytest.fixture(scope="package")
def _world(server_url: str, okta_api_url: str, django_db_blocker: Any) -> Iterator[World]:
    from django.core.management import call_command

    world = World(url=server_url, okta_api_url=okta_api_url)
    yield world
    for browser in world.browsers.values():
        browser.close()
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def world(_world: World, django_db_blocker: Any, okta_org: str) -> World:
    """The shared world (authorized on first use, again after a flush) and a freshly reset
    sandbox Okta org for each test."""
    with django_db_blocker.unblock():
        if not _world.is_built():
            _world.build()
    return _world


@pytest.fixture
def sandbox(okta_org: str) -> Iterator[Sandbox]:
    api = Sandbox(okta_org)
    api.reset(extra_users=0)  # a reset without a body keeps the previous test's synthetic users
    yield api
    api.reset(extra_users=0)  # and leaves none for the tests that follow
    api.close()


@pytest.fixture
def db_access(django_db_blocker: Any) -> Iterator[None]:
    """Database access for these tests: what they write is committed at once, so the server under
    test sees it; `_world`'s teardown flushes it all."""
    with django_db_blocker.unblock():
        yield


# --- results --------------------------------------------------------------------------------------
def ok(result: Any) -> dict[str, Any]:
    """The structured result of a successful tool call."""
    assert result.is_error is not True, text_of(result)
    assert isinstance(result.structured_content, dict), result
    # The text content is the same JSON, for clients that only read text.
    assert json.loads(text_of(result)) == result.structured_content
    return result.structured_content


def error(result: Any) -> str:
    """The message of a tool error; never a stack trace."""
    assert result.is_error is True, result
    message = text_of(result)
    for leak in ("Traceback", 'File "', "site-packages", "/work/", "AttributeError"):
        assert leak not in message, message
    return message


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return anyio.run(scenario)
