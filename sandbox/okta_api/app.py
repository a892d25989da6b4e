"""Assemble the ASGI app: Okta's edge behaviour (auth, headers, rate limits, injected faults)
around the API routes, plus the control API."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .control import CONTROL_ROUTES, Fault, Harness
from .errors import OktaError, error_body, invalid_token, new_request_id, rate_limited
from .routes import API_ROUTES
from .seed import SeedOptions, build_state
from .state import State

DEFAULT_API_TOKEN = "sandbox-api-token"
API_PREFIXES = ("/api/", "/oauth2/")

BARE_503_BODY = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class SandboxConfig:
    api_token: str = DEFAULT_API_TOKEN
    seed: SeedOptions = field(default_factory=SeedOptions)
    public_url: str | None = None  # base URL for links when clients reach us through a proxy
    rate_limit: int = 0  # requests per minute per endpoint bucket; 0 = report headers, never refuse


class Sandbox:
    """Everything the running app holds: configuration, the org's state, the test harness."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.extra_users = config.seed.extra_users
        self.state: State = build_state(config.seed)
        self.harness = Harness()

    def reset(self, extra_users: int | None = None) -> None:
        """Back to a freshly started server (state, faults, latency, request log, rate windows)."""
        if extra_users is not None:
            self.extra_users = extra_users
        self.state = build_state(dataclasses.replace(self.config.seed, extra_users=self.extra_users))
        self.harness = Harness()


def _rate_limit_bucket(method: str, path: str) -> str:
    # Okta counts per endpoint family, e.g. GET /api/v1/users vs GET /api/v1/users/{id}.
    parts = path.split("/")
    return f"{method} {'/'.join(parts[:4])}{'/*' if len(parts) > 4 else ''}"


def _auth_scheme(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            value = value.strip()
            if value[:4].upper() == b"SSWS":
                return "ssws"
            return "bearer" if value[:7].lower() == b"bearer " else "other"
    return ""


class OktaEdge:
    """ASGI middleware for API paths: request log, latency, faults, SSWS auth, rate limits and
    the headers Okta puts on every response (X-Okta-Request-Id, X-Rate-Limit-*, Date)."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIXES):
            await self.app(scope, receive, send)
            return
        sandbox = self.sandbox
        harness = sandbox.harness
        arrived = time.monotonic()
        method, path = scope["method"], scope["path"]
        authorized = self._authorized(scope)
        client = scope.get("client")
        harness.record(
            method, path, scope.get("query_string", b"").decode("latin-1"), _auth_scheme(scope), authorized,
            client[1] if client else None,
        )

        send = _timed(send, harness, arrived)
        latency = harness.latency_seconds
        if latency and method not in ("GET", "HEAD"):
            # A change waits out the latency before it is applied; only reads, which change
            # nothing, are prepared during it.
            await asyncio.sleep(latency)
            latency = 0.0
        fault = harness.take_fault(method, path)
        delay = fault.delay_seconds if fault is not None else 0.0
        if latency:
            # A read is prepared while the latency runs (a 200-user page costs the stand-in
            # milliseconds that Okta's latency would include): its answer starts `latency` (plus a
            # fault's delay) after the request arrived, not that plus the stand-in's own time.
            send = _deferred(send, time.monotonic() + latency + delay)
        if delay:
            await asyncio.sleep(delay)
        if fault is not None and fault.status is not None:
            await self._send_fault(fault, send)
            return

        request_id = new_request_id()
        scope["okta_request_id"] = request_id
        limit, remaining, reset, exceeded = harness.consume_rate_limit(
            _rate_limit_bucket(method, path), sandbox.config.rate_limit, sandbox.config.rate_limit > 0
        )
        edge_headers = {
            "X-Okta-Request-Id": request_id,
            "X-Rate-Limit-Limit": str(limit),
            "X-Rate-Limit-Remaining": str(remaining),
            "X-Rate-Limit-Reset": str(reset),
        }
        error: OktaError | None = None
        if not authorized:
            error = invalid_token()
        elif exceeded:
            error = rate_limited()
        if error is not None:
            await _send_json(send, error.status, error.body(), {**edge_headers, "Date": _http_date()})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in edge_headers.items():
                    headers[name] = value
                headers["Date"] = _http_date()
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _authorized(self, scope: Scope) -> bool:
        token = self.sandbox.config.api_token.encode()
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                value = value.strip()
                if not value.startswith(b"SSWS"):
                    return False
                # The okta SDK 3.4.x sends "SSWS<token>" (no space) from its generated API client,
                # and Okta accepts it; the documented form is "SSWS <token>". Accept both.
                return secrets.compare_digest(value[4:].strip(), token)
        return False

    @staticmethod
    async def _send_fault(fault: Fault, send: Send) -> None:
        if fault.bare:
            # What a load balancer answers when Okta's edge is down: no Okta headers, no Date, HTML.
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"text/html"),
                                    (b"content-length", str(len(BARE_503_BODY)).encode())]})
            await send({"type": "http.response.body", "body": BARE_503_BODY})
            return
        epoch = time.time()
        headers = {"X-Okta-Request-Id": new_request_id(), "Date": _http_date()}
        if fault.status == 429:
            body = rate_limited().body()
            headers.update({
                "X-Rate-Limit-Limit": "600",
                "X-Rate-Limit-Remaining": "0",
                "X-Rate-Limit-Reset": str(int(epoch + fault.retry_after_seconds)),
            })
        else:
            summary = "Internal Server Error" if fault.status == 500 else "Service Unavailable"
            body = error_body("E0000009", summary)
            headers.update({"X-Rate-Limit-Limit": "600", "X-Rate-Limit-Remaining": "599",
                            "X-Rate-Limit-Reset": str(int(epoch + 60))})
        await _send_json(send, fault.status or 500, body, headers)


def _timed(send: Send, harness: Harness, arrived: float) -> Send:
    """`send` that adds the time from `arrived` to the response's start to harness.answer_seconds
    (what a benchmark compares its wall time with: the latency served, timer slack included)."""

    async def timed_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            harness.answer_seconds += time.monotonic() - arrived
        await send(message)

    return timed_send


def _deferred(send: Send, not_before: float) -> Send:
    """`send` that starts the response no earlier than `not_before` (time.monotonic())."""

    async def deferred_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            wait = not_before - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        await send(message)

    return deferred_send


def _http_date() -> str:
    return formatdate(usegmt=True)


async def _send_json(send: Send, status: int, body: Any, headers: dict[str, str]) -> None:
    payload = json.dumps(body).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


async def _okta_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, OktaError)
    return Response(json.dumps(error.body()), error.status, headers=error.headers, media_type="application/json")


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if not request.url.path.startswith(API_PREFIXES):
        return Response(error.detail, error.status_code, headers=error.headers)
    if error.status_code == 405:
        okta = OktaError(405, "E0000022", "The endpoint does not support the provided HTTP method")
    else:
        okta = OktaError(error.status_code, "E0000007", f"Not found: Resource not found: {request.url.path} (Path)")
    return Response(json.dumps(okta.body()), okta.status, headers=error.headers, media_type="application/json")


def create_app(config: SandboxConfig | None = None) -> Starlette:
    sandbox = Sandbox(config or SandboxConfig())
    app = Starlette(
        routes=[*CONTROL_ROUTES, *API_ROUTES],
        exception_handlers={OktaError: _okta_error, HTTPException: _http_error},
    )
    app.state.sandbox = sandbox
    app.add_middleware(OktaEdge, sandbox=sandbox)
    return app
