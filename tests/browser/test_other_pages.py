"""The other pages a person can land on, in a real browser: the home page, a refused authorization
request, and a failed sign-in (here: a forged Okta callback). Each says plainly what happened, leaks
no internals, and is readable at a phone's width.

Keep `page` the last fixture of each test: the browser must start after the database fixtures."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from audit.models import AuditEvent
from tests.browser.conftest import DESKTOP, PHONE, orm, screenshot, sign_in_at_idp
from tests.conformance.oauth_flow import AuthorizationRequest

pytestmark = pytest.mark.django_db(transaction=True)


def _readable_on_a_phone(page: Any, name: str) -> None:
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], name
    screenshot(page, f"{name}-phone")
    page.set_viewport_size(DESKTOP)


def test_home_page(server_url: str, page: Any) -> None:
    page.goto(server_url + "/")
    assert page.get_by_role("heading", level=1).inner_text() == f"{settings.ORG_NAME}: Okta for AI assistants"
    assert f"{server_url}/mcp" in page.get_by_role("main").inner_text()
    screenshot(page, "home-desktop")
    _readable_on_a_phone(page, "home")


def test_forged_login_callback_shows_the_failed_sign_in_page(server_url: str, okta_org: str, page: Any) -> None:
    response = page.goto(server_url + "/oidc/callback/?code=forged&state=forged")
    assert response is not None and response.status == 400
    assert page.title() == f"Sign-in failed · {settings.ORG_NAME}"
    assert page.get_by_role("heading", level=1).inner_text() == "Sign-in did not complete"
    alert = page.get_by_role("alert")
    assert "unknown or already used login state" in alert.inner_text()
    body = page.inner_text("body")
    assert "Traceback" not in body and "forged" not in body
    screenshot(page, "login-failed-desktop")
    _readable_on_a_phone(page, "login-failed")
    assert orm(lambda: AuditEvent.objects.filter(event_type="login.failure").count()) == 1


def test_refused_authorization_request_shows_an_error_page(server_url: str, okta_org: str, page: Any) -> None:
    request = AuthorizationRequest(server_url, "no-such-client")
    page.goto(request.url)  # sign-in comes first, then the request is judged
    with page.expect_response(lambda r: r.url == request.url) as final:
        sign_in_at_idp(page, "carol")
    assert final.value.status == 400
    assert page.url == request.url  # no redirect to an unverified client
    assert page.get_by_role("heading", level=1).inner_text() == "This authorization request cannot be completed"
    assert page.get_by_role("alert").inner_text() == "invalid_request\nInvalid client_id parameter value."
    screenshot(page, "authorize-error-desktop")
    _readable_on_a_phone(page, "authorize-error")
