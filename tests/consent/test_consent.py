"""Requirement 21: consent is per user and per client, checked on every authorization request.
Only an unexpired, unrevoked consent of this user for this client covering the requested scopes
skips our page; nothing the client sends (`approval_prompt=auto`, DOT's `skip_authorization`, an
earlier token) does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application

from audit.models import AuditEvent
from audit.services import RequestMeta
from consent import services
from consent.models import Consent
from tests.consent.conftest import Flow
from tests.consent.flows import ConsentBrowser, Pkce

pytestmark = pytest.mark.django_db(transaction=True)


def _shows_page(flow: Flow, browser: ConsentBrowser | None = None, **params) -> bool:
    outcome = (browser or flow.browser).open(flow.url(Pkce.new(), **params))
    assert outcome.kind in ("consent", "redirect"), outcome.html[:300]
    if outcome.kind == "redirect":
        assert outcome.params.get("code"), outcome.params
    return outcome.kind == "consent"


def test_consent_is_remembered_for_the_same_user_client_and_scopes(flow: Flow) -> None:
    flow.code()
    consent = Consent.objects.get()
    assert consent.user.okta_login == "alice@acme.example" and consent.application == flow.client
    assert consent.expires_at - consent.granted_at == timedelta(hours=24)

    assert not _shows_page(flow)
    assert not _shows_page(flow, approval_prompt="force")
    assert Consent.objects.count() == 1 and len(flow.browser.consent_pages) == 1
    reused = AuditEvent.objects.filter(event_type="consent.reused", target=f"consent:{consent.pk}")
    assert reused.count() == 2 and reused.first().actor_login == "alice@acme.example"

    # More scopes than were approved: asked again; fewer: covered.
    assert _shows_page(flow, scope="mcp.read mcp.write")
    flow.code(scope="mcp.read mcp.write")
    assert not _shows_page(flow, scope="mcp.write")
    assert not _shows_page(flow, scope="mcp.read")


def test_another_client_or_another_user_is_asked(flow: Flow, second_client) -> None:
    flow.code()
    assert _shows_page(flow, client_id=second_client.client_id)
    bob = ConsentBrowser("bob")
    try:
        assert _shows_page(flow, bob)
        flow.browser.consent_pages.clear()
        flow.browser, alice = bob, flow.browser
        flow.code()  # bob approves for himself
        assert not _shows_page(flow, bob)
    finally:
        bob.close()
    assert not _shows_page(flow, alice)
    assert Consent.objects.filter(application=flow.client).count() == 2


def test_client_parameters_cannot_skip_consent(flow: Flow, unchanged) -> None:
    # alice once approved and holds a live token, which is what DOT's approval_prompt=auto looks
    # for; her consent has since expired.
    flow.tokens()
    assert AccessToken.objects.filter(application=flow.client, expires__gt=timezone.now()).exists()
    Consent.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    Application.objects.filter(pk=flow.client.pk).update(skip_authorization=True)
    with unchanged():
        for params in [{}, {"approval_prompt": "auto"}, {"approval_prompt": "none"}, {"prompt": "consent"}]:
            assert _shows_page(flow, **params), params
        outcome = flow.browser.open(flow.url(Pkce.new(), prompt="none", state="s-none"))
        assert outcome.kind == "redirect" and outcome.params["error"] == "consent_required"


def test_expired_consent_is_asked_again(flow: Flow) -> None:
    flow.code()
    Consent.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _shows_page(flow)
    flow.code()
    assert Consent.objects.filter(expires_at__gt=timezone.now()).count() == 1
    assert not _shows_page(flow)


def test_revoked_consent_is_asked_again(flow: Flow) -> None:
    tokens = flow.tokens()
    consent = Consent.objects.get()
    summary = services.consent_revoke(
        consent_ids=[consent.pk], reason="pytest", actor=None, meta=RequestMeta(user_agent="pytest")
    )
    assert summary.consents == 1 and summary.access_tokens == 1
    assert not AccessToken.objects.filter(application=flow.client).exists()
    assert tokens["access_token"]
    assert _shows_page(flow)
