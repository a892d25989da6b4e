"""What a security admin does in Django admin, clicked through in a real browser: register a client,
map an Okta group to a role and grant it tools, check the effective access, revoke a consent, and
filter and export the audit trail. Each step is checked in the database and, where it matters, on
the wire (a revoked token stops working at /mcp). Screenshots go to test-artifacts/screenshots/.

Keep `page` the last fixture of each test: the browser must start after the database fixtures."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx2 as httpx
import pytest
from oauth2_provider.models import Application

from audit.models import AuditEvent
from consent.models import Consent
from tests.browser.conftest import orm, screenshot, serve_static_files
from tests.conformance.oauth_flow import obtain_tokens
from tools.models import GroupMapping, Role

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN = ("secadmin", "correct horse battery staple 42")


@pytest.fixture
def superuser(db: None) -> Any:
    from accounts.models import User

    return orm(
        lambda: User.objects.create_superuser(username=ADMIN[0], email="secadmin@acme.example", password=ADMIN[1])
    )


def _admin_login(page: Any, server_url: str, path: str = "/admin/") -> None:
    serve_static_files(page, server_url)
    page.goto(f"{server_url}/admin/login/?next={path}")
    page.fill("#id_username", ADMIN[0])
    page.fill("#id_password", ADMIN[1])
    page.click("input[type=submit]")
    page.wait_for_url(f"{server_url}{path}")


def _choose(page: Any, field: str, value: str) -> None:
    """A choice field, whichever widget the admin gives it (select or radio buttons)."""
    if page.locator(f"select#id_{field}").count():
        page.select_option(f"#id_{field}", value)
    else:
        page.check(f"input[name={field}][value='{value}']")


def _messages(page: Any) -> list[str]:
    return page.locator("ul.messagelist li").all_inner_texts()


def _policy_events(actor: str) -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(event_type="policy.changed", actor_login=actor)
        .order_by("id")
        .values_list("target", "reason")
    )


def _mcp_initialize(server_url: str, token: str) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"},
        },
    }
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    return httpx.post(server_url + "/mcp", json=body, headers=headers, timeout=30)


def test_admin_registers_a_client(server_url: str, superuser: Any, page: Any) -> None:
    _admin_login(page, server_url, "/admin/oauth2_provider/application/add/")
    client_id = page.input_value("#id_client_id")
    assert len(client_id) >= 20  # generated, not typed
    page.fill("#id_name", "Claude Desktop")
    page.fill("#id_redirect_uris", "http://127.0.0.1:6274/oauth/callback")
    _choose(page, "client_type", "public")
    # Only what consent.services.client_register takes: the grant type and consent screen are its own.
    assert page.locator("[name=authorization_grant_type], [name=skip_authorization]").count() == 0
    screenshot(page, "admin-client-add")
    page.click("input[name=_save]")
    page.wait_for_url(f"{server_url}/admin/oauth2_provider/application/")
    assert any("Claude Desktop" in m for m in _messages(page))
    screenshot(page, "admin-client-list")

    app = orm(lambda: Application.objects.get(client_id=client_id))
    assert (app.name, app.client_type, app.authorization_grant_type) == (
        "Claude Desktop",
        "public",
        "authorization-code",
    )
    assert app.redirect_uris == "http://127.0.0.1:6274/oauth/callback" and not app.skip_authorization


def test_admin_maps_a_group_to_a_role_grants_tools_and_sees_effective_access(
    server_url: str, superuser: Any, page: Any
) -> None:
    _admin_login(page, server_url, "/admin/tools/role/add/")
    page.fill("#id_name", "auditors")
    page.fill("#id_description", "Read-only access for the audit team")
    page.check("input[name=tools][value=get_user]")
    page.check("input[name=tools][value=whoami]")
    page.fill("#id_group_mappings-0-group_name", "Auditors")
    screenshot(page, "admin-role-add")
    page.click("input[name=_save]")
    page.wait_for_url(f"{server_url}/admin/tools/role/")
    assert any("auditors" in m for m in _messages(page))

    role = orm(lambda: Role.objects.get(name="auditors"))
    assert sorted(role.tools) == ["get_user", "whoami"]
    assert orm(lambda: list(GroupMapping.objects.filter(role=role).values_list("group_name", flat=True))) == [
        "Auditors"
    ]
    changes = orm(lambda: _policy_events(ADMIN[0]))
    assert ("role:auditors", "role created") in changes and ("role:auditors", "mapping created") in changes

    if page.locator("#effective-access-link").count() == 0:
        pytest.skip("the effective-access admin view is not installed")
    page.click("#effective-access-link")
    page.fill("#id_groups", "Auditors, Contractors")
    page.click("#effective-access-form input[type=submit]")
    result = page.locator("#effective-access-result")
    assert result.locator("#roles").inner_text() == "auditors"
    rows = result.locator("#tools tbody tr")
    assert [rows.nth(i).get_attribute("data-tool") for i in range(rows.count())] == ["get_user", "whoami"]
    assert all(rows.nth(i).get_attribute("data-callable") == "yes" for i in range(rows.count()))
    screenshot(page, "admin-effective-access")


def test_admin_revokes_a_consent_and_its_token_stops_working(
    server_url: str, okta_org: str, public_client: Any, demo_policy: None, superuser: Any, page: Any
) -> None:
    token = obtain_tokens(server_url, public_client.client_id, user="bob")["access_token"]
    assert _mcp_initialize(server_url, token).status_code == 200

    _admin_login(page, server_url, "/admin/consent/consent/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and "bob@acme.example" in rows.first.inner_text()
    rows.first.locator("input.action-select").check()
    page.select_option("select[name=action]", "revoke_selected")
    page.click("button[name=index]")
    page.wait_for_load_state("load")
    assert _messages(page), "no confirmation message after the action"
    page.goto(f"{server_url}/admin/consent/consent/?status=revoked")
    assert page.locator("#result_list tbody tr").count() == 1
    screenshot(page, "admin-consent-revoked")

    consent = orm(lambda: Consent.objects.get(application=public_client))
    assert consent.status == "revoked" and consent.revoked_at is not None
    refused = _mcp_initialize(server_url, token)
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert orm(lambda: AuditEvent.objects.filter(event_type="consent.revoked", actor_login=ADMIN[0]).exists())


def test_admin_filters_and_exports_the_audit_trail(
    server_url: str, okta_org: str, public_client: Any, demo_policy: None, superuser: Any, page: Any
) -> None:
    obtain_tokens(server_url, public_client.client_id, user="alice")
    _admin_login(page, server_url, "/admin/audit/auditevent/")
    page.locator("#changelist-filter a", has_text="Consent granted").first.click()
    page.wait_for_url("**event_type__exact=consent.granted**")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and "alice@acme.example" in rows.first.inner_text()
    screenshot(page, "admin-audit-filtered")

    page.check("#action-toggle")
    page.select_option("select[name=action]", "export_csv")
    with page.expect_download() as download_info:
        page.click("button[name=index]")
    download = download_info.value
    assert download.suggested_filename == "audit.csv"
    with open(download.path(), encoding="utf-8") as f:
        exported = list(csv.DictReader(io.StringIO(f.read())))
    assert [(r["event_type"], r["actor_login"]) for r in exported] == [("consent.granted", "alice@acme.example")]
    assert orm(lambda: AuditEvent.objects.filter(event_type="audit.exported", actor_login=ADMIN[0]).count()) == 1
