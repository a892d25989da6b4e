"""How Okta's failures reach the model, through the whole stack (the MCP SDK client, the server
under daphne, the real okta SDK, the sandbox Okta API with injected faults): a 429 waits for the
reset and retries; past the bound it fails with "rate limited, retry after N s"; a bare 503, Okta's
own 503, a timeout and Okta's error bodies each give a clear message with Okta's errorCode and
request id, never a stack trace, and the request ids land in our audit row."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from audit.models import AuditEvent
from tests.okta_tools.conftest import BOB, Sandbox, World, error, ok, run


def _last_audit_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _completed(after: int, tool: str) -> list[AuditEvent]:
    """The outcome rows of a read tool's calls: one `tool.call` row each, decision and outcome together."""
    return list(
        AuditEvent.objects.filter(id__gt=after, event_type="tool.call", target=tool).exclude(outcome="").order_by("id")
    )


@pytest.mark.django_db
def test_rate_limit_settings_bound_the_wait() -> None:
    """(Marked django_db, it also makes pytest-django create the test database when this file runs alone.)"""
    from django.conf import settings

    assert 0 < settings.OKTA_RATE_LIMIT_MAX_WAIT_SECONDS <= 60 and 0 <= settings.OKTA_RATE_LIMIT_MAX_RETRIES <= 5
    assert settings.OKTA_REQUEST_TIMEOUT_SECONDS == 5  # tests/settings.py


def test_rate_limits_and_okta_errors(world: World, sandbox: Sandbox, db_access: None) -> None:
    before_audit = _last_audit_id()

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with world.client("bob") as client:
            # X-Rate-Limit-Reset is a whole second: 2 s ahead means a wait of 1 to 2 s.
            sandbox.fault(path_prefix="/api/v1/users", status=429, retry_after_seconds=2, count=1)
            started = time.monotonic()
            out["after_429"] = await client.call_tool("get_user", {"user": BOB})
            out["after_429_seconds"] = time.monotonic() - started
            mark = sandbox.count()
            sandbox.fault(path_prefix="/api/v1/users", status=429, retry_after_seconds=60, count=1)
            started = time.monotonic()
            out["past_bound"] = await client.call_tool("get_user", {"user": BOB})
            out["past_bound_seconds"] = time.monotonic() - started
            out["past_bound_requests"] = sandbox.count() - mark
            mark = sandbox.count()
            sandbox.fault(path_prefix="/api/v1/groups", status=429, retry_after_seconds=1, count=5)
            out["still_limited"] = await client.call_tool("list_groups", {})
            out["still_limited_requests"] = sandbox.count() - mark
            sandbox.fault(path_prefix="/api/v1/users", status=503, bare=True, count=1)
            out["bare_503"] = await client.call_tool("list_users", {})
            sandbox.fault(path_prefix="/api/v1/apps", status=503, count=1)
            out["okta_503"] = await client.call_tool("list_apps", {})
            out["bad_search"] = await client.call_tool("list_users", {"search": "profile.login zz \"x\""})
            out["bad_filter"] = await client.call_tool("list_groups", {"filter": 'nosuch eq "x"'})
            out["policy_type"] = await client.call_tool("list_policies", {"type": "NOT_A_TYPE"})
            out["newline"] = await client.call_tool("list_users", {"search": 'status eq "ACTIVE"\nand x'})
            out["long"] = await client.call_tool("list_users", {"filter": "x" * 1001})
            out["limit"] = await client.call_tool("list_users", {"limit": 201})
            out["recovered"] = await client.call_tool("list_users", {"limit": 1})
        return out

    out = run(scenario)
    assert ok(out["after_429"])["id"] == BOB and 0.9 <= out["after_429_seconds"] < 5
    message = error(out["past_bound"])
    retry = int(re.search(r"^rate limited, retry after (\d+) s", message).group(1))  # type: ignore[union-attr]
    assert 55 <= retry <= 61 and "E0000047" in message and "[request " in message
    assert out["past_bound_requests"] == 1 and out["past_bound_seconds"] < 3
    # Bounded retries: three tries one second apart, then the error.
    assert error(out["still_limited"]).startswith("rate limited, retry after") and out["still_limited_requests"] == 3
    assert error(out["bare_503"]) == "Okta returned HTTP 503 without an Okta error body"
    okta_503 = error(out["okta_503"])
    assert "Service Unavailable" in okta_503 and "(errorCode E0000009)" in okta_503 and "[request " in okta_503
    bad_search = error(out["bad_search"])
    assert "E0000031" in bad_search and "Invalid search criteria" in bad_search and "[request " in bad_search
    assert "E0000001" in error(out["bad_filter"])
    for key, field in (("policy_type", "type"), ("newline", "search"), ("long", "filter"), ("limit", "limit")):
        assert error(out[key]).startswith("Invalid arguments for "), key
        assert f"{field}:" in error(out[key]), key
    assert ok(out["recovered"])["returned"] == 1

    # The audit rows carry Okta's request ids: both of the retried call, one of the refused one.
    rows = _completed(before_audit, "get_user")
    retried, refused = rows[0], rows[1]
    assert retried.outcome == "success" and len(retried.okta_request_id.split(",")) == 2
    assert refused.outcome == "error" and refused.error_code == "E0000047" and refused.okta_request_id
    searched = [r for r in _completed(before_audit, "list_users") if r.error_code == "E0000031"]
    assert len(searched) == 1 and searched[0].okta_request_id and searched[0].okta_request_id in bad_search


def test_timeout_is_a_clear_error(world: World, sandbox: Sandbox, db_access: None) -> None:
    """A delay longer than OKTA_REQUEST_TIMEOUT_SECONDS (5 s in the tests)."""

    async def scenario() -> dict[str, Any]:
        async with world.client("bob") as client:
            sandbox.fault(path_prefix="/api/v1/users", delay_seconds=6, count=1)
            started = time.monotonic()
            result = await client.call_tool("get_user", {"user": BOB})
            return {"result": result, "seconds": time.monotonic() - started, "after": await client.call_tool("get_user", {"user": BOB})}

    out = run(scenario)
    assert error(out["result"]) == "Okta did not answer within 5 s (timeout)"
    assert 4.5 <= out["seconds"] < 7.5
    assert ok(out["after"])["id"] == BOB
