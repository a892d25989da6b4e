"""The bearer gate at /mcp (requirements 1-4): protected resource metadata, which tokens are
accepted (only ours, for this resource, with live consent, in the Authorization header) and the
exact 401/400 challenges for everything else, in both protocol generations."""

from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import urlencode

import httpx2 as httpx
import pytest
from django.conf import settings

from consent.principal_cache import authz_changed
from tests.clients import Browser, callback_params
from tests.mcp.conftest import (
    LEGACY,
    MODERN,
    RESOURCE_METADATA,
    REVOCABLE_CLIENT_ID,
    access_token_row,
    assert_challenge,
    audit_rows,
    bearer,
    challenge_params,
    checksum,
    last_audit_id,
    make_access_token,
    pkce_pair,
    rpc_body,
    rpc_request,
)

BOTH = pytest.mark.parametrize("mode", [MODERN, LEGACY])


def _list_tools(world, token: str | None, mode: str, headers: dict[str, str] | None = None) -> httpx.Response:
    if mode == LEGACY:
        # Without a valid token the gate answers before the SDK sees the initialize.
        return rpc_request(
            world.url,
            "initialize",
            {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
            token=token,
            mode=LEGACY,
            headers=headers,
        )
    return rpc_request(world.url, "tools/list", token=token, headers=headers)


def _assert_refused_unknown(world, response: httpx.Response, before: int, okta_before: int) -> None:
    """401 invalid_token, and nothing recorded or forwarded: unknown tokens write no audit row."""
    assert_challenge(response, 401, "invalid_token")
    assert audit_rows(before) == []
    assert world.okta_requests()["count"] == okta_before


def _assert_rejected_known(response: httpx.Response, before: int, reason: str) -> None:
    """401 invalid_token and one token.rejected row naming why, and nothing else happened."""
    assert_challenge(response, 401, "invalid_token")
    rows = audit_rows(before)
    assert [r.event_type for r in rows] == ["token.rejected"], [(r.event_type, r.reason) for r in rows]
    assert rows[0].reason == reason
    assert rows[0].decision == "denied"


# --- requirement 1: protected resource metadata ---------------------------------------------------


@pytest.mark.parametrize("path", ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"])
def test_protected_resource_metadata(server_url, path) -> None:
    response = httpx.get(server_url + path, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    data = response.json()
    assert data["resource"] == settings.PUBLIC_URL + "/mcp"
    assert not data["resource"].endswith("/")
    assert data["authorization_servers"] == [settings.PUBLIC_URL]
    assert sorted(data["scopes_supported"]) == ["mcp.read", "mcp.write"]
    assert "offline_access" not in data["scopes_supported"]
    assert data["bearer_methods_supported"] == ["header"]
    issuer = httpx.get(server_url + "/.well-known/oauth-authorization-server", timeout=10).json()["issuer"]
    assert data["authorization_servers"][0] == issuer  # byte for byte
    # The document a 401 points at is this one.
    challenge = challenge_params(rpc_request(server_url, "tools/list"))
    assert challenge["resource_metadata"] == RESOURCE_METADATA
    assert httpx.get(challenge["resource_metadata"], timeout=10).json() == data


# --- requirements 2 and 3: what the bearer gate accepts -------------------------------------------


@BOTH
def test_valid_token_is_accepted(world, db_access, mode) -> None:
    response = _list_tools(world, world.tokens["alice"], mode)
    assert response.status_code == 200, response.text
    assert "result" in rpc_body(response)


UNUSABLE_CREDENTIALS = [
    None,
    "Bearer",
    "Bearer not a token!",
    "Bearer " + "A" * 600,
    "Bearer abcdefABCDEF0123456789abcdefABCDEF012345",
    "Basic YWxpY2U6YWxpY2UtcGFzcw==",
    "DPoP abcdefABCDEF0123456789",
    "SSWS sandbox-api-token",
]


@BOTH
def test_missing_or_unknown_credentials_get_401_and_leave_no_trace(world, db_access, mode) -> None:
    before, okta_before = last_audit_id(), world.okta_requests()["count"]
    for authorization in UNUSABLE_CREDENTIALS:
        headers = {"Authorization": authorization} if authorization is not None else None
        response = _list_tools(world, None, mode, headers=headers)
        assert_challenge(response, 401, "invalid_token")
        assert "mcp-session-id" not in response.headers
    _assert_refused_unknown(world, response, before, okta_before)


def test_non_bearer_scheme_with_a_valid_token_is_refused(world, db_access) -> None:
    before, okta_before = last_audit_id(), world.okta_requests()["count"]
    for scheme in ("Token", "DPoP", "MAC", "Basic"):
        response = _list_tools(world, None, MODERN, headers={"Authorization": f"{scheme} {world.tokens['alice']}"})
        assert_challenge(response, 401, "invalid_token")
    assert audit_rows(before) == []
    assert world.okta_requests()["count"] == okta_before


@BOTH
def test_expired_token(world, db_access, mode) -> None:
    from django.utils import timezone
    from oauth2_provider.models import AccessToken

    raw = world.fresh_token("alice")["access_token"]
    assert _list_tools(world, raw, MODERN).status_code == 200
    row = access_token_row(raw)
    AccessToken.objects.filter(pk=row.pk).update(expires=timezone.now() - timedelta(seconds=1))
    # Moving the expiry stands in for time passing; a change made outside the services announces
    # itself as they do (consent.principal_cache), or a replica could go on reusing its answer.
    authz_changed()
    before = last_audit_id()
    _assert_rejected_known(_list_tools(world, raw, mode), before, "token expired")
    assert audit_rows(before)[0].target == f"access_token:{row.pk}"
    assert AccessToken.objects.filter(pk=row.pk).exists()  # refused, not altered


@BOTH
def test_token_revoked_at_the_revocation_endpoint(world, db_access, mode) -> None:
    from oauth2_provider.models import AccessToken

    raw = world.fresh_token("bob")["access_token"]
    assert _list_tools(world, raw, MODERN).status_code == 200
    revoked = httpx.post(world.url + "/revoke", data={"token": raw, "client_id": REVOCABLE_CLIENT_ID}, timeout=10)
    assert revoked.status_code == 200
    assert not AccessToken.objects.filter(token_checksum=checksum(raw)).exists()
    before, okta_before = last_audit_id(), world.okta_requests()["count"]
    # A revoked token is gone: to the gate it is as unknown as a guessed one.
    _assert_refused_unknown(world, _list_tools(world, raw, mode), before, okta_before)


def test_token_whose_consent_was_revoked_is_refused_at_once(world, db_access) -> None:
    from audit.services import RequestMeta
    from consent.models import Consent
    from consent.services import consent_revoke

    raw = world.fresh_token("alice")["access_token"]
    assert _list_tools(world, raw, MODERN).status_code == 200
    row = access_token_row(raw)
    consent_revoke(
        user=row.user, application=row.application, reason="test", actor=None, meta=RequestMeta.for_command("test")
    )
    assert not Consent.objects.active().filter(user=row.user, application=row.application).exists()
    before, okta_before = last_audit_id(), world.okta_requests()["count"]
    for mode in (MODERN, LEGACY):
        _assert_refused_unknown(world, _list_tools(world, raw, mode), before, okta_before)
    # The shared client's tokens of the same user are untouched: revocation is per client.
    assert _list_tools(world, world.tokens["alice"], MODERN).status_code == 200


def test_token_whose_consent_expired_is_refused_at_once(world, db_access) -> None:
    from django.utils import timezone

    from consent.models import Consent

    raw = world.fresh_token("bob")["access_token"]
    assert _list_tools(world, raw, MODERN).status_code == 200
    row = access_token_row(raw)
    Consent.objects.filter(user=row.user, application=row.application, revoked_at__isnull=True).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    # Moving the expiry stands in for time passing; a change made outside the services announces
    # itself as they do (consent.principal_cache), or a replica could go on reusing its answer.
    authz_changed()
    assert not row.is_expired()
    for mode in (MODERN, LEGACY):
        before = last_audit_id()
        _assert_rejected_known(_list_tools(world, raw, mode), before, "consent revoked or expired")


@pytest.mark.parametrize(
    ("resource", "reason"),
    [
        (["https://other.example/mcp"], "token was not issued for this resource"),
        ([], "token was not issued for this resource"),
        ([settings.PUBLIC_URL + "/mcp/"], "token was not issued for this resource"),
        ([settings.PUBLIC_URL + "/mcp", "https://other.example/mcp"], "token was not issued for this resource"),
    ],
    ids=["other-resource", "no-resource", "trailing-slash", "extra-audience"],
)
def test_token_for_another_resource(world, db_access, resource, reason) -> None:
    alice = access_token_row(world.tokens["alice"])
    raw = make_access_token(
        user=alice.user,
        application=alice.application,
        scope="mcp.read",
        resource=resource,
        expires_in=timedelta(hours=1),
    )
    for mode in (MODERN, LEGACY):
        before = last_audit_id()
        _assert_rejected_known(_list_tools(world, raw, mode), before, reason)


def test_registration_token_is_refused(world, db_access) -> None:
    """A DCR registration access token: an ordinary AccessToken row with no user, the registration
    scope, no resource and a year-9999 expiry, which DOT's own checks would accept."""
    from datetime import datetime, timezone

    from oauth2_provider.models import AccessToken, set_token_value
    from oauth2_provider.generators import generate_client_secret

    alice = access_token_row(world.tokens["alice"])
    cases = ((None, "token is not a user's access token"), (alice.user, "token was not issued for this resource"))
    for user, reason in cases:
        raw = generate_client_secret()
        token = AccessToken(
            application=alice.application,
            user=user,
            expires=datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
            scope="oauth2_provider:registration",
        )
        set_token_value(token, raw)
        token.save()
        assert token.resource == [] and token.is_valid(["oauth2_provider:registration"])
        for mode in (MODERN, LEGACY):
            before = last_audit_id()
            _assert_rejected_known(_list_tools(world, raw, mode), before, reason)


def _okta_tokens(world) -> dict[str, str]:
    """Real tokens from the sandbox Okta (the IdP), obtained as our OIDC login would: authorization
    code with PKCE for the static client, redeemed at the IdP's token endpoint."""
    redirect_uri = settings.PUBLIC_URL + "/oidc/callback/"
    verifier, challenge = pkce_pair()
    query = urlencode(
        {
            "client_id": settings.OIDC_RP_CLIENT_ID,
            "response_type": "code",
            "scope": "openid profile email groups",
            "redirect_uri": redirect_uri,
            "state": secrets.token_urlsafe(16),
            "nonce": secrets.token_urlsafe(16),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    browser = Browser("alice")
    try:
        final = browser.authorize(f"{settings.OIDC_OP_AUTHORIZATION_ENDPOINT}?{query}", redirect_uri=redirect_uri)
    finally:
        browser.close()
    response = httpx.post(
        settings.OIDC_OP_TOKEN_ENDPOINT,
        data={
            "grant_type": "authorization_code",
            "code": callback_params(final)["code"],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        auth=(settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    data = response.json()
    return {"access_token": data["access_token"], "id_token": data["id_token"]}


def test_okta_issued_tokens_are_refused(world, db_access) -> None:
    okta = _okta_tokens(world)
    # Sanity: the access token is live at Okta (the IdP's userinfo accepts it).
    userinfo = httpx.get(settings.OIDC_OP_USER_ENDPOINT, headers=bearer(okta["access_token"]), timeout=10)
    assert userinfo.status_code == 200 and userinfo.json()["preferred_username"] == "alice@acme.example"
    before, okta_before = last_audit_id(), world.okta_requests()["count"]
    for kind in ("access_token", "id_token"):
        for mode in (MODERN, LEGACY):
            _assert_refused_unknown(world, _list_tools(world, okta[kind], mode), before, okta_before)


# --- requirement 4: the Authorization header only ---------------------------------------------------


@BOTH
def test_token_in_query_string_is_refused(world, db_access, mode) -> None:
    token = world.tokens["alice"]
    before, okta_before = last_audit_id(), world.okta_requests()["count"]
    for headers in ({}, bearer(token)):
        response = httpx.post(
            world.url + "/mcp?" + urlencode({"access_token": token}),
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
            headers={"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": mode, **headers},
            timeout=10,
        )
        assert_challenge(response, 400, "invalid_request")
    assert audit_rows(before) == []
    assert world.okta_requests()["count"] == okta_before


def test_token_in_form_body_is_not_accepted(world, db_access) -> None:
    before, okta_before = last_audit_id(), world.okta_requests()["count"]
    response = httpx.post(
        world.url + "/mcp",
        content=urlencode({"access_token": world.tokens["alice"]}).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": MODERN,
        },
        timeout=10,
    )
    _assert_refused_unknown(world, response, before, okta_before)


def test_every_request_needs_the_header(world, db_access) -> None:
    """A legacy session opened with a token does not carry the authentication: each request does."""
    from tests.mcp.conftest import open_session

    session = open_session(world.url, world.tokens["alice"])
    before, okta_before = last_audit_id(), world.okta_requests()["count"]
    response = rpc_request(world.url, "tools/list", mode=LEGACY, session=session)
    _assert_refused_unknown(world, response, before, okta_before)
    ok = rpc_request(world.url, "tools/list", mode=LEGACY, session=session, token=world.tokens["alice"])
    assert ok.status_code == 200 and "result" in rpc_body(ok)


# --- the verifier's cheap refusals and the official SDK client ------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ["", "not a token!", "a" * 513, "abc\x00def", "ab,cd", "Bearer abc", "abc=def"])
def test_verifier_refuses_malformed_tokens_without_a_query(raw, django_assert_num_queries) -> None:
    """Malformed credentials cost no database work and no audit row: they cannot be used to load
    the database or grow the audit table at request rate."""
    from audit.services import RequestMeta
    from consent.tokens import Refusal, principal_for_token

    with django_assert_num_queries(0):
        refusal = principal_for_token(raw, RequestMeta())
    assert refusal == Refusal(401, "invalid_token", "malformed token")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["legacy", MODERN])
def test_sdk_client_reauthorizes_after_its_token_is_revoked(
    server_url, okta_org, public_client, demo_policy, mode
) -> None:
    """The 401 challenge is enough for a real client to recover: after revocation the SDK runs the
    flow again (the consent on record spares the user a second page) and carries on."""
    import anyio

    from tests.clients import MemoryTokenStorage, mcp_connection

    browser = Browser("alice")
    storage = MemoryTokenStorage(public_client.client_id)

    async def scenario() -> dict:
        out: dict = {}
        async with mcp_connection(server_url, browser, storage, mode=mode) as conn:
            out["first"] = (await conn.client.call_tool("whoami", {})).structured_content
            out["revoked_token"] = storage.tokens.access_token
            revoked = await anyio.to_thread.run_sync(
                lambda: httpx.post(
                    server_url + "/revoke",
                    data={"token": storage.tokens.access_token, "client_id": public_client.client_id},
                    timeout=10,
                )
            )
            out["revoke_status"] = revoked.status_code
            out["second"] = (await conn.client.call_tool("whoami", {})).structured_content
            out["new_token"] = storage.tokens.access_token
            out["authorizations"] = len(conn.authorizations)
        return out

    out = anyio.run(scenario)
    browser.close()
    assert out["revoke_status"] == 200
    assert out["first"]["login"] == out["second"]["login"] == "alice@acme.example"
    assert out["authorizations"] == 2 and len(browser.consent_pages) == 1
    assert out["new_token"] != out["revoked_token"]
    assert_challenge(rpc_request(server_url, "tools/list", token=out["revoked_token"]), 401, "invalid_token")
