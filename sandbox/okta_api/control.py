"""The test-only control API (`/__sandbox/...`, `/__health`) and the harness state it drives:
injected faults, fixed latency, the log of API requests received, rate-limit windows.

Not part of Okta. Served without SSWS auth, but only to loopback clients.
"""

from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from .app import Sandbox

FAULT_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_LOGGED_REQUESTS = 50_000
RATE_LIMIT_WINDOW_SECONDS = 60
REPORTED_RATE_LIMIT = 600  # what X-Rate-Limit-Limit says when enforcement is off


@dataclass
class Fault:
    """The next `count` API requests whose path starts with `path_prefix` are delayed and/or failed."""

    path_prefix: str
    count: int = 1
    status: int | None = None
    retry_after_seconds: float = 0.0
    bare: bool = False
    delay_seconds: float = 0.0
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.count > 0 and path.startswith(self.path_prefix) and self.method in (None, method)


@dataclass
class RateWindow:
    started: float
    used: int = 0


@dataclass
class Harness:
    faults: list[Fault] = field(default_factory=list)
    latency_seconds: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    request_count: int = 0
    answer_seconds: float = 0.0
    """The sum, over the API requests counted, of the time from each request's arrival to the start of
    its response: the upstream latency the client was served, whatever the configured latency."""
    rate_windows: dict[str, RateWindow] = field(default_factory=dict)

    def record(
        self,
        method: str,
        path: str,
        query: str,
        auth: str = "",
        authorized: bool = False,
        client_port: int | None = None,
    ) -> None:
        """`auth` is the Authorization scheme seen ("ssws", "bearer", "other" or "" when absent) and
        `authorized` whether it carried the configured API token; the credential itself is never kept.
        `client_port` is the client's TCP port: requests with the same port came over one connection."""
        self.request_count += 1
        if len(self.requests) < MAX_LOGGED_REQUESTS:
            self.requests.append({
                "method": method, "path": path, "query": query,
                "auth": auth, "authorized": authorized, "client_port": client_port, "at": time.time(),
            })

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.count -= 1
                self.faults = [f for f in self.faults if f.count > 0]
                return fault
        return None

    def consume_rate_limit(self, bucket: str, limit: int, enforced: bool) -> tuple[int, int, int, bool]:
        """Count one request in the bucket's window: (limit, remaining, reset epoch, exceeded)."""
        now = time.time()
        window = self.rate_windows.get(bucket)
        if window is None or now - window.started >= RATE_LIMIT_WINDOW_SECONDS:
            window = self.rate_windows[bucket] = RateWindow(started=now)
        window.used += 1
        reset = int(window.started + RATE_LIMIT_WINDOW_SECONDS)
        if enforced:
            exceeded = window.used > limit
            return limit, max(limit - window.used, 0), reset, exceeded
        # Without enforcement the headers still move, but never claim the budget is spent.
        return REPORTED_RATE_LIMIT, max(REPORTED_RATE_LIMIT - window.used, 1), reset, False


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _sandbox(request: Request) -> "Sandbox":
    return request.app.state.sandbox


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def _loopback_only(handler):  # type: ignore[no-untyped-def]
    async def guarded(request: Request) -> Response:
        if not _is_loopback(request):
            return JSONResponse({"error": "the sandbox control API is only served to loopback clients"}, 403)
        try:
            return await handler(request)
        except (ValueError, TypeError) as error:
            return _bad_request(str(error))

    return guarded


def parse_fault(data: dict[str, Any]) -> Fault:
    known = {"path_prefix", "status", "count", "retry_after_seconds", "bare", "delay_seconds", "method"}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown fault fields: {sorted(unknown)}")
    prefix = data.get("path_prefix", "/api/")
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise ValueError("path_prefix must be a path starting with '/'")
    status = data.get("status")
    bare = bool(data.get("bare", False))
    if bare and status is None:
        status = 503
    if status is not None and status not in FAULT_STATUSES:
        raise ValueError(f"status must be one of {sorted(FAULT_STATUSES)}")
    if bare and status != 503:
        raise ValueError("bare faults are 503s (a load balancer's page, not Okta's)")
    delay = float(data.get("delay_seconds", 0))
    if status is None and delay <= 0:
        raise ValueError("a fault needs a status, a delay_seconds, or both")
    count = int(data.get("count", 1))
    if count < 1 or not 0 <= delay <= 300:
        raise ValueError("count must be >= 1 and delay_seconds within 0..300")
    method = data.get("method")
    return Fault(
        path_prefix=prefix,
        count=count,
        status=status,
        retry_after_seconds=float(data.get("retry_after_seconds", 0)),
        bare=bare,
        delay_seconds=delay,
        method=method.upper() if isinstance(method, str) else None,
    )


@_loopback_only
async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


@_loopback_only
async def add_fault(request: Request) -> Response:
    harness = _sandbox(request).harness
    harness.faults.append(parse_fault(await _json_body(request)))
    return JSONResponse({"faults": [asdict(f) for f in harness.faults]}, status_code=201)


@_loopback_only
async def list_faults(request: Request) -> Response:
    return JSONResponse({"faults": [asdict(f) for f in _sandbox(request).harness.faults]})


@_loopback_only
async def clear_faults(request: Request) -> Response:
    _sandbox(request).harness.faults.clear()
    return Response(status_code=204)


@_loopback_only
async def set_latency(request: Request) -> Response:
    seconds = float((await _json_body(request)).get("seconds", 0))
    if not 0 <= seconds <= 60:
        raise ValueError("seconds must be within 0..60")
    _sandbox(request).harness.latency_seconds = seconds
    return JSONResponse({"seconds": seconds})


@_loopback_only
async def clear_latency(request: Request) -> Response:
    _sandbox(request).harness.latency_seconds = 0.0
    return Response(status_code=204)


@_loopback_only
async def list_requests(request: Request) -> Response:
    harness = _sandbox(request).harness
    return JSONResponse(
        {"count": harness.request_count, "answer_seconds": harness.answer_seconds, "requests": harness.requests}
    )


@_loopback_only
async def clear_requests(request: Request) -> Response:
    harness = _sandbox(request).harness
    harness.requests.clear()
    harness.request_count = 0
    harness.answer_seconds = 0.0
    return Response(status_code=204)


@_loopback_only
async def reset(request: Request) -> Response:
    body = await _json_body(request)
    extra_users = body.get("extra_users")
    if extra_users is not None and (not isinstance(extra_users, int) or not 0 <= extra_users <= 100_000):
        raise ValueError("extra_users must be an integer within 0..100000")
    sandbox = _sandbox(request)
    sandbox.reset(extra_users)
    return JSONResponse({"status": "reset", "users": len(sandbox.state.users), "extra_users": sandbox.extra_users})


CONTROL_ROUTES = [
    Route("/__health", health, methods=["GET"]),
    Route("/__sandbox/faults", add_fault, methods=["POST"]),
    Route("/__sandbox/faults", list_faults, methods=["GET"]),
    Route("/__sandbox/faults", clear_faults, methods=["DELETE"]),
    Route("/__sandbox/latency", set_latency, methods=["POST"]),
    Route("/__sandbox/latency", clear_latency, methods=["DELETE"]),
    Route("/__sandbox/requests", list_requests, methods=["GET"]),
    Route("/__sandbox/requests", clear_requests, methods=["DELETE"]),
    Route("/__sandbox/reset", reset, methods=["POST"]),
]
