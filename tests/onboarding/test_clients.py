"""consent.clients: the gate every OAuth flow passes, the decisions, the allowlist, the RFC 7591
metadata rules and the cleanup, each with its audit row; bad input changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application

from audit.models import AuditEvent, EventType
from audit.services import RequestMeta
from consent import clients
from consent.models import AllowedClientHost, ClientApproval, Consent
from consent.services import ConsentError, consent_grant
from tests.clients import LOOPBACK_REDIRECT

pytestmark = pytest.mark.django_db
META = RequestMeta(user_agent="pytest")


def _app(client_id: str, source: str, redirect_uris: str = LOOPBACK_REDIRECT) -> Application:
    return Application.objects.create(
        client_id=client_id,
        name=f"client {client_id[-8:]}",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=redirect_uris,
        registration_source=source,
        algorithm="",
        client_secret="",
        hash_client_secret=False,
    )


def _events(event_type: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_type=event_type).order_by("id"))


def test_static_clients_pass_without_a_row(public_client: Application) -> None:
    assert clients.client_gate(application=public_client, meta=META)
    assert not ClientApproval.objects.exists() and not AuditEvent.objects.exists()


def test_metadata_document_client_waits_unless_allowlisted(security_admin: Any) -> None:
    waiting = _app("https://tools.vendor.example/mcp/client.json", "cimd")
    assert not clients.client_gate(application=waiting, meta=META)
    approval = ClientApproval.objects.get(application=waiting)
    assert (approval.status, approval.source, approval.domain, approval.allowlisted) == (
        "pending",
        "cimd",
        "tools.vendor.example",
        False,
    )
    [registered] = _events(EventType.CLIENT_REGISTERED)
    assert registered.client_id == waiting.client_id and registered.details["status"] == "pending"
    assert registered.details["redirect_uris"] == [LOOPBACK_REDIRECT]
    # Asking again records nothing new.
    assert not clients.client_gate(application=waiting, meta=META)
    assert len(_events(EventType.CLIENT_REGISTERED)) == 1

    clients.client_host_allow(host=".trusted.example", note="our vendor", actor=security_admin, meta=META)
    trusted = _app("https://mcp.trusted.example/client.json", "cimd")
    assert clients.client_gate(application=trusted, meta=META)
    approval = ClientApproval.objects.get(application=trusted)
    assert approval.status == "approved" and approval.allowlisted and approval.decided_by is None
    assert clients.client_standing(trusted).approved_via == "allowlist"


def test_allowlist_setting_counts_too() -> None:
    with override_settings(OAUTH2_PROVIDER={**_oauth2(), "CIMD_ALLOWED_HOSTS": ["apps.partner.example"]}):
        assert clients.client_host_allowlisted("apps.partner.example")
        assert not clients.client_host_allowlisted("evil.partner.example")
    with override_settings(OAUTH2_PROVIDER={**_oauth2(), "CIMD_ALLOWED_HOSTS": ["*"]}):
        assert not clients.client_host_allowlisted("anything.example")


def _oauth2() -> dict[str, Any]:
    from django.conf import settings

    return dict(settings.OAUTH2_PROVIDER)


def test_allowlist_follows_its_entries(security_admin: Any) -> None:
    """A waiting client is approved once its host is allowlisted, and goes back to pending when the
    host is removed; both changes are audited."""
    app = _app("https://mcp.vendor.example/client.json", "cimd")
    assert not clients.client_gate(application=app, meta=META)
    entry = clients.client_host_allow(host="MCP.Vendor.Example", note="", actor=security_admin, meta=META)
    assert entry.host == "mcp.vendor.example"
    assert clients.client_gate(application=app, meta=META)
    consent = consent_grant(user=security_admin, application=app, scopes=frozenset({"mcp.read"}), tools=[],
                            redirect_uri=LOOPBACK_REDIRECT, meta=META)
    # Removing the host cuts its clients off at once: pending again, consent revoked.
    clients.client_host_disallow(entry=entry, actor=security_admin, meta=META)
    consent.refresh_from_db()
    assert consent.revoked_at is not None
    assert ClientApproval.objects.get(application=app).status == "pending"
    assert not clients.client_gate(application=app, meta=META)
    changes = _events(EventType.CLIENT_CHANGED)
    assert [e.reason for e in changes] == ["host added to the client allowlist", "host no longer on the client allowlist"]
    assert changes[1].actor_login == "secadmin"
    policy = _events(EventType.POLICY_CHANGED)
    assert [e.target for e in policy] == ["client_allowlist:mcp.vendor.example"] * 2
    assert policy[0].actor_login == "secadmin"


@pytest.mark.parametrize(
    "bad", ["", "*", ".", "localhost", "exa mple.com", "-bad.example", "a..example", "http://x.example"]
)
def test_allowlist_refuses_what_is_not_a_host(security_admin: Any, bad: str) -> None:
    with pytest.raises(ConsentError):
        clients.client_host_allow(host=bad, note="", actor=security_admin, meta=META)
    assert not AllowedClientHost.objects.exists() and not AuditEvent.objects.exists()


def test_admin_approval_holds_until_the_document_changes_its_redirect_uris(security_admin: Any) -> None:
    app = _app("https://tools.vendor.example/client.json", "cimd")
    clients.client_gate(application=app, meta=META)
    assert clients.client_approve(applications=[app], actor=security_admin, meta=META) == 1
    assert clients.client_gate(application=app, meta=META)
    assert clients.client_standing(app).approved_via == "admin"
    assert clients.client_standing(app).decided_by == "secadmin"
    consent = consent_grant(user=security_admin, application=app, scopes=frozenset({"mcp.read"}), tools=[],
                            redirect_uri=LOOPBACK_REDIRECT, meta=META)
    # The document, re-fetched by DOT when its cache expires, now sends users somewhere else.
    Application.objects.filter(pk=app.pk).update(redirect_uris="https://elsewhere.example/cb")
    app.refresh_from_db()
    assert not clients.client_gate(application=app, meta=META)
    consent.refresh_from_db()
    assert consent.revoked_at is not None
    changed = _events(EventType.CLIENT_CHANGED)[-1]
    assert changed.details["before"]["redirect_uris"] == [LOOPBACK_REDIRECT]
    assert changed.details["redirect_uris"] == ["https://elsewhere.example/cb"]
    assert ClientApproval.objects.get(application=app).status == "pending"


def test_reject_revokes_what_the_client_holds(security_admin: Any, public_client: Application) -> None:
    consent = consent_grant(
        user=security_admin,
        application=public_client,
        scopes=frozenset({"mcp.read"}),
        tools=[],
        redirect_uri=LOOPBACK_REDIRECT,
        meta=META,
    )
    AccessToken.objects.create(
        user=security_admin,
        application=public_client,
        token="t" * 40,
        expires=timezone.now() + timedelta(hours=1),
        scope="mcp.read",
    )
    assert clients.client_reject(applications=[public_client], actor=security_admin, meta=META) == 1
    assert not clients.client_gate(application=public_client, meta=META)
    consent.refresh_from_db()
    assert consent.revoked_at is not None and not AccessToken.objects.exists()
    decision = _events(EventType.CLIENT_CHANGED)[-1]
    assert decision.details["status"] == "rejected" and decision.decision == "denied"
    assert decision.actor_login == "secadmin"
    # Twice is a no-op.
    assert clients.client_reject(applications=[public_client], actor=security_admin, meta=META) == 0


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({"application_type": "native", "redirect_uris": ["https://app.example/cb"]}, "invalid_redirect_uri"),
        ({"application_type": "web", "redirect_uris": [LOOPBACK_REDIRECT]}, "invalid_redirect_uri"),
        ({"redirect_uris": [LOOPBACK_REDIRECT]}, "invalid_redirect_uri"),  # absent means web
        ({"application_type": "web", "redirect_uris": ["https://localhost/cb"]}, "invalid_redirect_uri"),
        ({"application_type": "native", "redirect_uris": ["com.example.app:/cb"]}, "invalid_redirect_uri"),
        ({"application_type": "native", "redirect_uris": ["http://app.example/cb"]}, "invalid_redirect_uri"),
        ({"application_type": "service", "redirect_uris": [LOOPBACK_REDIRECT]}, "invalid_client_metadata"),
        ({"application_type": "native", "redirect_uris": []}, "invalid_redirect_uri"),
    ],
)
def test_application_type_rules(metadata: dict[str, Any], error: str) -> None:
    with pytest.raises(clients.ClientMetadataError) as caught:
        clients.client_metadata_check(metadata=metadata)
    assert caught.value.error == error


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (
            {
                "application_type": "native",
                "redirect_uris": [LOOPBACK_REDIRECT, "http://localhost:7/cb", "http://[::1]:9/"],
            },
            "native",
        ),
        ({"application_type": "web", "redirect_uris": ["https://app.example/cb"]}, "web"),
        ({"redirect_uris": ["https://app.example/cb"]}, "web"),
    ],
)
def test_application_type_accepted(metadata: dict[str, Any], expected: str) -> None:
    assert clients.client_metadata_check(metadata=metadata) == expected


def test_clear_expired_removes_rejected_and_stale_pending_clients(
    security_admin: Any, public_client: Application
) -> None:
    fresh = _app("https://fresh.example/c.json", "cimd")
    stale = _app("https://stale.example/c.json", "cimd")
    rejected = _app("rejected-dcr", "dcr")
    used = _app("https://used.example/c.json", "cimd")
    for app in (fresh, stale, rejected, used):
        clients.client_gate(application=app, meta=META)
    ClientApproval.objects.filter(application=stale).update(created_at=timezone.now() - timedelta(days=8))
    clients.client_approve(applications=[used], actor=security_admin, meta=META)
    consent_grant(
        user=security_admin,
        application=used,
        scopes=frozenset({"mcp.read"}),
        tools=[],
        redirect_uri=LOOPBACK_REDIRECT,
        meta=META,
    )
    clients.client_reject(applications=[rejected, used], actor=security_admin, meta=META)
    clients.client_reject(applications=[public_client], actor=security_admin, meta=META)

    call_command("clear_expired", stdout=open("/dev/null", "w"))  # noqa: SIM115
    remaining = set(Application.objects.values_list("client_id", flat=True))
    # Static clients and clients with history stay; so does a client that has not waited long.
    assert remaining == {public_client.client_id, fresh.client_id, used.client_id}
    removed = [e for e in _events(EventType.CLIENT_CHANGED) if e.details.get("removed")]
    assert sorted(e.client_id for e in removed) == sorted([stale.client_id, rejected.client_id])
    assert Consent.objects.filter(application=used).exists()
    assert clients.clients_clear_stale(meta=META) == 0


def test_clear_expired_reports_removed_clients() -> None:
    import io

    stale = _app("https://stale.example/c.json", "cimd")
    clients.client_gate(application=stale, meta=META)
    ClientApproval.objects.filter(application=stale).update(created_at=timezone.now() - timedelta(days=8))
    out = io.StringIO()
    call_command("clear_expired", stdout=out)
    assert "removed 1 rejected or stale pending client(s)" in out.getvalue()
    assert not Application.objects.filter(pk=stale.pk).exists()
