"""Prometheus metrics of this process, exposed at /metrics.

Each replica counts what it served and exposes its own numbers (Prometheus scrapes every replica and
sums); nothing is shared between processes. Label values come from our own code (endpoint names,
tool names, fixed reasons), never from request data, and each label is capped at
`MAX_LABEL_VALUES` distinct values so that no caller can grow the exposition without bound.

Sources: the HTTP edges (okta_mcp.observability for Django, the /mcp gate), the audit trail (every
committed audit row is observed once: tokens, tool-call outcomes, denials recorded by services) and
the Okta call wrapper (tools.okta.okta_call)."""

from __future__ import annotations

import hmac
import ipaddress
import re
import threading
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, disable_created_metrics, generate_latest

# The *_created series double the exposition and say nothing a scraper needs.
disable_created_metrics()

MAX_LABEL_VALUES = 100
OTHER = "other"
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "okta_mcp_http_requests", "HTTP requests served, by endpoint, method and status.", ["endpoint", "method", "status"]
)
HTTP_DURATION = Histogram(
    "okta_mcp_http_request_duration_seconds", "Time to serve an HTTP request.", ["endpoint"], buckets=_LATENCY_BUCKETS
)
TOOL_CALLS = Counter(
    "okta_mcp_tool_calls",
    "Tool calls by tool and outcome (success, error, cancelled, denied, invalid_arguments).",
    ["tool", "outcome"],
)
AUTHORIZATION_DENIALS = Counter(
    "okta_mcp_authorization_denials",
    "Requests refused for authentication or authorization, by where and why.",
    ["stage", "reason"],
)
TOKENS = Counter(
    "okta_mcp_tokens", "Token events: issued, refreshed, revoked, refresh_denied, reuse_detected.", ["event"]
)
AUDIT_EVENTS = Counter("okta_mcp_audit_events", "Audit rows committed, by type and decision.", ["event_type", "decision"])
OKTA_CALL_DURATION = Histogram(
    "okta_mcp_okta_call_duration_seconds",
    "Okta Management API calls by SDK operation and result.",
    ["operation", "result"],
    buckets=_LATENCY_BUCKETS,
)
OKTA_RATE_LIMIT_WAITS = Counter("okta_mcp_okta_rate_limit_waits", "Okta 429 answers, by what we did (waited, gave_up).", ["action"])
OKTA_RATE_LIMIT_WAIT_SECONDS = Counter(
    "okta_mcp_okta_rate_limit_wait_seconds", "Seconds spent waiting for Okta's rate limit to reset."
)
PRINCIPAL_CACHE = Counter(
    "okta_mcp_principal_cache_lookups",
    "Bearer token verifications by source: cache (reused), database (verified), or unavailable (Redis down).",
    ["result"],
)
PRINCIPAL_CACHE_INVALIDATION_FAILURES = Counter(
    "okta_mcp_principal_cache_invalidation_failures", "Changes whose authorization epoch could not be replaced in Redis."
)

_seen: dict[str, set[str]] = {}
# Raw values already admitted, with their label value (every request labels its endpoint, every
# tool call its tool): a dictionary lookup instead of a regular expression. Bounded like the labels.
_admitted: dict[tuple[str, str], str] = {}
MAX_ADMITTED = 10_000
_seen_lock = threading.Lock()
_NOT_LABEL = re.compile(r"[^a-z0-9_.]+")


def bounded(label: str, value: str) -> str:
    """`value` as a label value, or "other" once `label` already has MAX_LABEL_VALUES values."""
    known = _admitted.get((label, value))
    if known is not None:
        return known
    cleaned = _NOT_LABEL.sub("_", value.strip().lower()).strip("_")[:64] or "none"
    seen = _seen.setdefault(label, set())
    if cleaned not in seen:
        with _seen_lock:
            if len(seen) >= MAX_LABEL_VALUES:
                return OTHER
            seen.add(cleaned)
    if len(_admitted) < MAX_ADMITTED:
        _admitted[(label, value)] = cleaned
    return cleaned


def http_request_observe(*, endpoint: str, method: str, status: int, seconds: float) -> None:
    method = method if method in _HTTP_METHODS else OTHER
    HTTP_REQUESTS.labels(bounded("endpoint", endpoint), method, str(status)).inc()
    HTTP_DURATION.labels(bounded("endpoint", endpoint)).observe(seconds)


def authorization_denied(*, stage: str, reason: str) -> None:
    AUTHORIZATION_DENIALS.labels(stage, bounded("denial_reason", reason)).inc()


def okta_call_observe(*, operation: str, result: str, seconds: float) -> None:
    OKTA_CALL_DURATION.labels(bounded("okta_operation", operation), bounded("okta_result", result)).observe(seconds)


def okta_rate_limited(*, waited_seconds: float | None) -> None:
    if waited_seconds is None:
        OKTA_RATE_LIMIT_WAITS.labels("gave_up").inc()
    else:
        OKTA_RATE_LIMIT_WAITS.labels("waited").inc()
        OKTA_RATE_LIMIT_WAIT_SECONDS.inc(waited_seconds)


_TOKEN_EVENTS = {
    "token.issued": "issued",
    "token.refreshed": "refreshed",
    "token.revoked": "revoked",
    "token.refresh_denied": "refresh_denied",
    "token.reuse_detected": "reuse_detected",
}
# Denials that services record in the audit trail (the /mcp gate counts its own refusals).
_AUDITED_DENIALS = {
    "token.refresh_denied": ("token", "refresh_denied"),
    "token.reuse_detected": ("token", "refresh_token_reuse"),
    "consent.denied": ("authorize", "consent_denied"),
    "authorization.denied": ("authorize", "authorization_denied"),
    "login.failure": ("login", "login_failed"),
}
_TOOL_DENIALS = {"not granted": "not_granted", "unknown tool": "unknown_tool"}


def audit_event_observe(event: Any) -> None:
    """Called once for every committed audit row (audit.services.audit_record)."""
    event_type = str(event.event_type)
    decision = str(event.decision or "none")
    AUDIT_EVENTS.labels(bounded("event_type", event_type), decision).inc()
    if event_type in _TOKEN_EVENTS:
        TOKENS.labels(_TOKEN_EVENTS[event_type]).inc()
    if event_type in _AUDITED_DENIALS:
        AUTHORIZATION_DENIALS.labels(*_AUDITED_DENIALS[event_type]).inc()
    if event_type == "tool.call" and decision == "denied":
        reason = str(event.reason or "")
        if reason in _TOOL_DENIALS:
            AUTHORIZATION_DENIALS.labels("tool_call", _TOOL_DENIALS[reason]).inc()
            tool = "unknown" if reason == "unknown tool" else str(event.target)
            TOOL_CALLS.labels(bounded("tool", tool), "denied").inc()
        else:
            TOOL_CALLS.labels(bounded("tool", str(event.target)), "invalid_arguments").inc()
    elif event_type == "tool.call.completed" or (event_type == "tool.call" and event.outcome):
        # A read's one row carries its outcome; a write's outcome comes in its completion row.
        TOOL_CALLS.labels(bounded("tool", str(event.target)), bounded("outcome", str(event.outcome))).inc()


# --- who may read /metrics ------------------------------------------------------------------------

_FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def metrics_access_allowed(
    *,
    meta: dict[str, Any],
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    bearer_token: str,
) -> bool:
    """A scrape is allowed with the configured bearer secret from anywhere, or without it from an
    allowed network. The network rule applies only to direct connections: a request that carries
    forwarding headers came through a proxy (whose address is the peer's) or is pretending to, so
    only the secret lets it in. deploy/nginx.conf also refuses /metrics at the proxy."""
    if bearer_token:
        scheme, _, presented = str(meta.get("HTTP_AUTHORIZATION", "")).partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), bearer_token.encode()):
            return True
    if any(meta.get(h) for h in _FORWARDED):
        return False
    try:
        peer = ipaddress.ip_address(str(meta.get("REMOTE_ADDR", "")))
    except ValueError:
        return False
    return any(peer in net for net in networks)


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


def principal_cache_lookup(result: str) -> None:
    PRINCIPAL_CACHE.labels(result=result).inc()


def principal_cache_invalidation_failed() -> None:
    PRINCIPAL_CACHE_INVALIDATION_FAILURES.inc()
