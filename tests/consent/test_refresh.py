"""Requirement 18: refresh tokens rotate on every use; presenting a rotated one revokes its whole
family (and only that family); two simultaneous refreshes with one token leave one working family
and a clean invalid_grant for the loser, never a server error."""

from __future__ import annotations

import threading

import httpx2 as httpx
import pytest
from oauth2_provider.models import AccessToken, RefreshToken

from audit.models import AuditEvent
from consent.models import LoginSession
from tests.consent.conftest import Flow
from tests.consent.flows import checksum, mcp_list_tools, refresh

pytestmark = pytest.mark.django_db(transaction=True)


def _refresh(flow: Flow, token: str) -> httpx.Response:
    return refresh(flow.server_url, token, client_id=flow.client.client_id)


def _works(flow: Flow, tokens: dict) -> bool:
    return mcp_list_tools(flow.server_url, tokens["access_token"]).status_code == 200


def test_refresh_rotates_both_tokens(flow: Flow) -> None:
    first = flow.tokens()
    response = _refresh(flow, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    old = RefreshToken.objects.get(token_checksum=checksum(first["refresh_token"]))
    new = RefreshToken.objects.get(token_checksum=checksum(second["refresh_token"]))
    assert old.revoked is not None and new.revoked is None and old.token_family == new.token_family
    # The access token of the rotated refresh token goes with it.
    assert not _works(flow, first) and _works(flow, second)
    assert AuditEvent.objects.filter(event_type="token.refreshed", target=f"session:{new.token_family}").count() == 1


def test_reuse_of_a_rotated_refresh_token_revokes_the_family(flow: Flow) -> None:
    other_session = flow.tokens()  # an earlier authorization of the same user and client
    first = flow.tokens()
    family = RefreshToken.objects.get(token_checksum=checksum(first["refresh_token"])).token_family
    second = _refresh(flow, first["refresh_token"]).json()
    newest = _refresh(flow, second["refresh_token"]).json()
    assert _works(flow, newest)

    replay = _refresh(flow, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"

    # The whole family is dead: the newest refresh token, every access token it produced.
    after = _refresh(flow, newest["refresh_token"])
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
    assert not _works(flow, newest)
    assert not RefreshToken.objects.filter(token_family=family, revoked__isnull=True).exists()
    live_access = AccessToken.objects.filter(source_refresh_token__token_family=family).count()
    live_access += AccessToken.objects.filter(refresh_token__token_family=family).count()
    assert live_access == 0
    assert LoginSession.objects.get(token_family=family).revoked_at is not None
    reuse = AuditEvent.objects.filter(event_type="token.reuse_detected", target=f"session:{family}").order_by("id")[0]
    assert reuse.decision == "denied" and reuse.actor_login == "alice@acme.example"

    # Only that family: the user's other session still refreshes.
    assert _works(flow, other_session)
    assert _refresh(flow, other_session["refresh_token"]).status_code == 200


def test_simultaneous_refreshes_leave_one_working_family(flow: Flow) -> None:
    """Observed with daphne and SQLite: both requests pass validation, the first to take the write
    lock rotates the token, the other is answered invalid_grant (audited token.refresh_denied) and
    the winner's tokens keep working. A refresh arriving after the rotation committed is a replay
    and revokes the family (test above): then no family is left, which the assertions allow."""
    for _round in range(3):
        tokens = flow.tokens()
        barrier = threading.Barrier(3)
        answers: list[httpx.Response] = []

        def go() -> None:
            barrier.wait()
            answers.append(_refresh(flow, tokens["refresh_token"]))

        threads = [threading.Thread(target=go) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert all(a.status_code in (200, 400) for a in answers), [a.text[:200] for a in answers]
        winners = [a.json() for a in answers if a.status_code == 200]
        losers = [a.json() for a in answers if a.status_code == 400]
        assert len(winners) <= 1
        assert all(body["error"] == "invalid_grant" for body in losers)
        for answer in answers:
            assert answer.headers["content-type"] == "application/json"
            assert "no-store" in answer.headers["cache-control"]
        family = RefreshToken.objects.get(token_checksum=checksum(tokens["refresh_token"])).token_family
        live = RefreshToken.objects.filter(token_family=family, revoked__isnull=True)
        assert live.count() <= 1
        if winners and losers and live.exists():
            denied = AuditEvent.objects.filter(event_type="token.refresh_denied", target=f"session:{family}")
            assert denied.count() == len(losers)
        if winners and live.exists():
            assert live.get().token_checksum == checksum(winners[0]["refresh_token"])
            assert _works(flow, winners[0])
            assert _refresh(flow, winners[0]["refresh_token"]).status_code == 200
