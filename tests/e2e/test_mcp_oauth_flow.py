"""The whole path, with real parts: the official MCP SDK client discovers the authorization server
from the 401, a person logs in at the sandbox Okta and approves our consent page, the SDK redeems
the code with PKCE, lists and calls tools, and refreshes with rotation, in both protocol
generations."""

from __future__ import annotations

import hashlib

import anyio
import pytest
from oauth2_provider.models import AccessToken, RefreshToken

from audit.models import AuditEvent
from consent.models import Consent, LoginSession
from tests.clients import Browser, MemoryTokenStorage, mcp_connection, tool_names

pytestmark = pytest.mark.django_db(transaction=True)


def _checksum(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_full_flow_list_call_refresh(server_url, okta_org, public_client, demo_policy, mode) -> None:
    browser = Browser("alice")
    storage = MemoryTokenStorage(public_client.client_id)

    async def scenario() -> dict:
        out: dict = {}
        async with mcp_connection(server_url, browser, storage, mode=mode) as conn:
            listed = await conn.client.list_tools()
            out["tools"] = tool_names(listed)
            me = await conn.client.call_tool("whoami", {})
            out["whoami"] = me.structured_content
            user = await conn.client.call_tool("get_user", {"user": "bob@acme.example"})
            out["get_user"] = user.structured_content
            out["first_tokens"] = storage.tokens
            conn.force_refresh()
            again = await conn.client.call_tool("whoami", {})
            out["after_refresh"] = again.structured_content
            out["second_tokens"] = storage.tokens
            out["authorizations"] = len(conn.authorizations)
        return out

    out = anyio.run(scenario)
    browser.close()

    assert out["authorizations"] == 1
    assert "whoami" in out["tools"] and "get_user" in out["tools"]
    assert out["whoami"]["login"] == "alice@acme.example"
    assert out["whoami"]["client_id"] == public_client.client_id
    assert out["whoami"]["scopes"] == ["mcp.read"]
    assert out["get_user"]["login"] == "bob@acme.example"
    assert out["get_user"]["status"] == "ACTIVE"

    # The consent page named the client, its redirect host with the loopback warning, and the tools.
    page = browser.consent_pages[0]
    assert "Test MCP client" in page and "127.0.0.1" in page and 'id="loopback-warning"' in page
    assert "get_user" in page and 'id="expiry"' in page

    first, second = out["first_tokens"], out["second_tokens"]
    assert first.refresh_token and second.refresh_token and first.refresh_token != second.refresh_token
    assert first.access_token != second.access_token
    assert first.expires_in and first.expires_in <= 3600
    # Rotation: the first refresh token is revoked, the new one lives, both in one family.
    old_rt = RefreshToken.objects.get(token_checksum=_checksum(first.refresh_token))
    new_rt = RefreshToken.objects.get(token_checksum=_checksum(second.refresh_token))
    assert old_rt.revoked is not None and new_rt.revoked is None
    assert old_rt.token_family == new_rt.token_family
    # Tokens are stored hashed: the raw value is nowhere in the row.
    assert old_rt.token == "" and not AccessToken.objects.filter(token=second.access_token).exists()
    at = AccessToken.objects.get(token_checksum=_checksum(second.access_token))
    assert at.resource == [server_url + "/mcp"]

    consent = Consent.objects.get(user__okta_login="alice@acme.example", application=public_client)
    assert consent.status == "active"
    assert round((consent.expires_at - consent.granted_at).total_seconds()) == 24 * 3600
    session = LoginSession.objects.get(token_family=new_rt.token_family)
    assert round((session.ends_at - session.started_at).total_seconds()) == 2 * 3600

    events = list(AuditEvent.objects.order_by("id").values_list("event_type", flat=True))
    for expected in ["login.success", "consent.granted", "token.issued", "tools.listed", "tool.call", "token.refreshed"]:
        assert expected in events, expected
