"""Requirement 20: the RFC 7009 revocation endpoint, for the public client that holds the tokens.
A revoked access token stops working at /mcp at once (and takes its refresh token along); a
revoked refresh token no longer refreshes; an unknown token, or another client's, is answered 200
and changes nothing; every revocation is audited."""

from __future__ import annotations

import pytest
from oauth2_provider.models import RefreshToken

from audit.models import AuditEvent
from tests.consent.conftest import Flow
from tests.consent.flows import checksum, mcp_list_tools, refresh, revoke

pytestmark = pytest.mark.django_db(transaction=True)


def _revoke(flow: Flow, token: str, hint: str | None = None, client_id: str | None = None):
    return revoke(flow.server_url, token, client_id=client_id or flow.client.client_id, hint=hint)


def _refresh_error(flow: Flow, token: str) -> str:
    response = refresh(flow.server_url, token, client_id=flow.client.client_id)
    return response.json().get("error", "") if response.status_code != 200 else ""


def test_revoked_access_token_stops_working(flow: Flow) -> None:
    for hint in ["access_token", None]:
        tokens = flow.tokens()
        assert mcp_list_tools(flow.server_url, tokens["access_token"]).status_code == 200
        response = _revoke(flow, tokens["access_token"], hint)
        assert response.status_code == 200
        challenge = mcp_list_tools(flow.server_url, tokens["access_token"])
        assert challenge.status_code == 401 and 'error="invalid_token"' in challenge.headers["www-authenticate"]
        # RFC 7009 §2.1 lets the server revoke the refresh token too; we do, or it could mint a new one.
        assert _refresh_error(flow, tokens["refresh_token"]) == "invalid_grant"
    revoked = AuditEvent.objects.filter(event_type="token.revoked", client_id=flow.client.client_id)
    assert revoked.count() == 2
    assert all(e.actor_login == "alice@acme.example" and e.details["kind"] == "access_token" for e in revoked)


def test_revoked_refresh_token_stops_refreshing(flow: Flow) -> None:
    for hint in ["refresh_token", None]:
        tokens = flow.tokens()
        response = _revoke(flow, tokens["refresh_token"], hint)
        assert response.status_code == 200
        refresh_token = RefreshToken.objects.get(token_checksum=checksum(tokens["refresh_token"]))
        assert refresh_token.revoked is not None
        assert _refresh_error(flow, tokens["refresh_token"]) == "invalid_grant"
        assert mcp_list_tools(flow.server_url, tokens["access_token"]).status_code == 401
        revoked = AuditEvent.objects.get(event_type="token.revoked", target=f"session:{refresh_token.token_family}")
        assert revoked.details["kind"] == "refresh_token" and revoked.actor_login == "alice@acme.example"


def test_unknown_or_foreign_tokens_are_answered_200_and_change_nothing(flow: Flow, second_client, unchanged) -> None:
    tokens = flow.tokens()
    with unchanged():
        for token in ["not-a-token", "x" * 30, tokens["access_token"][::-1]]:
            response = _revoke(flow, token)
            assert response.status_code == 200 and response.content in (b"", b"{}"), response.text
        # RFC 7009 §2.1: a client may revoke only its own tokens; the answer does not tell.
        for token in (tokens["access_token"], tokens["refresh_token"]):
            assert _revoke(flow, token, client_id=second_client.client_id).status_code == 200
    assert not AuditEvent.objects.filter(event_type="token.revoked").exists()
    assert mcp_list_tools(flow.server_url, tokens["access_token"]).status_code == 200
    assert refresh(flow.server_url, tokens["refresh_token"], client_id=flow.client.client_id).status_code == 200


def test_revocation_needs_a_known_client(flow: Flow, unchanged) -> None:
    tokens = flow.tokens()
    with unchanged():
        for client_id in ["", "no-such-client"]:
            response = revoke(flow.server_url, tokens["access_token"], client_id=client_id)
            assert response.status_code == 401, response.text
            assert response.json()["error"] == "invalid_client"
    assert mcp_list_tools(flow.server_url, tokens["access_token"]).status_code == 200
