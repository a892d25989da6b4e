"""The audit trail with the real server: the official MCP SDK client, the sandbox IdP and the
sandbox Okta API. Concurrent calls in both protocol generations leave exactly one decision and one
outcome row each in one verifiable chain; a failing audit write stops the call before Okta; no
token or secret reaches an audit row or a log line."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2 as httpx
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit.models import AuditEvent, EventType
from tests.audit.helpers import MODERN, bearer_client, mcp_call, oauth_flow, refresh
from tests.conftest import LOG_DIR

pytestmark = pytest.mark.django_db(transaction=True)

CALLS_PER_PROTOCOL = 100
CONNECTIONS_PER_PROTOCOL = 4


def _verify() -> str:
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def test_200_concurrent_calls_in_both_protocols_leave_a_verifiable_chain(
    server_url, okta_org, public_client, demo_policy
) -> None:
    # One authorization; its access token is then presented in both protocol generations.
    token = oauth_flow(server_url, public_client.client_id, mode=MODERN).tokens.access_token
    tokens = {"legacy": token, MODERN: token}
    marker = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    results: dict[str, list[Any]] = {"legacy": [], MODERN: []}

    async def burst(mode: str) -> None:
        async with (
            bearer_client(server_url, tokens[mode], mode=mode) as c1,
            bearer_client(server_url, tokens[mode], mode=mode) as c2,
            bearer_client(server_url, tokens[mode], mode=mode) as c3,
            bearer_client(server_url, tokens[mode], mode=mode) as c4,
        ):
            clients = [c1, c2, c3, c4]

            async def one(i: int) -> None:
                results[mode].append(await clients[i % CONNECTIONS_PER_PROTOCOL].call_tool("whoami", {}))

            async with anyio.create_task_group() as tg:
                for i in range(CALLS_PER_PROTOCOL):
                    tg.start_soon(one, i)

    async def both() -> None:
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(burst, "legacy")
                tg.start_soon(burst, MODERN)

    anyio.run(both)

    for mode, answers in results.items():
        assert len(answers) == CALLS_PER_PROTOCOL, mode
        assert all(not r.is_error and r.structured_content["login"] == "alice@acme.example" for r in answers), mode

    new = AuditEvent.objects.filter(pk__gt=marker)
    # A read tool's call is one row, decision and outcome together, committed before the answer left.
    calls = list(
        new.filter(event_type=EventType.TOOL_CALL).values_list("id", "target", "decision", "actor_login", "outcome")
    )
    assert len(calls) == 2 * CALLS_PER_PROTOCOL
    assert {(t, d, a, o) for _, t, d, a, o in calls} == {("whoami", "allowed", "alice@acme.example", "success")}
    assert not new.filter(event_type=EventType.TOOL_CALL_COMPLETED).exists()

    report = _verify()
    assert "audit chain intact" in report
    total = AuditEvent.objects.count()
    assert f"{total} row(s) checked" in report

    victim = calls[len(calls) // 2][0]
    AuditEvent.objects.filter(pk=victim).update(details={"arguments": {"user": "someone-else"}})
    with pytest.raises(CommandError) as broken:
        _verify()
    assert f"row #{victim}" in str(broken.value) and "content changed" in str(broken.value)


def test_audit_write_failure_withholds_a_read_result(server_url, okta_org, public_client, demo_policy) -> None:
    """The audit table is made unavailable for real: renamed for the duration of one call, so the
    server's INSERT fails exactly as it would with the table gone or the database refusing writes
    (the same statement works on SQLite and PostgreSQL). A read's row is written after it ran and
    before its result leaves: without the row, the result does not leave. (A write tool's decision
    is written before Okta is touched: tests/okta_tools/test_writes.py.)"""
    token = oauth_flow(server_url, public_client.client_id, mode=MODERN).tokens.access_token
    before_id = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    outcome: dict[str, Any] = {}

    def table(renamed: bool) -> None:
        old, new = ("audit_auditevent", "audit_auditevent_offline")[:: 1 if renamed else -1]
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {old} RENAME TO {new}")

    async def scenario() -> None:
        async with bearer_client(server_url, token, mode=MODERN) as client:
            assert not (await client.call_tool("whoami", {})).is_error
            httpx.delete(okta_org + "/__sandbox/requests", timeout=10).raise_for_status()
            await anyio.to_thread.run_sync(table, True)
            try:
                outcome["failed"] = await client.call_tool("get_user", {"user": "bob@acme.example"})
            finally:
                await anyio.to_thread.run_sync(table, False)
            outcome["after"] = await client.call_tool("get_user", {"user": "bob@acme.example"})
            outcome["okta_after"] = httpx.get(okta_org + "/__sandbox/requests", timeout=10).json()

    anyio.run(scenario)
    failed = outcome["failed"]
    assert failed.is_error and failed.structured_content is None
    assert "audit trail is unavailable" in failed.content[0].text and "withheld" in failed.content[0].text
    assert "bob@acme.example" not in failed.content[0].text
    assert "Traceback" not in failed.content[0].text and "audit_auditevent" not in failed.content[0].text
    # Once the table is back, the same call answers: the withheld result above was the audit's doing.
    after = outcome["after"]
    assert not after.is_error and after.structured_content["login"] == "bob@acme.example"
    assert outcome["okta_after"]["count"] >= 1
    # Only that later call was recorded; the withheld one left no row, and the chain is whole.
    new = AuditEvent.objects.filter(pk__gt=before_id)
    assert list(new.filter(event_type=EventType.TOOL_CALL, target="get_user").values_list("outcome", flat=True)) == [
        "success"
    ]
    assert "audit chain intact" in _verify()


def _secrets_in(text: str, secrets: set[str]) -> set[str]:
    return {s for s in secrets if s and s in text}


def test_no_token_or_secret_in_audit_rows_or_logs(server_url, okta_org, public_client, demo_policy) -> None:
    flow = oauth_flow(server_url, public_client.client_id, mode="legacy")
    secrets = set(flow.raw_secrets)
    tool_secret, tool_secret_2 = "hunter2-correct-horse", "sk_live_" + "Q" * 40
    first = flow.tokens

    async def use() -> None:
        async with bearer_client(server_url, first.access_token, mode="legacy") as client:
            await client.call_tool("get_user", {"user": "bob@acme.example"})
            # Secret-looking arguments (refused as invalid for the tool, but still recorded).
            await client.call_tool("get_user", {"user": "bob@acme.example", "password": tool_secret})
            await client.call_tool("get_user", {"user": "bob@acme.example", "note": tool_secret_2})

    anyio.run(use)
    refreshed = refresh(server_url, public_client.client_id, first.refresh_token or "")
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    secrets |= {second["access_token"], second["refresh_token"], tool_secret, tool_secret_2}
    # A revocation (RFC 7009) and a replayed (rotated) refresh token: both audited, neither may leak.
    revoked = httpx.post(
        server_url + "/revoke", data={"token": second["access_token"], "client_id": public_client.client_id}
    )
    assert revoked.status_code == 200
    assert mcp_call(server_url, second["access_token"]).status_code == 401
    assert refresh(server_url, public_client.client_id, first.refresh_token or "").status_code == 400
    secrets |= {"alice-pass", settings.OIDC_RP_CLIENT_SECRET, settings.OKTA_API_TOKEN, settings.SECRET_KEY}

    rows = list(AuditEvent.objects.order_by("id").values())
    dumped = json.dumps(rows, default=str)
    types = {r["event_type"] for r in rows}
    for expected in (
        "login.success",
        "consent.granted",
        "token.issued",
        "tool.call",
        "token.refreshed",
        "token.reuse_detected",
        "token.revoked",
    ):
        assert expected in types, expected
    assert _secrets_in(dumped, secrets) == set()
    assert "[redacted]" in dumped  # the secret-looking argument was recorded, redacted

    logs = {p.name: p.read_text(errors="replace") for p in Path(LOG_DIR).glob("*.log")}
    assert "daphne.log" in logs
    # The server's audit lines for this test are in the log being searched.
    last = rows[-1]
    assert f'"hash":"{last["hash"]}"' in logs["daphne.log"]
    for name, text in logs.items():
        assert _secrets_in(text, secrets) == set(), name


def test_outcome_is_recorded_when_the_client_disconnects(server_url, okta_org, public_client, demo_policy) -> None:
    """Okta is slow, the client gives up and closes the connection mid-call: the call's row is
    still written, as cancelled (shielded from the cancellation)."""
    token = oauth_flow(server_url, public_client.client_id, mode=MODERN).tokens.access_token
    marker = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    httpx.post(okta_org + "/__sandbox/latency", json={"seconds": 2}, timeout=10).raise_for_status()
    try:
        with pytest.raises(httpx.TimeoutException):
            httpx.post(
                server_url + "/mcp",
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tools/call",
                    "params": {
                        "name": "get_user",
                        "arguments": {"user": "bob@acme.example"},
                        "_meta": {
                            "io.modelcontextprotocol/protocolVersion": MODERN,
                            "io.modelcontextprotocol/clientCapabilities": {},
                        },
                    },
                },
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/json, text/event-stream",
                    "MCP-Protocol-Version": MODERN,
                    "Mcp-Method": "tools/call",
                    "Mcp-Name": "get_user",
                },
                timeout=0.5,
            )
        outcome = None
        deadline = time.monotonic() + 15
        while outcome is None and time.monotonic() < deadline:
            outcome = AuditEvent.objects.filter(pk__gt=marker, event_type=EventType.TOOL_CALL, target="get_user").first()
            time.sleep(0.2)
    finally:
        httpx.delete(okta_org + "/__sandbox/latency", timeout=10)
    assert outcome is not None, "no row for the abandoned call"
    assert outcome.decision == "allowed"
    assert (outcome.outcome, outcome.error_code) == ("error", "cancelled")
    assert outcome.duration_ms is not None and outcome.duration_ms >= 0
    assert "audit chain intact" in _verify()
