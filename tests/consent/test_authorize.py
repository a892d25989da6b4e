"""The authorization endpoint, attacked one parameter at a time by a logged-in user at a real
browser (sandbox IdP, our consent page, daphne):
12 PKCE is required and S256 only; 13 redirect URIs match the registration exactly (loopback ports
aside) and a bad one is never redirected to; 15 a `resource` other than our MCP endpoint is
`invalid_target`; 16 every response, errors included, carries `iss`.
Every refusal leaves tokens, codes, consents and login sessions as they were."""

from __future__ import annotations

import pytest
from django.conf import settings

from audit.models import AuditEvent
from tests.consent.conftest import HTTPS_REDIRECT, Flow
from tests.consent.flows import ConsentBrowser, Outcome, Pkce

pytestmark = pytest.mark.django_db(transaction=True)


def _error_redirect(outcome: Outcome, error: str, state: str) -> dict[str, str]:
    assert outcome.kind == "redirect", f"{outcome.kind} {outcome.response.status_code}: {outcome.html[:300]}"
    params = outcome.params
    assert params.get("error") == error, params
    assert params["state"] == state
    assert params["iss"] == settings.ISSUER and outcome.location.count("iss=") == 1
    assert "code" not in params
    return params


def _error_page(outcome: Outcome, bad_uri: str) -> None:
    assert outcome.kind == "page", f"{bad_uri} got a {outcome.kind}: {outcome.location}"
    assert outcome.response.status_code == 400, bad_uri
    assert "location" not in outcome.response.headers
    assert "This authorization request cannot be completed" in outcome.html
    assert not any(url.startswith(bad_uri) for url in outcome.visited)


# --- 12: PKCE ------------------------------------------------------------------------------------


def test_pkce_is_required_and_s256_only(flow: Flow, unchanged) -> None:
    # No consent on record yet: each refusal must come before the consent page is ever shown.
    cases = {
        "missing": dict(pkce=None),
        "plain": dict(pkce=Pkce.new(), method="plain"),
        "method omitted (means plain)": dict(pkce=Pkce.new(), method=None),
        "unknown method": dict(pkce=Pkce.new(), method="S512"),
    }
    for name, params in cases.items():
        with unchanged():
            outcome = flow.browser.open(flow.url(state=f"s-{len(name)}", **params))
        _error_redirect(outcome, "invalid_request", f"s-{len(name)}")
    assert flow.browser.consent_pages == []
    denied = AuditEvent.objects.filter(event_type="authorization.denied", client_id=flow.client.client_id)
    assert denied.count() == len(cases)

    # With consent on record the page is skipped, and plain is still refused.
    flow.code()
    with unchanged():
        outcome = flow.browser.open(flow.url(Pkce.new(), method="plain", state="s-plain"))
    _error_redirect(outcome, "invalid_request", "s-plain")


def test_pkce_fields_tampered_on_the_consent_form_are_refused(flow: Flow, unchanged) -> None:
    for name, change in {
        "challenge removed": dict(drop=("code_challenge", "code_challenge_method")),
        "method made plain": dict(override={"code_challenge_method": "plain"}),
    }.items():
        page = flow.browser.open(flow.url(Pkce.new(), state="s-tamper"))
        assert page.kind == "consent", name
        with unchanged():
            outcome = flow.browser.decide(page, **change)
        _error_redirect(outcome, "invalid_request", "s-tamper")


# --- 13: redirect URIs ---------------------------------------------------------------------------


def test_changed_redirect_uri_gets_an_error_page(flow: Flow, https_client, unchanged) -> None:
    flow.code()  # signed in, consent on record: nothing but the redirect check stands in the way
    changed = {
        flow.client.client_id: [
            "http://127.0.0.1:33418/other",  # another path
            "http://127.0.0.1:33418/callback/",  # a trailing slash
            "http://127.0.0.1:33418/callback?x=1",  # an added query
            "https://127.0.0.1:33418/callback",  # another scheme
            "http://127.0.0.2:33418/callback",  # another loopback host
            "http://localhost:33418/callback",  # another name for the registered host
            "https://evil.example/callback",
        ],
        https_client.client_id: [
            "http://client.example/callback",  # https downgraded to http, not loopback
            "https://client.example/callback2",
            "https://client.example.evil.example/callback",
            "https://client.example:8443/callback",
            "https://CLIENT.example/callback#x",
        ],
    }
    for client_id, uris in changed.items():
        for bad_uri in uris:
            with unchanged():
                outcome = flow.browser.open(
                    flow.url(Pkce.new(), client_id=client_id, redirect_uri=bad_uri), redirect_uri=bad_uri
                )
            _error_page(outcome, bad_uri)
            assert "invalid_request" in outcome.html
    denied = AuditEvent.objects.filter(event_type="authorization.denied", reason="invalid_request")
    assert denied.count() == sum(len(u) for u in changed.values())


def test_unknown_client_gets_an_error_page(flow: Flow, unchanged) -> None:
    flow.code()
    with unchanged():
        outcome = flow.browser.open(flow.url(Pkce.new(), client_id="no-such-client"))
    _error_page(outcome, "http://127.0.0.1:33418/callback")
    assert "client_id" in outcome.html


def test_bad_redirect_uri_is_not_followed_before_login_either(server_url, okta_org, public_client, unchanged) -> None:
    # Not signed in: the user signs in first, then sees the error page; the unregistered URI is
    # never a redirect target.
    bad_uri = "https://evil.example/callback"
    browser = ConsentBrowser("bob")
    try:
        url = Flow(server_url, browser, public_client).url(Pkce.new(), redirect_uri=bad_uri, prompt="none")
        with unchanged():
            outcome = browser.open(url, redirect_uri=bad_uri)
        _error_page(outcome, bad_uri)
    finally:
        browser.close()


def test_registered_redirects_receive_the_code(flow: Flow, https_client) -> None:
    code, _pkce = flow.code(client_id=https_client.client_id, redirect_uri=HTTPS_REDIRECT)
    assert code
    # RFC 8252 §7.3: a native client picks its loopback port at run time; only the port may differ.
    other = "http://127.0.0.1:51234/callback"
    outcome = flow.browser.open(flow.url(Pkce.new(), redirect_uri=other, state="s-port"), redirect_uri=other)
    assert outcome.kind == "consent"
    outcome = flow.browser.decide(outcome, redirect_uri=other)
    assert outcome.kind == "redirect" and outcome.location.startswith(other + "?")
    assert outcome.params["state"] == "s-port" and outcome.params["iss"] == settings.ISSUER and outcome.params["code"]


# --- 15: resource indicators at the authorization endpoint ---------------------------------------


def test_foreign_resource_is_invalid_target(flow: Flow, unchanged) -> None:
    server = flow.server_url
    foreign = [
        ["https://other.example/mcp"],
        [f"{server}/mcp/"],
        [server],
        [f"{server}/mcp?x=1"],
        [f"{server}/mcp", "https://other.example/mcp"],
        ["not a uri"],
    ]
    # Before any consent: refused without showing the page.
    with unchanged():
        outcome = flow.browser.open(flow.url(Pkce.new(), resource=foreign[0], state="s-t0"))
    _error_redirect(outcome, "invalid_target", "s-t0")
    assert flow.browser.consent_pages == []
    # With consent on record (the page would be skipped): still refused.
    flow.code()
    for i, resource in enumerate(foreign):
        with unchanged():
            outcome = flow.browser.open(flow.url(Pkce.new(), resource=resource, state=f"s-t{i}"))
        _error_redirect(outcome, "invalid_target", f"s-t{i}")


def test_tampered_resource_on_the_consent_form_is_invalid_target(flow: Flow, unchanged) -> None:
    page = flow.browser.open(flow.url(Pkce.new(), state="s-form"))
    assert page.kind == "consent"
    with unchanged():
        outcome = flow.browser.decide(page, override={"resource": "https://other.example/mcp"})
    _error_redirect(outcome, "invalid_target", "s-form")


def test_our_resource_is_accepted(flow: Flow) -> None:
    assert flow.tokens(resource=flow.server_url + "/mcp")["access_token"]


# --- 16: iss on every authorization response -----------------------------------------------------


def test_prompt_none_when_signed_out_is_login_required_with_iss(flow: Flow, unchanged) -> None:
    with unchanged():
        outcome = flow.browser.open(flow.url(Pkce.new(), state="s-out", prompt="none"))
    _error_redirect(outcome, "login_required", "s-out")
    assert not any("/oidc/" in url for url in outcome.visited)


def test_every_authorization_response_carries_iss(flow: Flow, second_client, unchanged) -> None:
    # Success, from the page.
    page = flow.browser.open(flow.url(Pkce.new(), state="s-ok"))
    outcome = flow.browser.decide(page)
    assert outcome.kind == "redirect" and outcome.params["code"]
    assert outcome.params["iss"] == settings.ISSUER and outcome.params["state"] == "s-ok"
    assert outcome.location.count("iss=") == 1
    # Success with the page skipped (consent on record), also with prompt=none.
    for extra in ({}, {"prompt": "none"}):
        again = flow.browser.open(flow.url(Pkce.new(), state="s-ok2", **extra))
        assert again.kind == "redirect" and again.params["code"], extra
        assert again.params["iss"] == settings.ISSUER and again.params["state"] == "s-ok2"

    # Errors. Another client has no consent yet: prompt=none must not show the page.
    with unchanged():
        outcome = flow.browser.open(
            flow.url(Pkce.new(), client_id=second_client.client_id, state="s-none", prompt="none")
        )
    _error_redirect(outcome, "consent_required", "s-none")
    for scope in ["admin", "mcp.read offline_access", "openid"]:
        with unchanged():
            outcome = flow.browser.open(flow.url(Pkce.new(), scope=scope, state="s-scope"))
        _error_redirect(outcome, "invalid_scope", "s-scope")
    with unchanged():
        implicit = flow.url(Pkce.new(), state="s-rt").replace("response_type=code", "response_type=token")
        outcome = flow.browser.open(implicit)
    assert outcome.kind == "redirect" and "access_token" not in outcome.location
    assert outcome.params["error"] in ("unsupported_response_type", "unauthorized_client")
    assert outcome.params["iss"] == settings.ISSUER

    page = flow.browser.open(flow.url(Pkce.new(), client_id=second_client.client_id, state="s-deny"))
    with unchanged():
        outcome = flow.browser.decide(page, allow=False)
    _error_redirect(outcome, "access_denied", "s-deny")
    assert AuditEvent.objects.filter(event_type="consent.denied", client_id=second_client.client_id).count() == 1
