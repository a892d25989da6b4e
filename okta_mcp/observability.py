"""Request ids, JSON log lines (an access line per request) and the per-request HTTP metrics.

Every request gets an id: the caller's `X-Request-Id` when it is a plain token (nginx sends its
`$request_id`), a fresh one otherwise. It is returned in the `X-Request-Id` response header, carried
by every log line written while the request is served and stored in the audit rows it causes
(`audit.services.RequestMeta` takes it from here), so one id joins the proxy log, the server log and
the audit trail. /mcp does the same in its own gate (okta_mcp.mcp_endpoint)."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from datetime import datetime, timezone
from typing import Any

import orjson
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from okta_mcp import metrics

access_logger = logging.getLogger("okta_mcp.access")
_request_id: ContextVar[str] = ContextVar("okta_mcp_request_id", default="")
# Only plain tokens are taken from the caller: the id lands in logs and audit rows, so it must not
# carry separators, quotes or control characters (log injection), and it is never trusted for anything.
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def request_id_from(incoming: str | None) -> str:
    if incoming and _INCOMING_ID.match(incoming):
        return incoming
    return secrets.token_hex(16)  # 32 hex characters, like uuid4().hex, without building a UUID


def current_request_id() -> str:
    """The id of the request being served, or a fresh one outside any request (commands, tasks)."""
    return _request_id.get() or secrets.token_hex(16)


def request_id_set(value: str) -> Token[str]:
    return _request_id.set(value)


def request_id_reset(token: Token[str]) -> None:
    _request_id.reset(token)


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that holds the records marked `batched` (extra={"batched": True}) until it
    is flushed, then writes them in one system call: the audit writer commits its rows in batches
    and logs each batch's lines together, instead of one write (and one hand-over of the GIL) per
    row. Any other record is written at once, with whatever was held before it."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._held: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._held.append(self.format(record) + self.terminator)
        except Exception:  # noqa: BLE001 - logging must not break the caller
            self.handleError(record)
            return
        if not getattr(record, "batched", False):
            self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            held, self._held = self._held, []
            try:
                if held:
                    self.stream.write("".join(held))
                if hasattr(self.stream, "flush"):
                    self.stream.flush()
            except Exception:  # noqa: BLE001 - as StreamHandler.emit: report lost lines, never raise
                if held:
                    self.handleError(logging.makeLogRecord({"msg": f"{len(held)} log line(s) could not be written"}))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request id when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "") or _request_id.get()
        if request_id:
            line["request_id"] = request_id
        http = getattr(record, "http", None)
        if isinstance(http, dict):
            line["http"] = http
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def request_finished(*, endpoint: str, method: str, path: str, status: int, seconds: float, request_id: str) -> None:
    """The access log line (JSON: under "http"; no query string, it can carry codes) and the metrics
    of one request."""
    metrics.http_request_observe(endpoint=endpoint, method=method, status=status, seconds=seconds)
    if access_logger.isEnabledFor(logging.INFO):
        access_logger.info(
            "%s %s %s %.1fms",
            method,
            path,
            status,
            seconds * 1000,
            extra={
                "request_id": request_id,
                "http": {"method": method, "path": path[:200], "status": status, "ms": round(seconds * 1000, 1), "endpoint": endpoint},
            },
        )


def _endpoint(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    if match.namespace == "admin" or match.namespace.startswith("admin:"):
        return "admin"
    return match.url_name or "unnamed"


class RequestObservationMiddleware:
    """Outermost middleware: sets the request id (request.request_id, the log context, the response
    header) and counts the request by endpoint and status."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        token, started = self._begin(request)
        try:
            response = self.get_response(request)
        finally:
            request_id_reset(token)
        return self._end(request, response, started)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        token, started = self._begin(request)
        try:
            get_response: Callable[[HttpRequest], Awaitable[HttpResponse]] = self.get_response  # type: ignore[assignment]
            response = await get_response(request)
        finally:
            request_id_reset(token)
        return self._end(request, response, started)

    @staticmethod
    def _begin(request: HttpRequest) -> tuple[Token[str], float]:
        request_id = request_id_from(request.headers.get("X-Request-Id"))
        request.request_id = request_id  # type: ignore[attr-defined]
        return request_id_set(request_id), time.perf_counter()

    @staticmethod
    def _end(request: HttpRequest, response: HttpResponse, started: float) -> HttpResponse:
        response["X-Request-Id"] = request.request_id  # type: ignore[attr-defined]
        request_finished(
            endpoint=_endpoint(request),
            method=request.method or "",
            path=request.path,
            status=response.status_code,
            seconds=time.perf_counter() - started,
            request_id=request.request_id,  # type: ignore[attr-defined]
        )
        return response
