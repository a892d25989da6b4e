"""Lifetimes enforced by the real server: consent 24 h, login session 2 h absolute, access tokens
at most 1 h. An expired consent fails the next /mcp request and the next refresh at once; a refresh
past the login session fails with invalid_grant; a refresh near its end gets a token that ends
with it."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

from audit.models import AuditEvent, EventType
from consent.models import Consent, LoginSession
from consent.principal_cache import authz_changed
from tests.audit.helpers import MODERN, Flow, assert_cut_off, mcp_call, oauth_flow, refresh

pytestmark = pytest.mark.django_db(transaction=True)


def _checksum(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _session(flow: Flow) -> LoginSession:
    rt = RefreshToken.objects.get(token_checksum=_checksum(flow.tokens.refresh_token or ""))
    return LoginSession.objects.select_related("consent").get(token_family=rt.token_family)


def test_configured_lifetimes(server_url, okta_org, public_client, demo_policy) -> None:
    flow = oauth_flow(server_url, public_client.client_id, mode=MODERN)
    assert settings.ACCESS_TOKEN_SECONDS <= 3600
    assert flow.tokens.expires_in is not None and 0 < flow.tokens.expires_in <= 3600
    at = AccessToken.objects.get(token_checksum=_checksum(flow.tokens.access_token))
    assert (at.expires - at.created).total_seconds() <= 3600 + 1
    session = _session(flow)
    assert round((session.ends_at - session.started_at).total_seconds()) == 2 * 3600
    consent = session.consent
    assert round((consent.expires_at - consent.granted_at).total_seconds()) == 24 * 3600


def test_expired_consent_fails_the_next_request_and_refresh(server_url, okta_org, public_client, demo_policy) -> None:
    flow = oauth_flow(server_url, public_client.client_id, mode=MODERN)
    assert mcp_call(server_url, flow.tokens.access_token).status_code == 200
    Consent.objects.filter(user__okta_login="alice@acme.example").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    # Moving the expiry stands in for time passing; a change made outside the services announces
    # itself as they do (consent.principal_cache), or a replica could go on reusing its answer.
    authz_changed()

    assert_cut_off(mcp_call(server_url, flow.tokens.access_token))
    rejected = AuditEvent.objects.filter(event_type=EventType.TOKEN_REJECTED).latest("id")
    assert rejected.reason == "consent revoked or expired" and rejected.actor_login == "alice@acme.example"

    refused = refresh(server_url, public_client.client_id, flow.tokens.refresh_token or "")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    denied = AuditEvent.objects.filter(event_type=EventType.TOKEN_REFRESH_DENIED).latest("id")
    assert denied.reason == "consent expired" and denied.decision == "denied"
    # Nothing was issued: the refresh token was not rotated.
    assert RefreshToken.objects.get(token_checksum=_checksum(flow.tokens.refresh_token or "")).revoked is None


def test_refresh_past_the_login_session_fails(server_url, okta_org, public_client, demo_policy) -> None:
    flow = oauth_flow(server_url, public_client.client_id, mode=MODERN)
    session = _session(flow)
    LoginSession.objects.filter(pk=session.pk).update(ends_at=timezone.now() - timedelta(seconds=1))

    refused = refresh(server_url, public_client.client_id, flow.tokens.refresh_token or "")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert "access_token" not in refused.json()
    denied = AuditEvent.objects.filter(event_type=EventType.TOKEN_REFRESH_DENIED).latest("id")
    assert denied.reason == "login session lifetime exceeded; re-authorize"
    assert denied.target == f"session:{session.token_family}"


def test_refresh_near_the_session_end_gets_a_token_ending_with_it(
    server_url, okta_org, public_client, demo_policy
) -> None:
    flow = oauth_flow(server_url, public_client.client_id, mode=MODERN)
    session = _session(flow)
    ends_at = timezone.now() + timedelta(seconds=120)
    LoginSession.objects.filter(pk=session.pk).update(ends_at=ends_at)

    response = refresh(server_url, public_client.client_id, flow.tokens.refresh_token or "")
    assert response.status_code == 200, response.text
    body = response.json()
    assert 0 < body["expires_in"] <= 120
    at = AccessToken.objects.get(token_checksum=_checksum(body["access_token"]))
    assert at.expires <= ends_at + timedelta(seconds=1)
    assert mcp_call(server_url, body["access_token"]).status_code == 200
