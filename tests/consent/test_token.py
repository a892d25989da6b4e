"""The token endpoint, with real codes from the real flow:
12 the PKCE verifier is checked; 14 a code is single use (a replay also kills what it issued),
bound to its client, redirect URI and verifier, and short-lived; 15 `resource` on the code
exchange and on refresh must be our MCP endpoint, tokens are bound to it and refresh keeps it;
17 every answer is JSON and `Cache-Control: no-store`.
Every refusal leaves tokens, codes, consents and login sessions as they were."""

from __future__ import annotations

from datetime import timedelta

import httpx2 as httpx
import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken, Grant, RefreshToken

from audit.models import AuditEvent
from consent.models import LoginSession
from tests.consent.conftest import Flow
from tests.consent.flows import Pkce, checksum, mcp_list_tools, post_token, redeem, refresh

pytestmark = pytest.mark.django_db(transaction=True)


def _refused(response: httpx.Response, error: str, status: int = 400) -> dict:
    assert response.status_code == status, response.text
    _json_no_store(response)
    body = response.json()
    assert body["error"] == error, body
    assert "access_token" not in body and "refresh_token" not in body
    return body


def _json_no_store(response: httpx.Response) -> None:
    assert response.headers["content-type"].split(";")[0] == "application/json"
    assert "no-store" in response.headers["cache-control"]


def _redeem(flow: Flow, code: str, pkce: Pkce, **kwargs) -> httpx.Response:
    return redeem(flow.server_url, code, pkce, client_id=kwargs.pop("client_id", flow.client.client_id), **kwargs)


# --- 12 and 14: what a code is bound to -----------------------------------------------------------


def test_wrong_or_missing_code_verifier_is_refused(flow: Flow, unchanged) -> None:
    code, pkce = flow.code()
    with unchanged():
        _refused(_redeem(flow, code, pkce, verifier=Pkce.new().verifier), "invalid_grant")
        # The challenge itself is not the verifier.
        _refused(_redeem(flow, code, pkce, verifier=pkce.challenge), "invalid_grant")
        _refused(
            post_token(
                flow.server_url,
                {"grant_type": "authorization_code", "code": code, "client_id": flow.client.client_id,
                 "redirect_uri": "http://127.0.0.1:33418/callback"},
            ),
            "invalid_request",
        )
    # The code was not consumed by those attempts: the holder of the verifier still redeems it.
    assert _redeem(flow, code, pkce).status_code == 200


def test_code_is_bound_to_its_client_and_redirect_uri(flow: Flow, second_client, unchanged) -> None:
    code, pkce = flow.code()
    with unchanged():
        _refused(_redeem(flow, code, pkce, client_id=second_client.client_id), "invalid_grant")
        for other in ["http://127.0.0.1:51234/callback", "http://127.0.0.1:33418/other"]:
            _refused(_redeem(flow, code, pkce, redirect_uri=other), "invalid_grant")
        _refused(_redeem(flow, code, pkce, client_id="no-such-client"), "invalid_client", status=401)
        _refused(_redeem(flow, "not-a-code", pkce), "invalid_grant")
    assert _redeem(flow, code, pkce).status_code == 200


def test_expired_code_is_refused(flow: Flow, unchanged) -> None:
    code, pkce = flow.code()
    grant = Grant.objects.get(code=code)
    assert (grant.expires - timezone.now()) <= timedelta(seconds=60)
    Grant.objects.filter(pk=grant.pk).update(expires=timezone.now() - timedelta(seconds=1))
    with unchanged():
        _refused(_redeem(flow, code, pkce), "invalid_grant")


def test_replayed_code_fails_and_revokes_what_it_issued(flow: Flow, unchanged) -> None:
    code, pkce = flow.code()
    first = _redeem(flow, code, pkce)
    assert first.status_code == 200
    tokens = first.json()
    assert mcp_list_tools(flow.server_url, tokens["access_token"]).status_code == 200
    family = RefreshToken.objects.get(token_checksum=checksum(tokens["refresh_token"])).token_family

    _refused(_redeem(flow, code, pkce), "invalid_grant")

    assert mcp_list_tools(flow.server_url, tokens["access_token"]).status_code == 401
    with unchanged():
        _refused(refresh(flow.server_url, tokens["refresh_token"], client_id=flow.client.client_id), "invalid_grant")
    assert not AccessToken.objects.filter(user__okta_login="alice@acme.example").exists()
    assert LoginSession.objects.get(token_family=family).revoked_at is not None
    reuse = AuditEvent.objects.get(event_type="token.reuse_detected", reason__contains="code replayed")
    assert reuse.target == f"session:{family}" and reuse.decision == "denied"


# --- 15: the resource the tokens are bound to ----------------------------------------------------


def test_foreign_resource_at_the_token_endpoint_is_invalid_target(flow: Flow, unchanged) -> None:
    code, pkce = flow.code()
    for resource in ["https://other.example/mcp", flow.server_url, flow.server_url + "/mcp/", "urn:x"]:
        with unchanged():
            _refused(_redeem(flow, code, pkce, resource=resource), "invalid_target")
    # Still redeemable, for our resource.
    tokens = _redeem(flow, code, pkce, resource=flow.server_url + "/mcp").json()
    for resource in ["https://other.example/mcp", flow.server_url]:
        with unchanged():
            refused = refresh(
                flow.server_url, tokens["refresh_token"], client_id=flow.client.client_id, resource=resource
            )
            _refused(refused, "invalid_target")
    # The refresh token survived the refused attempts.
    mcp = flow.server_url + "/mcp"
    again = refresh(flow.server_url, tokens["refresh_token"], client_id=flow.client.client_id, resource=mcp)
    assert again.status_code == 200, again.text


def test_tokens_are_bound_to_our_resource_and_refresh_keeps_it(flow: Flow) -> None:
    mcp = flow.server_url + "/mcp"
    tokens = flow.tokens()  # no resource parameter anywhere
    assert AccessToken.objects.get(token_checksum=checksum(tokens["access_token"])).resource == [mcp]
    assert RefreshToken.objects.get(token_checksum=checksum(tokens["refresh_token"])).resource == [mcp]
    assert Grant.objects.count() == 0
    refreshed = refresh(flow.server_url, tokens["refresh_token"], client_id=flow.client.client_id)
    assert refreshed.status_code == 200
    new = refreshed.json()
    assert AccessToken.objects.get(token_checksum=checksum(new["access_token"])).resource == [mcp]
    assert RefreshToken.objects.get(token_checksum=checksum(new["refresh_token"])).resource == [mcp]
    assert mcp_list_tools(flow.server_url, new["access_token"]).status_code == 200


# --- 17: token responses --------------------------------------------------------------------------


def test_token_responses_are_json_and_not_cached(flow: Flow, unchanged) -> None:
    code, pkce = flow.code()
    success = _redeem(flow, code, pkce)
    assert success.status_code == 200
    _json_no_store(success)
    body = success.json()
    assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= 3600 and body["scope"] == "mcp.read"
    refreshed = refresh(flow.server_url, body["refresh_token"], client_id=flow.client.client_id)
    assert refreshed.status_code == 200
    _json_no_store(refreshed)
    with unchanged():
        for grant_type in ["client_credentials", "implicit", "urn:ietf:params:oauth:grant-type:device_code"]:
            _refused(post_token(flow.server_url, {"grant_type": grant_type, "client_id": flow.client.client_id}),
                     "unsupported_grant_type")
        _refused(post_token(flow.server_url, {"grant_type": "authorization_code", "code": "x", "client_id": "nobody",
                                               "code_verifier": "y" * 43}), "invalid_client", status=401)
        _refused(post_token(flow.server_url, {}), "unsupported_grant_type")


def test_password_grant_is_not_a_password_oracle(flow: Flow, unchanged) -> None:
    # Local passwords exist for break-glass admin accounts only; /token must not check them, and
    # must answer a right and a wrong password alike.
    from accounts.models import User

    User.objects.create_superuser("breakglass", "root@acme.example", "correct horse battery")
    with unchanged():
        answers = [
            post_token(flow.server_url, {"grant_type": "password", "username": "breakglass", "password": password,
                                         "client_id": flow.client.client_id, "scope": "mcp.read"})
            for password in ["wrong", "correct horse battery"]
        ]
    for answer in answers:
        _refused(answer, "unsupported_grant_type")
    assert answers[0].json() == answers[1].json()
