"""The HTTP gate in front of the MCP SDK at /mcp.

In order, before the SDK sees anything: Host (421) and Origin (403) against the configured public
origin, the body size (413), a token in the query string (400), the bearer token (401), and for a
`tools/call` of a write tool that the roles grant but the token's scopes do not cover, the
step-up challenge (403 insufficient_scope), then a request whose id is malformed (400). The
principal and the policy decision are attached to the ASGI scope, where the SDK hands them to our
handlers with the request."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qsl

from channels.db import database_sync_to_async
from django.conf import settings
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken as SdkAccessToken
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from audit.services import RequestMeta
from audit.writer import AuditUnavailable
from consent.principal_cache import principal_cache
from consent.tokens import Principal, Refusal, principal_for_token
from okta_mcp import metrics
from okta_mcp.mcp_server import SCOPE_ACCESS, SCOPE_META, SCOPE_PRINCIPAL, build_server
from okta_mcp.observability import request_finished, request_id_from, request_id_reset, request_id_set
from tools import services as tool_services
from tools.registry import REGISTRY
from tools.selectors import EffectiveAccess, tools_allowed_for

logger = logging.getLogger("okta_mcp.mcp")

Scope = dict[str, Any]


def resource_metadata_url() -> str:
    return settings.PUBLIC_URL + "/.well-known/oauth-protected-resource/mcp"


def _challenge(status: int, error: str, description: str, scopes: list[str]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    desc = description.replace('"', "'")
    value = (
        f'Bearer error="{error}", error_description="{desc}", '
        f'resource_metadata="{resource_metadata_url()}", scope="{" ".join(scopes)}"'
    )
    body = json.dumps({"error": error, "error_description": description}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"www-authenticate", value.encode()),
        (b"cache-control", b"no-store"),
    ]
    return status, headers, body


async def _send(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _plain(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await _send(send, status, [(b"content-type", b"application/json")], body)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by lower-case name, read once; of a repeated header, the first."""
    return {key.lower(): value for key, value in reversed(scope.get("headers", []))}


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode("latin-1")


@functools.lru_cache(maxsize=4096)
def _sdk_user(principal: Principal) -> AuthenticatedUser:
    """What the SDK's handlers see of the caller, built once per verified principal."""
    return AuthenticatedUser(
        SdkAccessToken(
            token="",  # the raw token never travels further than the gate
            client_id=principal.client_id,
            scopes=sorted(principal.scopes),
            expires_at=int(principal.token_expires.timestamp()),
            resource=settings.MCP_RESOURCE,
            subject=principal.okta_sub,
            claims={"iss": settings.ISSUER},
        )
    )


def _verify(raw_token: str, meta: RequestMeta) -> tuple[Principal | Refusal, EffectiveAccess | None]:
    """The database's answer: the token with its user and client, the consent, and the policy."""
    principal = principal_for_token(raw_token, meta)
    if isinstance(principal, Refusal):
        return principal, None
    return principal, tools_allowed_for(groups=principal.groups, group_ids=principal.group_ids, scopes=principal.scopes)


async def _authorize(raw_token: str, meta: RequestMeta) -> tuple[Principal | Refusal, EffectiveAccess | None]:
    """A token verified before is reused while the authorization epoch stands (consent.principal_cache);
    otherwise it is verified against the database and remembered."""
    token_key = hashlib.sha256(raw_token.encode()).hexdigest()
    epoch = await principal_cache.epoch()
    entry = principal_cache.get(token_key, epoch)
    if entry is not None:
        metrics.principal_cache_lookup("cache")
        return entry.principal, entry.access
    metrics.principal_cache_lookup("database" if epoch is not None or not principal_cache.enabled else "unavailable")
    # /mcp is outside Django's request cycle, so nothing else closes a connection the database
    # dropped (restart, failover): database_sync_to_async does.
    principal, access = await database_sync_to_async(_verify)(raw_token, meta)
    if isinstance(principal, Principal) and access is not None:
        principal_cache.put(token_key, epoch, principal, access)
    return principal, access


class McpEndpoint:
    def __init__(self) -> None:
        self.security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[settings.PUBLIC_HOST],
            allowed_origins=list(settings.MCP_ALLOWED_ORIGINS),
        )
        self.manager = StreamableHTTPSessionManager(
            app=build_server(),
            security_settings=self.security,
            max_request_body_size=settings.MCP_MAX_BODY_BYTES,
            stateless=settings.MCP_LEGACY_SESSIONS == "stateless",
        )
        self._ready: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None

    async def _ensure_started(self) -> None:
        # daphne sends no lifespan events: the session manager is started by the first request,
        # inside one long-lived task of this process.
        if self._ready is None:
            self._ready = asyncio.Event()

            async def run() -> None:
                async with self.manager.run():
                    assert self._ready is not None
                    self._ready.set()
                    await asyncio.Event().wait()

            self._runner = asyncio.create_task(run())
        await self._ready.wait()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = _headers(scope)
        request_id = request_id_from(_header(headers, b"x-request-id"))
        context = request_id_set(request_id)
        started = time.perf_counter()
        status = 0

        async def send_observed(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self._serve(scope, headers, receive, send_observed, request_id)
        finally:
            request_id_reset(context)
            request_finished(
                endpoint="mcp",
                method=scope.get("method", ""),
                path=scope.get("path", ""),
                status=status,
                seconds=time.perf_counter() - started,
                request_id=request_id,
            )

    async def _serve(self, scope: Scope, headers: dict[bytes, bytes], receive: Any, send: Any, request_id: str) -> None:
        host = _header(headers, b"host") or ""
        if host != settings.PUBLIC_HOST:
            await _plain(send, 421, "misdirected request: unknown Host")
            return
        origin = _header(headers, b"origin")
        if origin is not None and origin not in settings.MCP_ALLOWED_ORIGINS:
            await _plain(send, 403, "forbidden Origin")
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        if "access_token" in query:
            # RFC 6750 §2.3 / MCP: tokens only in the Authorization header.
            metrics.authorization_denied(stage="mcp", reason="token in query string")
            await _send(send, *_challenge(400, "invalid_request", "tokens are accepted only in the Authorization header", [settings.SCOPE_READ]))
            return

        body = b""
        if scope["method"] == "POST":
            declared = _header(headers, b"content-length")
            if declared and declared.isdigit() and int(declared) > settings.MCP_MAX_BODY_BYTES:
                await _plain(send, 413, "request body too large")
                return
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > settings.MCP_MAX_BODY_BYTES:
                    await _plain(send, 413, "request body too large")
                    return
                chunks.append(chunk)
                if not message.get("more_body"):
                    break
            body = b"".join(chunks)

        authorization = _header(headers, b"authorization") or ""
        scheme, _, raw_token = authorization.partition(" ")
        meta = RequestMeta(
            source_ip=(scope.get("client") or ("", 0))[0] or "",
            user_agent=(_header(headers, b"user-agent") or "")[:512],
            request_id=request_id,
        )
        if scheme.lower() != "bearer" or not raw_token.strip():
            metrics.authorization_denied(stage="mcp", reason="no bearer token")
            await _send(send, *_challenge(401, "invalid_token", "a bearer token is required", [settings.SCOPE_READ]))
            return
        message = _decoded(body)
        tool_name = _called_tool(message)
        principal, access = await _authorize(raw_token.strip(), meta)
        if isinstance(principal, Refusal) or access is None:
            refusal = principal if isinstance(principal, Refusal) else Refusal(401, "invalid_token", "rejected")
            metrics.authorization_denied(stage="mcp", reason=refusal.description)
            await _send(send, *_challenge(refusal.status, refusal.error, refusal.description, [settings.SCOPE_READ]))
            return
        if tool_name and access.needs_step_up(tool_name):
            needed = sorted(REGISTRY[tool_name].required_scopes | principal.scopes)
            try:
                await tool_services.step_up_required(principal=principal, tool=tool_name, scopes=needed, meta=meta)
            except AuditUnavailable:
                await _plain(send, 503, "the audit trail is unavailable; try again later")
                return
            metrics.authorization_denied(stage="mcp", reason="insufficient scope")
            await _send(send, *_challenge(403, "insufficient_scope", f"{tool_name} needs {' '.join(needed)}", needed))
            return

        if _has_malformed_id(message):
            error = {"code": -32600, "message": "Invalid Request: id must be a string or an integer"}
            body_out = json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode()
            await _send(send, 400, [(b"content-type", b"application/json")], body_out)
            return

        scope = dict(scope)
        scope["user"] = _sdk_user(principal)
        scope[SCOPE_PRINCIPAL] = principal
        scope[SCOPE_ACCESS] = access
        scope[SCOPE_META] = meta

        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self._ensure_started()
        await self.manager.handle_request(
            scope, replay if scope["method"] == "POST" else receive, _flush_stream_headers(send)
        )


def _flush_stream_headers(send: Any) -> Any:
    """daphne writes the status and headers only with the first body bytes. An event stream's first
    bytes may be a keep-alive ping 15 s away, and the SDK client holds its auth lock until the
    headers of its standing GET stream arrive: every other request of a 2025-11-25 session would
    wait that long. An empty body chunk right after the start puts the headers on the wire."""

    async def wrapped(message: dict[str, Any]) -> None:
        await send(message)
        if message["type"] == "http.response.start" and any(
            key.lower() == b"content-type" and value.startswith(b"text/event-stream")
            for key, value in message.get("headers", [])
        ):
            await send({"type": "http.response.body", "body": b"", "more_body": True})

    return wrapped


def _decoded(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None  # the SDK answers malformed JSON-RPC with a parse error


def _has_malformed_id(message: Any) -> bool:
    """A request whose id is not a string or an integer (MCP forbids null) is owed an error. The
    SDK's 2026-07-28 path answers one; its 2025-11-25 path reads such a request as a notification
    and answers 202, and the client waits for a response that never comes."""
    if not isinstance(message, dict) or "method" not in message or "id" not in message:
        return False
    request_id = message["id"]
    return isinstance(request_id, bool) or not isinstance(request_id, (str, int))


def _called_tool(message: Any) -> str | None:
    if isinstance(message, dict) and message.get("method") == "tools/call":
        params = message.get("params")
        if isinstance(params, dict) and isinstance(params.get("name"), str):
            return params["name"]
    return None
