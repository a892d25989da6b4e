"""Requirement 19: access tokens are short-lived; tokens and client secrets are stored as hashes
only; no raw token, code, verifier or secret reaches the logs of the servers under test or the
audit trail, whatever path it took (issue, refresh, reuse, revocation, a rejected bearer)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import check_password
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, Grant, RefreshToken

from audit.models import AuditEvent
from audit.services import RequestMeta
from consent import services
from consent.models import LoginSession
from tests.clients import LOOPBACK_REDIRECT
from tests.conftest import LOG_DIR
from tests.consent.conftest import Flow
from tests.consent.flows import checksum, mcp_list_tools, redeem, refresh, revoke

pytestmark = pytest.mark.django_db(transaction=True)


def _all_rows_text() -> str:
    rows = []
    for model in (AccessToken, RefreshToken, Grant, LoginSession, Application, AuditEvent):
        rows.extend(model.objects.values())
    return json.dumps(rows, default=str)


def test_tokens_are_short_lived_and_stored_hashed(flow: Flow) -> None:
    code, pkce = flow.code()
    tokens = redeem(flow.server_url, code, pkce, client_id=flow.client.client_id).json()
    assert 0 < tokens["expires_in"] <= 3600
    row = AccessToken.objects.get(token_checksum=checksum(tokens["access_token"]))
    assert row.token == "" and row.expires - timezone.now() <= timedelta(seconds=3600)
    refreshed = refresh(flow.server_url, tokens["refresh_token"], client_id=flow.client.client_id).json()
    row = AccessToken.objects.get(token_checksum=checksum(refreshed["access_token"]))
    assert row.token == "" and row.expires - timezone.now() <= timedelta(seconds=3600)
    for raw in (tokens["refresh_token"], refreshed["refresh_token"]):
        assert RefreshToken.objects.get(token_checksum=checksum(raw)).token == ""
    # The redeemed code survives only as the hash that detects its replay.
    assert not Grant.objects.exists()
    assert LoginSession.objects.get().code_hash == checksum(code)
    text = _all_rows_text()
    for raw in (code, *tokens.values(), *refreshed.values()):
        if isinstance(raw, str) and len(raw) >= 20:
            assert raw not in text


def test_confidential_client_secret_is_stored_hashed_and_works(flow: Flow, unchanged) -> None:
    app, secret = services.client_register(
        name="Confidential MCP client",
        client_id="confidential-mcp-client",
        redirect_uris=[LOOPBACK_REDIRECT],
        confidential=True,
        actor=None,
        meta=RequestMeta(user_agent="pytest"),
    )
    assert secret and app.client_type == Application.CLIENT_CONFIDENTIAL
    stored = Application.objects.get(pk=app.pk).client_secret
    assert stored != secret and secret not in stored and stored.startswith("pbkdf2_sha256$")
    assert check_password(secret, stored)
    assert secret not in _all_rows_text()

    code, pkce = flow.code(client_id=app.client_id)
    with unchanged():
        for auth in [None, (app.client_id, "wrong-secret"), (app.client_id, stored)]:
            response = redeem(flow.server_url, code, pkce, client_id=app.client_id, auth=auth)
            assert response.status_code == 401 and response.json()["error"] == "invalid_client", auth
    response = redeem(flow.server_url, code, pkce, client_id=app.client_id, auth=(app.client_id, secret))
    assert response.status_code == 200, response.text


def test_raw_secrets_never_reach_logs_or_audit(flow: Flow, second_client) -> None:
    log_sizes = {p: p.stat().st_size for p in LOG_DIR.glob("*.log")}
    raws: list[str] = []
    code, pkce = flow.code()
    raws += [code, pkce.verifier]
    first = redeem(flow.server_url, code, pkce, client_id=flow.client.client_id).json()
    redeem(flow.server_url, code, pkce, client_id=flow.client.client_id)  # replay: revokes `first`
    mcp_list_tools(flow.server_url, first["access_token"])  # a rejected (deleted) token
    second = flow.tokens()
    third = refresh(flow.server_url, second["refresh_token"], client_id=flow.client.client_id).json()
    refresh(flow.server_url, second["refresh_token"], client_id=flow.client.client_id)  # reuse detected
    fourth = flow.tokens()
    mcp_list_tools(flow.server_url, fourth["access_token"])
    revoke(flow.server_url, fourth["refresh_token"], client_id=second_client.client_id)  # foreign: ignored
    revoke(flow.server_url, fourth["access_token"], client_id=flow.client.client_id)
    mcp_list_tools(flow.server_url, fourth["access_token"])  # revoked
    for tokens in (first, second, third, fourth):
        raws += [tokens["access_token"], tokens["refresh_token"]]
    assert all(len(r) >= 20 for r in raws)

    audit = json.dumps(list(AuditEvent.objects.values()), default=str)
    for raw in raws:
        assert raw not in audit
    for path, start in log_sizes.items():
        with path.open("rb") as f:
            f.seek(start)
            written = f.read().decode("utf-8", "replace")
        for raw in raws:
            assert raw not in written, f"a raw credential appears in {path.name}"
    assert sum(p.stat().st_size for p in LOG_DIR.glob("*.log")) > sum(log_sizes.values())
