"""RFC 7591 registration: absent from the main server (DCR off, the default) and from its metadata;
on the onboarding server (DCR_ENABLED=true) a registration obeys the MCP application_type rules,
waits for approval (the MCP SDK registers, meets the awaiting-approval page, connects once a security
admin approved it), and can be read but not rewritten through RFC 7592."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest
from django.test import Client
from oauth2_provider.models import AccessToken, Application

from audit.models import AuditEvent, EventType
from consent.models import ClientApproval
from tests.clients import LOOPBACK_REDIRECT
from tests.consent.flows import ConsentBrowser
from tests.onboarding.conftest import Onboarding
from tests.onboarding.flows import NOTHING, AwaitingApproval, EmptyStorage, connect_and_call, issued_to

pytestmark = pytest.mark.django_db(transaction=True)

NATIVE = {
    "client_name": "CLI assistant",
    "application_type": "native",
    "redirect_uris": [LOOPBACK_REDIRECT],
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
}


def _register(server: str, body: Any) -> httpx.Response:
    return httpx.post(server + "/register", json=body, timeout=10)


def test_registration_is_off_by_default(server_url: str) -> None:
    before = Application.objects.count()
    assert _register(server_url, NATIVE).status_code == 404
    assert httpx.get(server_url + "/register/anything", timeout=10).status_code == 404
    meta = httpx.get(server_url + "/.well-known/oauth-authorization-server", timeout=10).json()
    assert "registration_endpoint" not in meta
    assert "client_id_metadata_document_supported" not in meta
    assert Application.objects.count() == before


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"application_type": "native", "redirect_uris": ["https://app.example/cb"]}, "invalid_redirect_uri"),
        ({"application_type": "web", "redirect_uris": [LOOPBACK_REDIRECT]}, "invalid_redirect_uri"),
        ({"application_type": None, "redirect_uris": [LOOPBACK_REDIRECT]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://app.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["com.example.app:/callback"]}, "invalid_redirect_uri"),
        ({"application_type": "desktop"}, "invalid_client_metadata"),
        ({"grant_types": ["client_credentials"]}, "invalid_client_metadata"),
        ({"grant_types": ["authorization_code", "password"]}, "invalid_client_metadata"),
        ({"response_types": ["token"]}, "invalid_client_metadata"),
    ],
)
def test_registration_rules(onboarding_server: Onboarding, change: dict[str, Any], error: str) -> None:
    body = {k: v for k, v in {**NATIVE, **change}.items() if v is not None}
    before = (Application.objects.count(), ClientApproval.objects.count(), AuditEvent.objects.count())
    response = _register(onboarding_server.url, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error and response.json()["error_description"]
    assert (Application.objects.count(), ClientApproval.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"redirect_uris": "http://127.0.0.1/cb"}'])
def test_malformed_registration(onboarding_server: Onboarding, body: bytes) -> None:
    before = Application.objects.count()
    response = httpx.post(
        onboarding_server.url + "/register", content=body, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 400 and response.json()["error"] in (
        "invalid_client_metadata",
        "invalid_redirect_uri",
    )
    assert "Traceback" not in response.text
    assert Application.objects.count() == before


def test_web_client_with_https_redirect_registers_pending(onboarding_server: Onboarding) -> None:
    body = {**NATIVE, "application_type": "web", "redirect_uris": ["https://assistant.example/callback"]}
    response = _register(onboarding_server.url, body)
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    data = response.json()
    assert data["application_type"] == "web"
    approval = ClientApproval.objects.get(application__client_id=data["client_id"])
    assert (approval.status, approval.source, approval.application_type) == ("pending", "dcr", "web")


def test_registration_waits_for_approval_then_connects(
    onboarding_server: Onboarding, okta_org: str, demo_policy: None, admin_http: Client
) -> None:
    storage = EmptyStorage()
    browser = ConsentBrowser("alice")
    with pytest.raises(AwaitingApproval) as refused:
        connect_and_call(onboarding_server.url, browser, storage)  # the SDK registers (RFC 7591)
    assert storage.client_info is not None
    client_id = storage.client_info.client_id
    assert refused.value.outcome.response.status_code == 403
    assert (
        'data-status="pending"' in refused.value.outcome.html and "Onboarding SDK client" in refused.value.outcome.html
    )
    approval = ClientApproval.objects.get(application__client_id=client_id)
    assert (approval.status, approval.source, approval.application_type) == ("pending", "dcr", "native")
    registered = AuditEvent.objects.get(event_type=EventType.CLIENT_REGISTERED, client_id=client_id)
    assert registered.details["application_type"] == "native"
    assert registered.details["redirect_uris"] == [LOOPBACK_REDIRECT]
    assert issued_to(client_id) == NOTHING

    response = admin_http.post(
        "/admin/oauth2_provider/application/",
        {"action": "approve_selected", "_selected_action": [str(approval.application_id)]},
    )
    assert response.status_code == 302
    out = connect_and_call(onboarding_server.url, browser, storage)
    browser.close()
    assert out["whoami"]["client_id"] == client_id
    assert 'data-approved-via="admin"' in browser.consent_pages[-1]
    assert Application.objects.filter(registration_source="dcr").count() == 1  # registered once


def test_registration_can_be_read_not_rewritten(onboarding_server: Onboarding) -> None:
    data = _register(onboarding_server.url, NATIVE).json()
    uri, token = data["registration_client_uri"], data["registration_access_token"]
    assert uri == f"{onboarding_server.url}/register/{data['client_id']}"
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(uri, headers=auth, timeout=10).json()["redirect_uris"] == [LOOPBACK_REDIRECT]
    rewrite = {**NATIVE, "redirect_uris": ["http://127.0.0.1:9/steal"]}
    assert httpx.put(uri, json=rewrite, headers=auth, timeout=10).status_code == 405
    assert httpx.delete(uri, headers=auth, timeout=10).status_code == 405
    app = Application.objects.get(client_id=data["client_id"])
    assert app.redirect_uris == LOOPBACK_REDIRECT
    # The registration token expires (DOT's default is the year 9999) and is no key to /mcp.
    registration_token = AccessToken.objects.get(application=app)
    assert (registration_token.expires - registration_token.created).total_seconds() <= 24 * 3600 + 5
    mcp = httpx.post(
        onboarding_server.url + "/mcp",
        headers={**auth, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        timeout=10,
    )
    assert mcp.status_code == 401


def test_too_many_waiting_clients(onboarding_server: Onboarding) -> None:
    from django.conf import settings

    apps = Application.objects.bulk_create(
        Application(
            client_id=f"waiting-{i}",
            name="w",
            client_type="public",
            redirect_uris=LOOPBACK_REDIRECT,
            authorization_grant_type="authorization-code",
            registration_source="dcr",
            algorithm="",
            client_secret="",
            hash_client_secret=False,
        )
        for i in range(settings.CLIENT_MAX_PENDING)
    )
    ClientApproval.objects.bulk_create(ClientApproval(application=a, source="dcr", status="pending") for a in apps)
    before = Application.objects.count()
    response = _register(onboarding_server.url, NATIVE)
    assert response.status_code == 503 and response.json()["error"] == "temporarily_unavailable"
    assert Application.objects.count() == before
