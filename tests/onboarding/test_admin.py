"""The client admin: the "how to connect" panel, a confidential client's secret shown exactly once,
writes audited through consent.clients, the allowlist admin, and what is not possible (deleting a
client, typing a secret, editing what a metadata document decides)."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.test import Client
from oauth2_provider.models import Application

from audit.models import AuditEvent, EventType
from audit.services import RequestMeta
from consent import clients
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
    assert registered.actor_login == "secadmin" and registered.details["confidential"] is True
    assert registered.details["fields"]["redirect_uris"] == "https://agent.acme.example/callback"
    approval = ClientApproval.objects.get(application=app)
    assert (approval.status, approval.source, approval.decided_by.username) == ("approved", "static", "secadmin")


def test_public_client_gets_no_secret(admin_http: Client) -> None:
    html = _add(admin_http, "public").content.decode()
    assert 'id="client-secret-once"' not in html
    assert Application.objects.get(client_id="acme-agent").client_secret == ""


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


def test_unsafe_redirect_still_refused_and_nothing_changes(admin_http: Client, public_client: Application) -> None:
    before = AuditEvent.objects.count()
    response = _add(admin_http, "public", redirect_uris="http://agent.acme.example/callback")
    assert response.context["adminform"].form.errors.get("redirect_uris")
    assert not Application.objects.filter(client_id="acme-agent").exists()
    assert AuditEvent.objects.count() == before


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
