"""Onboarding by URL, end to end: the official MCP SDK client uses a metadata-document client_id
(served over https by the tests' document server), a person logs in at the sandbox IdP, and the
onboarding server (CIMD and DCR enabled) fetches, validates and then either accepts the client at
once (allowlisted host) or holds it: the person sees the awaiting-approval page and nothing is issued
until a security admin approves it in Django admin. A rejected client stays refused."""

from __future__ import annotations

import re
import uuid
from html import unescape
from typing import Any

import pytest
from django.test import Client
from oauth2_provider.models import Application, Grant

from audit.models import AuditEvent, EventType
from audit.services import RequestMeta
from consent import clients
from consent.models import ClientApproval
from tests.clients import LOOPBACK_REDIRECT
from tests.consent.flows import ConsentBrowser, Pkce, authorize_url
from tests.onboarding.conftest import Onboarding
from tests.onboarding.docserver import DocServer, client_document
from tests.onboarding.fetcher import TEST_HOST
from tests.onboarding.flows import NOTHING, AwaitingApproval, EmptyStorage, connect_and_call, issued_to

pytestmark = pytest.mark.django_db(transaction=True)


def _publish(doc_server: DocServer, name: str = "Vendor Assistant") -> str:
    path = f"/mcp-clients/{uuid.uuid4().hex}/client.json"
    url = doc_server.url(path)
    doc_server.publish(
        path, client_document(url, [LOOPBACK_REDIRECT], name=name), headers={"Cache-Control": "max-age=3600"}
    )
    return url


def _admin_action(admin_http: Client, action: str, application: Application) -> None:
    response = admin_http.post(
        "/admin/oauth2_provider/application/",
        {"action": action, "_selected_action": [str(application.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert any(m.endswith("client(s).") and not m.startswith(("Approved 0", "Rejected 0")) for m in messages), messages


def _text(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', html, re.DOTALL)
    assert match, f"no #{element_id}"
    return unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip()


def test_metadata_advertises_cimd(onboarding_server: Onboarding) -> None:
    import httpx2 as httpx

    meta = httpx.get(onboarding_server.url + "/.well-known/oauth-authorization-server", timeout=10).json()
    assert meta["client_id_metadata_document_supported"] is True
    assert meta["registration_endpoint"] == onboarding_server.url + "/register"


def test_allowlisted_host_connects_at_once(
    onboarding_server: Onboarding, doc_server: DocServer, okta_org: str, demo_policy: None, security_admin: Any
) -> None:
    clients.client_host_allow(
        host=TEST_HOST, note="test vendor", actor=security_admin, meta=RequestMeta(user_agent="pytest")
    )
    url = _publish(doc_server)
    browser = ConsentBrowser("alice")
    out = connect_and_call(onboarding_server.url, browser, EmptyStorage(), client_metadata_url=url)
    browser.close()

    assert out["whoami"]["client_id"] == url and out["whoami"]["login"] == "alice@acme.example"
    assert "get_user" in out["tools"]
    page = browser.consent_pages[0]
    assert "Vendor Assistant" in page
    assert _text(page, "client-domain") == TEST_HOST
    assert 'data-approved-via="allowlist"' in page and "trusted client domains" in _text(page, "client-approval")
    approval = ClientApproval.objects.get(application__client_id=url)
    assert approval.status == "approved" and approval.allowlisted and approval.source == "cimd"
    registered = AuditEvent.objects.get(event_type=EventType.CLIENT_REGISTERED, client_id=url)
    assert registered.details["status"] == "approved" and registered.reason == "host on the client allowlist"


def test_pending_client_waits_then_connects_after_admin_approval(
    onboarding_server: Onboarding, doc_server: DocServer, okta_org: str, demo_policy: None, admin_http: Client
) -> None:
    url = _publish(doc_server)
    storage = EmptyStorage()
    browser = ConsentBrowser("bob")
    with pytest.raises(AwaitingApproval) as refused:
        connect_and_call(onboarding_server.url, browser, storage, client_metadata_url=url)
    page = refused.value.outcome
    assert page.response.status_code == 403
    assert page.response.headers["X-Frame-Options"] == "DENY"
    html = page.html
    assert _text(html, "client-name") == "Vendor Assistant"
    assert _text(html, "client-domain") == TEST_HOST
    assert _text(html, "client-id") == url
    assert _text(html, "approval-contact") == "security@acme.example"
    assert 'data-status="pending"' in html and "Nothing was shared" in html
    assert not browser.consent_pages  # no consent page was shown
    # Nothing issued: no code, no token, no consent, no login session.
    assert issued_to(url) == NOTHING
    approval = ClientApproval.objects.get(application__client_id=url)
    assert approval.status == "pending" and approval.domain == TEST_HOST
    denied = AuditEvent.objects.get(event_type=EventType.AUTHORIZATION_DENIED, client_id=url)
    assert denied.reason == "client_not_approved" and denied.actor_login == "bob@acme.example"
    assert AuditEvent.objects.filter(event_type=EventType.CLIENT_REGISTERED, client_id=url).count() == 1

    # A security admin approves it in Django admin; the same client (same storage) connects.
    _admin_action(admin_http, "approve_selected", approval.application)
    out = connect_and_call(onboarding_server.url, browser, storage, client_metadata_url=url)
    browser.close()
    assert out["whoami"]["client_id"] == url and out["whoami"]["login"] == "bob@acme.example"
    page_html = browser.consent_pages[-1]
    assert 'data-approved-via="admin"' in page_html and "secadmin" in _text(page_html, "client-approval")
    decision = AuditEvent.objects.get(event_type=EventType.CLIENT_CHANGED, client_id=url)
    assert decision.actor_login == "secadmin" and decision.details["status"] == "approved"
    assert issued_to(url)["consents"] == 1


def test_rejected_client_is_refused(
    onboarding_server: Onboarding, doc_server: DocServer, okta_org: str, demo_policy: None, admin_http: Client
) -> None:
    url = _publish(doc_server, name="Unwanted Assistant")
    storage = EmptyStorage()
    browser = ConsentBrowser("alice")
    with pytest.raises(AwaitingApproval):
        connect_and_call(onboarding_server.url, browser, storage, client_metadata_url=url)
    _admin_action(admin_http, "reject_selected", Application.objects.get(client_id=url))
    with pytest.raises(AwaitingApproval) as refused:
        connect_and_call(onboarding_server.url, browser, storage, client_metadata_url=url)
    browser.close()
    page = refused.value.outcome
    assert page.response.status_code == 403 and 'data-status="rejected"' in page.html
    assert "may not connect" in page.html
    assert issued_to(url) == NOTHING
    assert ClientApproval.objects.get(application__client_id=url).status == "rejected"


def test_consent_form_cannot_be_replayed_for_a_pending_client(
    onboarding_server: Onboarding, doc_server: DocServer, okta_org: str, demo_policy: None, public_client: Any
) -> None:
    """The consent form of an approved client, posted with a waiting client's id: the validator
    refuses the client, so no code and no consent exist afterwards."""
    url = _publish(doc_server)
    browser = ConsentBrowser("alice")
    first = browser.open(authorize_url(onboarding_server.url, client_id=url, pkce=Pkce.new()))
    assert first.kind == "page" and first.response.status_code == 403
    consent_page = browser.open(
        authorize_url(onboarding_server.url, client_id=public_client.client_id, pkce=Pkce.new())
    )
    assert consent_page.kind == "consent"
    forged = browser.decide(consent_page, override={"client_id": url})
    browser.close()
    assert forged.kind == "page" and "code=" not in forged.location
    assert issued_to(url) == NOTHING
    assert not Grant.objects.exists()


def test_a_document_that_is_not_valid_registers_nothing(
    onboarding_server: Onboarding, doc_server: DocServer, okta_org: str
) -> None:
    """Its client_id names another URL, and it lists a plain-http redirect: the person gets the
    ordinary invalid-client error, and no client exists."""
    path = f"/mcp-clients/{uuid.uuid4().hex}/client.json"
    url = doc_server.url(path)
    doc_server.publish(path, client_document("https://elsewhere.example/client.json", [LOOPBACK_REDIRECT]))
    bad_uri_path = f"/mcp-clients/{uuid.uuid4().hex}/client.json"
    bad_uri = doc_server.url(bad_uri_path)
    doc_server.publish(bad_uri_path, client_document(bad_uri, ["http://app.example/cb"]))
    browser = ConsentBrowser("alice")
    for client_id in (url, bad_uri):
        outcome = browser.open(authorize_url(onboarding_server.url, client_id=client_id, pkce=Pkce.new()))
        assert outcome.kind == "page" and outcome.response.status_code == 400
        assert "awaiting" not in outcome.html.lower()
    browser.close()
    assert not Application.objects.filter(client_id__in=[url, bad_uri]).exists()
    assert not ClientApproval.objects.exists()


def test_redirect_uri_must_be_listed_in_the_document(
    onboarding_server: Onboarding, doc_server: DocServer, okta_org: str, security_admin: Any
) -> None:
    clients.client_host_allow(host=TEST_HOST, note="", actor=security_admin, meta=RequestMeta(user_agent="pytest"))
    url = _publish(doc_server)
    browser = ConsentBrowser("alice")
    # (A loopback redirect may use any port, RFC 8252 §7.3: the path and host must match.)
    for other in ("http://127.0.0.1:33418/elsewhere", "https://attacker.example/callback"):
        outcome = browser.open(
            authorize_url(onboarding_server.url, client_id=url, pkce=Pkce.new(), redirect_uri=other), redirect_uri=other
        )
        assert outcome.kind == "page" and outcome.response.status_code == 400  # shown here, never redirected
    browser.close()
    assert issued_to(url) == NOTHING
