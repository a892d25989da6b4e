"""The consent page in a real browser (Chromium): a person signs in at the sandbox Okta, reads what
the client asks for, and allows (with the keyboard alone) or denies; the MCP client's side is a
loopback listener that receives the redirect. Also: a page that frames ours gets nothing, and the
page reads well at a phone's width. Screenshots go to test-artifacts/screenshots/.

Keep `page` the last fixture of each test: the browser must start after the database fixtures."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from oauth2_provider.models import AccessToken

from audit.models import AuditEvent
from consent.models import Consent
from tests.browser.conftest import DESKTOP, PHONE, LoopbackSite, orm, screenshot, sign_in_at_idp
from tests.conformance.oauth_flow import AuthorizationRequest
from tools.registry import REGISTRY

pytestmark = pytest.mark.django_db(transaction=True)


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _open_consent(
    page: Any, server_url: str, client: Any, site: LoopbackSite, scope: str = "mcp.read"
) -> AuthorizationRequest:
    request = AuthorizationRequest(server_url, client.client_id, redirect_uri=f"{site.url}/callback", scope=scope)
    page.goto(request.url)
    sign_in_at_idp(page, "alice")
    page.wait_for_selector("#approve")
    assert page.url.startswith(server_url + "/authorize?")
    return request


def _tab_to(page: Any, element_id: str, limit: int = 20) -> list[str]:
    """Press Tab until the element has focus; return what got focus on the way."""
    seen: list[str] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id || document.activeElement.tagName")
        seen.append(focused)
        if focused == element_id:
            return seen
    raise AssertionError(f"Tab never reached #{element_id}: {seen}")


def test_consent_names_everything_and_is_approved_with_the_keyboard(
    server_url: str, okta_org: str, demo_policy: None, loopback_site: LoopbackSite, loopback_client: Any, page: Any
) -> None:
    request = _open_consent(page, server_url, loopback_client, loopback_site)

    # What the person must see before deciding.
    assert page.title() == f"Allow VS Code? · {settings.ORG_NAME}"
    assert page.locator("#client-name").inner_text() == "VS Code"
    assert page.locator("#redirect-host").inner_text() == "127.0.0.1"
    assert "runs on this computer" in page.locator("#loopback-warning").inner_text()
    assert page.locator("#scopes li").all_inner_texts() == [
        "mcp.read\nRead Okta data through the tools your roles allow"
    ]
    # alice's role grants every tool; a read-only token gets the read tools, all named on the page.
    read_tools = sorted(n for n, spec in REGISTRY.items() if spec.access == "read")
    assert page.locator("#tools li code").all_text_contents() == read_tools
    assert page.locator("#tools li .tag").all_text_contents() == ["read only"] * len(read_tools)
    assert page.locator("#tools-summary").inner_text() == f"{len(read_tools)} only read Okta and change nothing."
    assert page.locator("#write-tools").count() == 0
    assert re.fullmatch(r"In 24 hours, on \d{1,2} \w{3} \d{4}, \d\d:\d\d UTC", page.locator("#expiry").inner_text())
    assert settings.ORG_NAME in page.locator("header").inner_text()

    # Structure that assistive technology relies on.
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.get_by_role("banner").count() == 1 and page.get_by_role("main").count() == 1
    assert page.get_by_role("contentinfo").count() == 1
    headings = page.get_by_role("heading", level=1)
    assert headings.count() == 1 and headings.inner_text() == "Allow VS Code to use Okta as you?"
    tools_heading = f"Tools it will get {len(read_tools)}"
    assert [" ".join(h.split()) for h in page.get_by_role("heading", level=2).all_inner_texts()] == [
        "What it may do",
        tools_heading,
    ]
    assert page.get_by_role("list", name=tools_heading, include_hidden=True).count() == 1
    assert page.get_by_role("list", name="What it may do").count() == 1
    assert page.get_by_role("form", name="Your decision").count() == 1
    assert (
        page.get_by_role("button", name="Allow").count() == 1 and page.get_by_role("button", name="Deny").count() == 1
    )
    assert page.locator("#loopback-warning").get_attribute("role") == "note"
    screenshot(page, "consent-desktop")

    # A phone's width: nothing scrolls sideways and both buttons span the card.
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    allow_box, deny_box = page.locator("#approve").bounding_box(), page.locator("#deny").bounding_box()
    assert allow_box["width"] > 300 and deny_box["y"] > allow_box["y"]  # stacked, Allow first
    screenshot(page, "consent-phone")
    page.set_viewport_size(DESKTOP)

    # The keyboard alone: the skip link comes first, the folded tool list opens with Enter, Allow
    # comes before Deny, focus is visible, Enter submits.
    order = _tab_to(page, "approve")
    assert order == ["A", "SUMMARY", "approve"]
    page.keyboard.press("Shift+Tab")
    assert not page.locator("#tools").is_visible()
    page.keyboard.press("Enter")
    assert page.locator("#tools").is_visible() and page.get_by_role("list", name=tools_heading).count() == 1
    screenshot(page, "consent-desktop-all-tools")
    page.keyboard.press("Tab")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{loopback_site.url}/callback?*")
    assert "Connected" in page.inner_text("body")

    params = _query(page.url)
    assert params["state"] == request.state and params["iss"] == settings.ISSUER and params["code"]
    token = request.redeem(params["code"])
    assert token.status_code == 200, token.text
    assert token.json()["scope"] == "mcp.read"

    consent = orm(lambda: Consent.objects.get(user__okta_login="alice@acme.example", application=loopback_client))
    assert consent.status == "active" and sorted(consent.tools) == read_tools
    assert (
        orm(
            lambda: AuditEvent.objects.filter(event_type="consent.granted", client_id=loopback_client.client_id).count()
        )
        == 1
    )


def test_deny_sends_access_denied_and_grants_nothing(
    server_url: str, okta_org: str, demo_policy: None, loopback_site: LoopbackSite, loopback_client: Any, page: Any
) -> None:
    request = _open_consent(page, server_url, loopback_client, loopback_site, scope="mcp.read mcp.write")
    # With mcp.write, the tools that change Okta are called out above the list, destructive ones marked.
    write_tools = sorted((spec.title, spec.destructive) for spec in REGISTRY.values() if spec.access == "write")
    warned = page.locator("#write-tools li").all_inner_texts()
    assert sorted(warned) == sorted(f"{t} destructive" if d else t for t, d in write_tools)
    assert page.locator("#tools li").count() == len(REGISTRY)
    assert page.locator("#tools li").first.locator(".tag").first.text_content() == "changes Okta"  # write tools first
    screenshot(page, "consent-write-tools-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "consent-write-tools-phone")
    page.get_by_role("button", name="Deny").click()
    page.wait_for_url(f"{loopback_site.url}/callback?*")
    params = _query(page.url)
    assert params == {"error": "access_denied", "state": request.state, "iss": settings.ISSUER}

    def stored() -> tuple[bool, bool, list[str]]:
        return (
            Consent.objects.filter(application=loopback_client).exists(),
            AccessToken.objects.filter(application=loopback_client).exists(),
            list(
                AuditEvent.objects.filter(client_id=loopback_client.client_id).values_list("event_type", "actor_login")
            ),
        )

    has_consent, has_token, events = orm(stored)
    assert not has_consent and not has_token
    assert ("consent.denied", "alice@acme.example") in events


def test_a_page_that_frames_the_consent_page_gets_nothing(
    server_url: str, okta_org: str, demo_policy: None, loopback_site: LoopbackSite, loopback_client: Any, page: Any
) -> None:
    request = _open_consent(page, server_url, loopback_client, loopback_site)  # signed in, so the page would render
    loopback_site.pages["/harmless"] = "<!doctype html><p id=inner>framed fine</p>"
    loopback_site.pages["/evil"] = (
        "<!doctype html><title>Win a prize</title><h1>Click the button!</h1>"
        f'<iframe id="consent" src="{request.url}" width="700" height="500"></iframe>'
        '<iframe id="control" src="/harmless" width="300" height="100"></iframe>'
    )
    framed: list[dict[str, str]] = []
    page.on(
        "response",
        lambda r: framed.append(r.all_headers()) if r.url == request.url and r.frame != page.main_frame else None,
    )
    page.goto(f"{loopback_site.url}/evil")
    page.wait_for_load_state("load")
    page.wait_for_timeout(500)

    control = page.frame_locator("#control").locator("#inner")
    assert control.inner_text() == "framed fine"  # framing itself works; our page is what refuses
    consent_frame = page.frame_locator("#consent")
    assert consent_frame.locator("#approve").count() == 0 and consent_frame.locator("form").count() == 0
    assert framed, "the framed request never reached the server"
    assert framed[0]["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in framed[0]["content-security-policy"]
    # Chromium replaced the refused frame with its error page: nothing of ours is in it.
    assert next(f for f in page.frames if f.name == "consent").url == "chrome-error://chromewebdata/"
    screenshot(page, "consent-framed-refused")
