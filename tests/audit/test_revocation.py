"""Revocation cuts off a live MCP client at its next request, whichever way it is done: the
management command, the admin action, or the client's own RFC 7009 request. The official SDK
client answers the 401 by authorizing again, which a revoked consent turns into a new consent page."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import anyio
import httpx2 as httpx
import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from audit.models import AuditEvent, EventType
from consent.models import Consent
from tests.audit.helpers import MODERN, assert_cut_off, live_connection, mcp_call, refresh

pytestmark = pytest.mark.django_db(transaction=True)


def _in_thread(fn: Callable[[], None]) -> Callable[[], None]:
    """Run a database step from the event loop's worker thread, then release that thread's connection."""

    def run() -> None:
        try:
            fn()
        finally:
            connection.close()

    return run


def _revoke_with_command(server_url: str, client_id: str, tokens: Any, admin: Client) -> None:
    call_command(
        "revoke_consent",
        "--user",
        "alice@acme.example",
        "--client",
        client_id,
        "--reason",
        "test",
        stdout=io.StringIO(),
    )


def _revoke_in_admin(server_url: str, client_id: str, tokens: Any, admin: Client) -> None:
    consent = Consent.objects.active().get(user__okta_login="alice@acme.example", application__client_id=client_id)
    response = admin.post(
        "/admin/consent/consent/", {"action": "revoke_selected", "_selected_action": [consent.pk], "index": 0}
    )
    assert response.status_code == 302


def _revoke_with_rfc7009(server_url: str, client_id: str, tokens: Any, admin: Client) -> None:
    response = httpx.post(
        server_url + "/revoke",
        data={"token": tokens.access_token, "token_type_hint": "access_token", "client_id": client_id},
        timeout=30,
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "how,mode",
    [
        (_revoke_with_command, "legacy"),
        (_revoke_with_command, MODERN),
        (_revoke_in_admin, MODERN),
        (_revoke_with_rfc7009, "legacy"),
    ],
    ids=["command-legacy", "command-2026", "admin-2026", "rfc7009-legacy"],
)
def test_revocation_cuts_off_a_live_client_at_its_next_request(
    server_url, okta_org, public_client, demo_policy, superuser_client, how, mode
) -> None:
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with live_connection(server_url, public_client.client_id, mode=mode) as conn:
            assert not (await conn.client.call_tool("whoami", {})).is_error
            seen["tokens"] = conn.storage.tokens
            seen["consent_pages"] = len(conn.browser.consent_pages)
            mark = len(conn.mcp_statuses)
            await anyio.to_thread.run_sync(
                _in_thread(lambda: how(server_url, public_client.client_id, seen["tokens"], superuser_client))
            )
            # The very next request is refused; the SDK client then authorizes again and retries.
            again = await conn.client.call_tool("whoami", {})
            seen["statuses_after"] = conn.mcp_statuses[mark:]
            seen["again"] = again
            seen["authorizations"] = len(conn.authorizations)
            seen["consent_pages_after"] = len(conn.browser.consent_pages)
            seen["new_tokens"] = conn.storage.tokens

    anyio.run(scenario)

    assert seen["statuses_after"][0] == 401, seen["statuses_after"]
    assert seen["authorizations"] == 2
    assert not seen["again"].is_error
    old, new = seen["tokens"], seen["new_tokens"]
    assert new.access_token != old.access_token
    # The old credentials stay dead: the access token at /mcp, the refresh token at /token.
    assert_cut_off(mcp_call(server_url, old.access_token))
    refused = refresh(server_url, public_client.client_id, old.refresh_token)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    if how is _revoke_with_rfc7009:
        assert AuditEvent.objects.filter(
            event_type=EventType.TOKEN_REVOKED, reason="RFC 7009 revocation request"
        ).exists()
    else:
        # The consent itself was revoked (and audited): the person had to approve again.
        assert seen["consent_pages_after"] == seen["consent_pages"] + 1
        revoked = AuditEvent.objects.get(event_type=EventType.CONSENT_REVOKED)
        assert revoked.client_id == public_client.client_id
        assert Consent.objects.filter(revoked_at__isnull=False).count() == 1
        assert Consent.objects.active().count() == 1  # the new one
