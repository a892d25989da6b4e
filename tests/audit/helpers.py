"""Helpers shared by the audit tests and the consent command/lifetime tests: data builders for the
database-level tests, and real clients for the end-to-end ones (the MCP SDK client with the OAuth
flow, the SDK client holding a bearer token, raw HTTP requests to /mcp and /token)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio
import httpx2 as httpx
from django.conf import settings
from django.core.management.color import no_style
from django.db import connection
from django.utils import timezone
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthToken
from oauth2_provider.models import AccessToken, Application, RefreshToken, set_token_value

from audit.models import AuditChainHead, AuditEvent, EventType
from audit.services import GENESIS_HASH, RequestMeta, event_content, event_hash
from consent.models import Consent, LoginSession
from consent.services import consent_grant
from tests.clients import LOOPBACK_REDIRECT, Browser, MemoryTokenStorage, callback_params, mcp_connection

MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"


# --- database builders ---------------------------------------------------------------------------


def make_user(login: str) -> Any:
    from accounts.models import User

    return User.objects.create(
        username=login, okta_login=login, okta_sub="00u" + hashlib.sha256(login.encode()).hexdigest()[:17]
    )


def make_client(client_id: str, name: str = "") -> Application:
    return Application.objects.create(
        name=name or f"client {client_id}",
        client_id=client_id,
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=LOOPBACK_REDIRECT,
        skip_authorization=False,
        algorithm="",
    )


@dataclass
class Granted:
    consent: Consent
    access: AccessToken
    refresh: RefreshToken
    session: LoginSession
    raw_access: str
    raw_refresh: str


def grant_with_tokens(user: Any, application: Application, *, scopes: str = "mcp.read") -> Granted:
    """A consent through the consent service, and the tokens and login session that redeeming a
    code would have created (as DOT stores them: hashed)."""
    consent = consent_grant(
        user=user,
        application=application,
        scopes=frozenset(scopes.split()),
        tools=["whoami"],
        redirect_uri=LOOPBACK_REDIRECT,
        meta=RequestMeta(user_agent="test"),
    )
    now = timezone.now()
    raw_access, raw_refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    access = AccessToken(
        user=user,
        application=application,
        expires=now + timedelta(hours=1),
        scope=scopes,
        resource=[settings.MCP_RESOURCE],
    )
    set_token_value(access, raw_access)
    access.save()
    refresh = RefreshToken(user=user, application=application, access_token=access, resource=[settings.MCP_RESOURCE])
    set_token_value(refresh, raw_refresh)
    refresh.save()
    session = LoginSession.objects.create(
        token_family=refresh.token_family or uuid.uuid4(),
        user=user,
        application=application,
        consent=consent,
        code_hash=secrets.token_hex(32),
        started_at=now,
        ends_at=now + timedelta(hours=2),
    )
    return Granted(consent, access, refresh, session, raw_access, raw_refresh)


def seed_chain(count: int, *, start: datetime | None = None, step: timedelta = timedelta(seconds=1)) -> list[int]:
    """Append `count` correctly chained rows quickly (bulk insert with ids chosen up front, hashes
    computed exactly as audit_record computes them) and move the chain head. Returns their ids."""
    head, _ = AuditChainHead.objects.get_or_create(pk=1, defaults={"last_hash": GENESIS_HASH})
    last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    prev = head.last_hash
    created = start or timezone.now()
    batch: list[AuditEvent] = []
    for i in range(count):
        event = AuditEvent(
            id=last + 1 + i,
            created=created + step * i,
            event_type=EventType.TOOL_CALL,
            actor_login="seed@acme.example",
            client_id="seed-client",
            request_id=uuid.uuid4().hex,
            target="whoami",
            decision="allowed",
            reason="granted by role",
            details={"arguments": {"n": i}},
            prev_hash=prev,
            hash="",
        )
        event.hash = event_hash(prev, event_content(event))
        prev = event.hash
        batch.append(event)
    AuditEvent.objects.bulk_create(batch, batch_size=1000)
    # Ids were chosen here: move PostgreSQL's sequence past them (SQLite follows explicit ids itself).
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), [AuditEvent]):
            cursor.execute(statement)
    # Explicit ids leave PostgreSQL's id sequence behind; move it past them (a no-op on SQLite).
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [AuditEvent]):
            cursor.execute(sql)
    head.last_hash, head.last_event_id = prev, last + count
    head.save()
    return [e.pk for e in batch]


@dataclass(frozen=True)
class Snapshot:
    consents: tuple[Any, ...]
    access_tokens: tuple[Any, ...]
    refresh_tokens: tuple[Any, ...]
    sessions: tuple[Any, ...]
    audit_rows: int


def snapshot() -> Snapshot:
    """The state that a refused command must leave unchanged."""
    return Snapshot(
        tuple(Consent.objects.order_by("id").values_list("id", "revoked_at", "revoked_reason", "expiry_recorded")),
        tuple(AccessToken.objects.order_by("id").values_list("id", "expires")),
        tuple(RefreshToken.objects.order_by("id").values_list("id", "revoked")),
        tuple(LoginSession.objects.order_by("id").values_list("id", "revoked_at", "ends_at")),
        AuditEvent.objects.count(),
    )


# --- end-to-end clients --------------------------------------------------------------------------


@dataclass
class Flow:
    """What one completed OAuth flow through the SDK client left behind."""

    tokens: OAuthToken
    browser: Browser
    storage: MemoryTokenStorage
    raw_secrets: set[str] = field(default_factory=set)


def oauth_flow(server_url: str, client_id: str, *, user: str = "alice", mode: str = "legacy") -> Flow:
    """The SDK client discovers the AS from the 401, the person logs in and consents, the SDK
    redeems the code; one whoami call proves the token works."""
    browser = Browser(user)
    storage = MemoryTokenStorage(client_id)
    codes: list[str] = []
    authorize = browser.authorize

    def recording_authorize(url: str, redirect_uri: str = LOOPBACK_REDIRECT) -> str:
        final = authorize(url, redirect_uri)
        code = callback_params(final).get("code")
        if code:
            codes.append(code)
        return final

    browser.authorize = recording_authorize  # type: ignore[method-assign]

    async def run() -> None:
        async with mcp_connection(server_url, browser, storage, mode=mode) as conn:
            result = await conn.client.call_tool("whoami", {})
            assert not result.is_error, result

    anyio.run(run)
    assert storage.tokens is not None
    secrets_seen = {storage.tokens.access_token, *codes}
    if storage.tokens.refresh_token:
        secrets_seen.add(storage.tokens.refresh_token)
    return Flow(storage.tokens, browser, storage, secrets_seen)


@asynccontextmanager
async def bearer_client(server_url: str, access_token: str, *, mode: str) -> AsyncIterator[Client]:
    """The official SDK client holding an access token (no OAuth provider: requests are not
    serialized behind the provider's lock, so calls on one connection really run concurrently)."""
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {access_token}"}, timeout=60, limits=limits
    ) as http:
        transport = streamable_http_client(server_url + "/mcp", http_client=http)
        async with Client(transport, mode=mode, cache=None) as client:  # type: ignore[arg-type]
            yield client


def mcp_call(
    server_url: str, access_token: str, tool: str = "whoami", arguments: dict[str, Any] | None = None
) -> httpx.Response:
    """One stateless (2026-07-28) tools/call over raw HTTP, as a client sends it."""
    headers = {
        "Accept": ACCEPT,
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
        "Authorization": f"Bearer {access_token}",
    }
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": tool,
            "arguments": arguments or {},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    return httpx.post(server_url + "/mcp", json=body, headers=headers, timeout=30)


def refresh(server_url: str, client_id: str, refresh_token: str) -> httpx.Response:
    return httpx.post(
        server_url + "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client_id,
            "resource": server_url + "/mcp",
        },
        timeout=30,
    )


def assert_cut_off(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge and "resource_metadata=" in challenge


@dataclass
class LiveConnection:
    client: Client
    storage: MemoryTokenStorage
    browser: Browser
    authorizations: list[str]
    mcp_statuses: list[int]


@asynccontextmanager
async def live_connection(
    server_url: str, client_id: str, *, user: str = "alice", mode: str = "legacy"
) -> AsyncIterator[LiveConnection]:
    """tests.clients.mcp_connection plus a record of the status of every /mcp response, so a test
    can see the 401 that the SDK client answers by authorizing again."""
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

    browser = Browser(user)
    storage = MemoryTokenStorage(client_id)
    pending: dict[str, str] = {}
    authorizations: list[str] = []
    statuses: list[int] = []

    async def redirect_handler(url: str) -> None:
        pending["url"] = url
        authorizations.append(url)

    async def callback_handler() -> AuthorizationCodeResult:
        params = callback_params(await anyio.to_thread.run_sync(browser.authorize, pending.pop("url")))
        assert "code" in params, params
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))

    async def record(response: httpx.Response) -> None:
        if response.request.url.path == "/mcp":
            statuses.append(response.status_code)

    provider = OAuthClientProvider(
        server_url=server_url + "/mcp",
        client_metadata=OAuthClientMetadata(
            redirect_uris=[LOOPBACK_REDIRECT],
            scope="mcp.read",
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            client_name="pytest MCP client",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    async with httpx.AsyncClient(auth=provider, timeout=30, event_hooks={"response": [record]}) as http:
        transport = streamable_http_client(server_url + "/mcp", http_client=http)
        async with Client(transport, mode=mode, cache=None) as client:  # type: ignore[arg-type]
            yield LiveConnection(client, storage, browser, authorizations, statuses)
    browser.close()
