"""The client admin: the "how to connect" panel, a confidential client's secret shown exactly once,
a new client registered by consent.services.client_register (the admin writes exactly what the
service writes, and shows its refusals on the form), changes audited through consent.clients, the
allowlist admin, and what is not possible (deleting a client, typing a secret, editing what a
metadata document decides)."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.hashers import check_password
from django.test import Client
from oauth2_provider.models import Application

from audit.models import AuditEvent, EventType
from audit.services import RequestMeta
from consent import clients, services
from consent.models import AllowedClientHost, ClientApproval
from tests.clients import LOOPBACK_REDIRECT

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/oauth2_provider/application/"


def _pre(html: str, element_id: str) -> str:
    match = re.search(rf'<pre id="{element_id}">(.*?)</pre>', html, re.DOTALL)
    assert match, f"no #{element_id}"
    return unescape(match.group(1))


def test_how_to_connect_panel(admin_http: Client, public_client: Application) -> None:
    html = admin_http.get(f"{CHANGELIST}{public_client.pk}/change/").content.decode()
    url = settings.MCP_RESOURCE
    assert f'<code id="mcp-url">{url}</code>' in html
    assert json.loads(_pre(html, "config-vscode")) == {"servers": {"okta": {"type": "http", "url": url}}}
    assert _pre(html, "config-claude") == f"claude mcp add --transport http okta {url}"
    assert json.loads(_pre(html, "config-cursor")) == {"mcpServers": {"okta": {"url": url}}}
    assert _pre(html, "config-inspector") == (
        f"npx @modelcontextprotocol/inspector --cli {url} --transport http --client-id {public_client.client_id} "
        f"--callback-url {LOOPBACK_REDIRECT} --method tools/list"
    )
    assert 'id="connect-not-approved"' not in html


def test_panel_warns_while_a_client_waits(admin_http: Client) -> None:
    app = Application.objects.create(
        client_id="https://tools.vendor.example/client.json",
        name="Vendor",
        client_type="public",
        authorization_grant_type="authorization-code",
        redirect_uris=LOOPBACK_REDIRECT,
        registration_source="cimd",
        algorithm="",
    )
    clients.client_gate(application=app, meta=RequestMeta())
    html = admin_http.get(f"{CHANGELIST}{app.pk}/change/").content.decode()
    assert 'id="connect-not-approved"' in html and 'data-status="pending"' in html
    # What the metadata document decides is shown, not editable.
    assert 'name="redirect_uris"' not in html and 'name="client_id"' not in html
    listing = admin_http.get(CHANGELIST + "?approval=pending").content.decode()
    assert "tools.vendor.example" in listing and "1 client(s) await approval." in listing


def _add(admin_http: Client, client_type: str, **extra: str) -> Any:
    return admin_http.post(
        CHANGELIST + "add/",
        {
            "client_id": "acme-agent",
            "name": "Acme agent",
            "redirect_uris": "https://agent.acme.example/callback",
            "post_logout_redirect_uris": "",
            "allowed_origins": "",
            "client_type": client_type,
            "authorization_grant_type": "authorization-code",
            "algorithm": "",
            **extra,
        },
        follow=True,
    )


def test_confidential_secret_is_shown_once(admin_http: Client) -> None:
    form = admin_http.get(CHANGELIST + "add/").content.decode()
    assert 'name="client_secret"' not in form and 'name="hash_client_secret"' not in form

    response = _add(admin_http, "confidential", client_secret="typed-by-admin")
    html = response.content.decode()
    match = re.search(r'<code id="client-secret-once">([^<]+)</code>', html)
    assert match, "the secret was not shown"
    secret = match.group(1)
    app = Application.objects.get(client_id="acme-agent")
    assert secret != "typed-by-admin" and len(secret) >= 32
    assert app.client_secret != secret and check_password(secret, app.client_secret)
    # Never again: not on the next page, not on the client's page, not in the audit trail.
    for page in (CHANGELIST, f"{CHANGELIST}{app.pk}/change/"):
        assert secret not in admin_http.get(page).content.decode()
    assert secret not in json.dumps(list(AuditEvent.objects.values("details", "reason")))
    registered = AuditEvent.objects.get(event_type=EventType.CLIENT_REGISTERED, client_id="acme-agent")
    assert registered.actor_login == "secadmin" and registered.details == {
        "name": "Acme agent",
        "redirect_uris": ["https://agent.acme.example/callback"],
        "confidential": True,
    }
    # A static registration: approved by being created, no decision row to wait on.
    assert not ClientApproval.objects.filter(application=app).exists()
    assert clients.client_standing(app).status == "approved"


def test_public_client_gets_no_secret(admin_http: Client) -> None:
    html = _add(admin_http, "public").content.decode()
    assert 'id="client-secret-once"' not in html
    app = Application.objects.get(client_id="acme-agent")
    assert app.client_type == Application.CLIENT_PUBLIC
    assert AuditEvent.objects.get(event_type=EventType.CLIENT_REGISTERED).details["confidential"] is False


def _rows() -> dict[str, int]:
    return {
        "clients": Application.objects.count(),
        "audit": AuditEvent.objects.count(),
        "approvals": ClientApproval.objects.count(),
        "admin_log": LogEntry.objects.count(),
    }


def _stored(client_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A client's row and its client.registered audit row, minus what differs between any two
    registrations (keys, times, the request that made it)."""
    app = Application.objects.filter(client_id=client_id).values().get()
    for key in ("id", "client_id", "client_secret", "created", "updated"):
        app.pop(key)
    row = AuditEvent.objects.filter(event_type=EventType.CLIENT_REGISTERED, client_id=client_id).values().get()
    assert row["target"] == f"client:{client_id}"
    kept = ("event_type", "actor_user_id", "actor_login", "decision", "reason", "outcome", "error_code", "details")
    return app, {key: row[key] for key in kept}


def test_add_form_asks_only_what_the_service_takes(admin_http: Client) -> None:
    form = admin_http.get(CHANGELIST + "add/").context["adminform"].form
    assert list(form.fields) == ["client_id", "name", "client_type", "redirect_uris"]


@pytest.mark.parametrize("client_type", ["public", "confidential"])
def test_admin_add_writes_exactly_what_the_service_writes(
    admin_http: Client, security_admin: Any, client_type: str
) -> None:
    before = _rows()
    # Fields the add form does not have are ignored, whatever is posted: the service decides them.
    response = _add(
        admin_http,
        client_type,
        redirect_uris=f"https://agent.acme.example/callback\r\n{LOOPBACK_REDIRECT}",
        skip_authorization="on",
        authorization_grant_type="client-credentials",
        algorithm="HS256",
    )
    assert response.redirect_chain and response.redirect_chain[-1][0] == CHANGELIST
    # One client and its client.registered row; the admin's own history entry; nothing else.
    assert _rows() == {**before, "clients": before["clients"] + 1, "audit": before["audit"] + 1,
                       "admin_log": before["admin_log"] + 1}  # fmt: skip

    _, direct_secret = services.client_register(
        name="Acme agent",
        client_id="acme-agent-direct",
        redirect_uris=["https://agent.acme.example/callback", LOOPBACK_REDIRECT],
        confidential=client_type == "confidential",
        actor=security_admin,
        meta=RequestMeta(),
    )
    assert _stored("acme-agent") == _stored("acme-agent-direct")
    admin_app = Application.objects.get(client_id="acme-agent")
    assert not admin_app.skip_authorization and admin_app.authorization_grant_type == "authorization-code"
    assert admin_app.redirect_uris == f"https://agent.acme.example/callback {LOOPBACK_REDIRECT}"
    if client_type == "confidential":
        shown = re.search(r'<code id="client-secret-once">([^<]+)</code>', response.content.decode()).group(1)
        assert check_password(shown, admin_app.client_secret)
        assert check_password(direct_secret, Application.objects.get(client_id="acme-agent-direct").client_secret)
    else:
        assert direct_secret is None and 'id="client-secret-once"' not in response.content.decode()


@pytest.mark.parametrize(
    "redirect_uris",
    [
        "http://agent.acme.example/callback",  # plain http to a real host
        f"{LOOPBACK_REDIRECT} http://127.0.0.1.nip.io/callback",  # one bad among good ones
    ],
)
def test_unsafe_redirect_is_the_services_form_error_and_changes_nothing(
    admin_http: Client, public_client: Application, redirect_uris: str
) -> None:
    before = _rows()
    response = _add(admin_http, "confidential", redirect_uris=redirect_uris)
    assert response.status_code == 200 and not response.redirect_chain
    errors = response.context["adminform"].form.non_field_errors()
    assert errors == [f"redirect URIs must be https or loopback http: {redirect_uris.split()[-1]}"]
    assert errors[0] in unescape(response.content.decode())
    assert 'id="client-secret-once"' not in response.content.decode()
    assert not Application.objects.filter(client_id="acme-agent").exists()
    assert _rows() == before


def test_changes_are_audited(admin_http: Client, public_client: Application) -> None:
    page = admin_http.get(f"{CHANGELIST}{public_client.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() or "" for name in form.fields}
    data.update({"name": "Renamed client", "redirect_uris": f"{LOOPBACK_REDIRECT} https://new.example/cb"})
    data = {k: v for k, v in data.items() if v is not False}
    response = admin_http.post(f"{CHANGELIST}{public_client.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    changed = AuditEvent.objects.get(event_type=EventType.CLIENT_CHANGED, client_id=public_client.client_id)
    assert changed.details["changes"]["name"] == {"from": "Test MCP client", "to": "Renamed client"}
    assert set(changed.details["changes"]) == {"name", "redirect_uris"}


def test_clients_are_rejected_not_deleted(admin_http: Client, public_client: Application) -> None:
    listing = admin_http.get(CHANGELIST)
    assert "delete_selected" not in listing.content.decode()
    assert admin_http.get(f"{CHANGELIST}{public_client.pk}/delete/").status_code == 403
    response = admin_http.post(CHANGELIST, {"action": "reject_selected", "_selected_action": [str(public_client.pk)]})
    assert response.status_code == 302
    assert ClientApproval.objects.get(application=public_client).status == "rejected"
    assert not clients.client_gate(application=public_client, meta=RequestMeta())


def test_allowlist_admin(admin_http: Client) -> None:
    url = "/admin/consent/allowedclienthost/"
    bad = admin_http.post(url + "add/", {"host": "*", "note": ""})
    assert bad.status_code == 200 and bad.context["adminform"].form.errors.get("host")
    assert not AllowedClientHost.objects.exists() and not AuditEvent.objects.exists()

    assert admin_http.post(url + "add/", {"host": ".Partner.Example", "note": "signed contract"}).status_code == 302
    entry = AllowedClientHost.objects.get()
    assert entry.host == ".partner.example" and entry.added_by.username == "secadmin"
    added = AuditEvent.objects.get(event_type=EventType.POLICY_CHANGED)
    assert added.details == {"host": ".partner.example", "note": "signed contract"}
    assert clients.client_host_allowlisted("mcp.partner.example")

    assert (
        admin_http.post(
            url, {"action": "delete_selected", "_selected_action": [str(entry.pk)], "post": "yes"}
        ).status_code
        == 302
    )
    assert not AllowedClientHost.objects.exists()
    assert [e.reason for e in AuditEvent.objects.filter(event_type=EventType.POLICY_CHANGED).order_by("id")] == [
        "host added to the client allowlist",
        "host removed from the client allowlist",
    ]
    assert not clients.client_host_allowlisted("mcp.partner.example")


def test_secret_can_be_replaced_and_is_shown_once(admin_http: Client) -> None:
    _add(admin_http, "confidential")
    app = Application.objects.get(client_id="acme-agent")
    old_hash = app.client_secret
    response = admin_http.post(CHANGELIST, {"action": "replace_secret", "_selected_action": [str(app.pk)]}, follow=True)
    secret = re.search(r'<code id="client-secret-once">([^<]+)</code>', response.content.decode()).group(1)
    app.refresh_from_db()
    assert app.client_secret != old_hash and check_password(secret, app.client_secret)
    assert secret not in admin_http.get(CHANGELIST).content.decode()
    replaced = AuditEvent.objects.get(event_type=EventType.CLIENT_CHANGED, client_id="acme-agent")
    assert replaced.details == {"credential": "replaced"} and replaced.actor_login == "secadmin"


def test_public_clients_have_no_secret_to_replace(admin_http: Client, public_client: Application) -> None:
    before = AuditEvent.objects.count()
    response = admin_http.post(
        CHANGELIST, {"action": "replace_secret", "_selected_action": [str(public_client.pk)]}, follow=True
    )
    assert "public client: it has no secret" in response.content.decode()
    assert AuditEvent.objects.count() == before
