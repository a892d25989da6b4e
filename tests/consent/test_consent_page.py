"""Requirement 22: the consent page is ours and tells the user what they are agreeing to (client,
where access goes with a loopback warning, scopes, tools, expiry); it refuses posts without its
CSRF token, cannot be framed, and escapes everything a client or request supplies."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest

from accounts.models import User
from consent.models import Consent
from tests.clients import LOOPBACK_REDIRECT
from tests.consent.conftest import HTTPS_REDIRECT, Flow
from tests.consent.flows import ConsentBrowser, Pkce
from tools.selectors import tools_allowed_for_user

pytestmark = pytest.mark.django_db(transaction=True)


def _element(page: str, element_id: str) -> str | None:
    """The text inside the element with `element_id` (tags stripped, entities decoded)."""
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    if match is None:
        return None
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(2))).split())


def _shown_time(text: str) -> datetime:
    """The UTC time the page states, as "2026-11-27 11:40" or "27 Nov 2026, 11:40"."""
    formats = [
        (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", "%Y-%m-%d %H:%M"),
        (r"\d{1,2} \w{3} \d{4}, \d{2}:\d{2}", "%d %b %Y, %H:%M"),
    ]
    for pattern, fmt in formats:
        found = re.search(pattern, text)
        if found:
            return datetime.strptime(found.group(0), fmt).replace(tzinfo=dt_timezone.utc)
    raise AssertionError(f"no time in {text!r}")


def test_page_names_client_destination_scopes_tools_and_expiry(flow: Flow) -> None:
    outcome = flow.browser.open(flow.url(Pkce.new(), scope="mcp.read mcp.write"))
    assert outcome.kind == "consent"
    page = outcome.html
    assert _element(page, "client-name") == "Test MCP client"
    assert _element(page, "redirect-host") == "127.0.0.1"
    assert "loopback" in (_element(page, "loopback-warning") or "")
    scopes = _element(page, "scopes") or ""
    assert "mcp.read" in scopes and "mcp.write" in scopes

    alice = User.objects.get(okta_login="alice@acme.example")
    expected_tools = {spec.name for spec in tools_allowed_for_user(alice, scopes=["mcp.read", "mcp.write"]).specs()}
    assert "whoami" in expected_tools
    listed = _element(page, "tools") or ""
    assert all(name in listed for name in expected_tools)

    expiry = _element(page, "expiry") or ""
    assert "24 hours" in expiry
    assert abs((_shown_time(expiry) - (datetime.now(dt_timezone.utc) + timedelta(hours=24))).total_seconds()) < 120

    assert outcome.response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in outcome.response.headers["content-security-policy"]

    # What the page showed is what was recorded.
    flow.browser.decide(outcome)
    consent = Consent.objects.get()
    assert consent.scopes == "mcp.read mcp.write" and set(consent.tools) == expected_tools


def test_https_redirect_has_no_loopback_warning(flow: Flow, https_client) -> None:
    outcome = flow.browser.open(flow.url(Pkce.new(), client_id=https_client.client_id, redirect_uri=HTTPS_REDIRECT))
    assert outcome.kind == "consent"
    assert _element(outcome.html, "client-name") == "Hosted MCP client"
    assert _element(outcome.html, "redirect-host") == "client.example"
    assert _element(outcome.html, "loopback-warning") is None and "loopback" not in outcome.html.lower()


def test_user_without_tools_is_told_so(server_url, okta_org, public_client, demo_policy) -> None:
    carol = ConsentBrowser("carol")  # Contractors: no role grants anything
    try:
        outcome = carol.open(Flow(server_url, carol, public_client).url(Pkce.new()))
    finally:
        carol.close()
    assert outcome.kind == "consent"
    assert _element(outcome.html, "tools") is None
    assert "no tools" in (_element(outcome.html, "no-tools") or "")


def test_post_without_a_valid_csrf_token_is_refused(flow: Flow, unchanged) -> None:
    outcome = flow.browser.open(flow.url(Pkce.new(), state="s-csrf"))
    assert outcome.kind == "consent"
    with unchanged():
        for change in [{"drop": ("csrfmiddlewaretoken",)}, {"override": {"csrfmiddlewaretoken": "x" * 64}}]:
            refused = flow.browser.decide(outcome, **change)
            assert refused.kind == "page" and refused.response.status_code == 403, change
            assert "location" not in refused.response.headers
        # A page on another site posting the form with the user's cookies but its own token value.
        stranger = ConsentBrowser("bob")
        try:
            refused = stranger.decide(outcome)
            assert refused.kind == "page" and refused.response.status_code == 403
        finally:
            stranger.close()
    # The genuine form still works.
    approved = flow.browser.decide(outcome)
    assert approved.kind == "redirect" and approved.params["code"] and approved.params["state"] == "s-csrf"


def test_client_and_request_strings_are_escaped(flow: Flow, new_public_client) -> None:
    evil = new_public_client('<script>alert("name")</script> & <b>Co</b>', "evil-client", LOOPBACK_REDIRECT)
    state = '"><script>alert("state")</script>'
    outcome = flow.browser.open(flow.url(Pkce.new(), client_id=evil.client_id, state=state))
    assert outcome.kind == "consent"
    page = outcome.html
    assert "<script>alert" not in page and "<b>Co</b>" not in page
    assert "&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt; &amp; &lt;b&gt;Co&lt;/b&gt;" in page
    assert _element(page, "client-name") == '<script>alert("name")</script> & <b>Co</b>'
    assert outcome.form is not None and outcome.form.fields["state"] == state

    # The error page does not reflect request values either.
    error = flow.browser.open(flow.url(Pkce.new(), client_id='<script>alert("id")</script>'))
    assert error.kind == "page" and error.response.status_code == 400
    assert "<script>alert" not in error.html
