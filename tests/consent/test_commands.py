"""revoke_consent, list_consents and clear_expired, with good and bad arguments, the database
checked before and after."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from oauth2_provider.models import AccessToken, Grant, RefreshToken

from audit.models import AuditEvent, EventType
from audit.selectors import audit_chain_verify
from consent.models import Consent, LoginSession
from tests.audit.helpers import Granted, grant_with_tokens, make_client, make_user, snapshot

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def world(db: None) -> dict[str, Granted]:
    """alice and bob, each with consent and live tokens for two clients."""
    alice, bob = make_user("alice@acme.example"), make_user("bob@acme.example")
    vscode, claude = make_client("vscode", "VS Code"), make_client("claude", "Claude")
    return {
        "alice-vscode": grant_with_tokens(alice, vscode),
        "alice-claude": grant_with_tokens(alice, claude),
        "bob-vscode": grant_with_tokens(bob, vscode),
        "bob-claude": grant_with_tokens(bob, claude),
    }


def _cut_off(g: Granted) -> bool:
    """Every credential of the pair is dead and the consent revoked."""
    g.consent.refresh_from_db()
    g.session.refresh_from_db()
    return (
        g.consent.revoked_at is not None
        and not AccessToken.objects.filter(pk=g.access.pk).exists()
        and RefreshToken.objects.get(pk=g.refresh.pk).revoked is not None
        and g.session.revoked_at is not None
    )


def _untouched(g: Granted) -> bool:
    g.consent.refresh_from_db()
    return (
        g.consent.revoked_at is None
        and AccessToken.objects.filter(pk=g.access.pk).exists()
        and RefreshToken.objects.get(pk=g.refresh.pk).revoked is None
    )


# --- revoke_consent ------------------------------------------------------------------------------


def test_revoke_by_user(world: dict[str, Granted]) -> None:
    out = run("revoke_consent", "--user", "ALICE@acme.example", "--reason", "laptop stolen")
    assert out.strip() == (
        "user alice@acme.example: revoked 2 consent(s), 2 access token(s), 2 refresh token(s), 2 login session(s)"
    )
    assert _cut_off(world["alice-vscode"]) and _cut_off(world["alice-claude"])
    assert _untouched(world["bob-vscode"]) and _untouched(world["bob-claude"])
    rows = AuditEvent.objects.filter(event_type=EventType.CONSENT_REVOKED)
    assert rows.count() == 2 and {r.reason for r in rows} == {"laptop stolen"}
    assert {r.user_agent for r in rows} == {"manage.py revoke_consent"}
    assert Consent.objects.get(pk=world["alice-vscode"].consent.pk).revoked_reason == "laptop stolen"
    # Safe to run twice: nothing left to revoke, nothing changes.
    before = snapshot()
    assert "revoked 0 consent(s), 0 access token(s), 0 refresh token(s), 0 login session(s)" in run(
        "revoke_consent", "--user", "alice@acme.example"
    )
    assert snapshot() == before
    assert audit_chain_verify().ok


def test_revoke_by_client(world: dict[str, Granted]) -> None:
    out = run("revoke_consent", "--client", "claude")
    assert out.startswith("client claude: revoked 2 consent(s), 2 access token(s)")
    assert _cut_off(world["alice-claude"]) and _cut_off(world["bob-claude"])
    assert _untouched(world["alice-vscode"]) and _untouched(world["bob-vscode"])
    assert (
        Consent.objects.get(pk=world["bob-claude"].consent.pk).revoked_reason == "revoked with manage.py revoke_consent"
    )


def test_revoke_user_and_client_means_that_pair(world: dict[str, Granted]) -> None:
    out = run("revoke_consent", "--user", "bob@acme.example", "--client", "vscode")
    assert "user bob@acme.example and client vscode: revoked 1 consent(s)" in out
    assert _cut_off(world["bob-vscode"])
    assert all(_untouched(world[k]) for k in ("alice-vscode", "alice-claude", "bob-claude"))


def test_revoke_all(world: dict[str, Granted]) -> None:
    out = run("revoke_consent", "--all", "--reason", "incident 42")
    assert out.startswith("all users and clients: revoked 4 consent(s), 4 access token(s), 4 refresh token(s)")
    assert all(_cut_off(g) for g in world.values())
    assert Consent.objects.active().count() == 0


def test_revoke_cuts_tokens_even_without_an_active_consent(world: dict[str, Granted]) -> None:
    """Tokens of an expired (not revoked) consent still go: revocation is of the pair."""
    g = world["alice-vscode"]
    Consent.objects.filter(pk=g.consent.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    run("revoke_consent", "--user", "alice@acme.example", "--client", "vscode")
    assert not AccessToken.objects.filter(pk=g.access.pk).exists()


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "name what to revoke"),
        (["--reason", "x"], "name what to revoke"),
        (["--user", "nobody@acme.example"], "no user with Okta login 'nobody@acme.example'"),
        (["--client", "no-such-client"], "no client with client_id 'no-such-client'"),
        (["--user", "alice@acme.example", "--client", "no-such-client"], "no client"),
        (["--user", "nobody@acme.example", "--client", "vscode"], "no user"),
        (["--all", "--user", "alice@acme.example"], "--all cannot be combined"),
        (["--all", "--client", "vscode"], "--all cannot be combined"),
    ],
)
def test_revoke_bad_arguments_change_nothing(world: dict[str, Granted], args: list[str], message: str) -> None:
    before = snapshot()
    with pytest.raises(CommandError, match=message):
        run("revoke_consent", *args)
    assert snapshot() == before
    assert all(_untouched(g) for g in world.values())


@pytest.mark.django_db(transaction=True)
def test_revoke_unknown_user_exits_non_zero_from_the_shell() -> None:
    from tests.conftest import _server_database_url

    g = grant_with_tokens(make_user("alice@acme.example"), make_client("vscode"))
    before = snapshot()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": _server_database_url()}
    result = subprocess.run(
        [sys.executable, "manage.py", "revoke_consent", "--user", "mallory@acme.example"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "no user with Okta login 'mallory@acme.example'" in result.stderr and "Traceback" not in result.stderr
    assert snapshot() == before and _untouched(g)


# --- list_consents -------------------------------------------------------------------------------


def test_list_consents(world: dict[str, Granted]) -> None:
    Consent.objects.filter(pk=world["bob-claude"].consent.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    run("revoke_consent", "--user", "alice@acme.example", "--client", "claude")
    lines = run("list_consents").splitlines()
    assert lines[0].split() == ["id", "user", "client", "scopes", "granted", "expires", "status"]
    assert lines[-1] == "4 consent(s)"
    by_id = {int(line.split()[0]): line.split() for line in lines[1:-1]}
    assert by_id[world["alice-vscode"].consent.pk][1:4] == ["alice@acme.example", "vscode", "mcp.read"]
    assert by_id[world["alice-vscode"].consent.pk][-1] == "active"
    assert by_id[world["alice-claude"].consent.pk][-1] == "revoked"
    assert by_id[world["bob-claude"].consent.pk][-1] == "expired"
    expires = world["alice-vscode"].consent.expires_at.strftime("%Y-%m-%d %H:%M:%SZ")
    assert expires in lines[1 + list(by_id).index(world["alice-vscode"].consent.pk)]

    def ids(*args: str) -> set[int]:
        return {int(line.split()[0]) for line in run("list_consents", *args).splitlines()[1:-1]}

    assert ids("--active") == {world["alice-vscode"].consent.pk, world["bob-vscode"].consent.pk}
    assert ids("--user", "bob@acme.example") == {world["bob-vscode"].consent.pk, world["bob-claude"].consent.pk}
    assert ids("--client", "claude", "--active") == set()
    assert ids("--user", "alice@acme.example", "--client", "vscode") == {world["alice-vscode"].consent.pk}


def test_list_consents_bad_arguments(world: dict[str, Granted]) -> None:
    before = snapshot()
    with pytest.raises(CommandError, match="no user"):
        run("list_consents", "--user", "nobody")
    with pytest.raises(CommandError, match="no client"):
        run("list_consents", "--client", "nothing")
    assert snapshot() == before


def test_list_consents_empty(db: None) -> None:
    assert run("list_consents").splitlines()[-1] == "0 consent(s)"


# --- clear_expired -------------------------------------------------------------------------------


def test_clear_expired(world: dict[str, Granted]) -> None:
    now = timezone.now()
    live, old = world["alice-vscode"], world["bob-claude"]
    # bob's claude pair: consent expired, access token expired long ago, refresh token revoked
    # past its lifetime, login session ended; an expired and a live authorization code.
    Consent.objects.filter(pk=old.consent.pk).update(expires_at=now - timedelta(hours=1))
    AccessToken.objects.filter(pk=old.access.pk).update(expires=now - timedelta(hours=5))
    RefreshToken.objects.filter(pk=old.refresh.pk).update(revoked=now - timedelta(hours=5))
    LoginSession.objects.filter(pk=old.session.pk).update(ends_at=now - timedelta(minutes=1))
    common = {
        "user": old.consent.user,
        "application": old.consent.application,
        "redirect_uri": "http://127.0.0.1/cb",
        "scope": "mcp.read",
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
    }
    stale = Grant.objects.create(code="stale-code", expires=now - timedelta(seconds=1), **common)
    fresh = Grant.objects.create(code="fresh-code", expires=now + timedelta(seconds=60), **common)

    out = run("clear_expired")
    assert out.strip() == (
        "removed 1 expired code(s), 1 access token(s), 1 refresh token(s), 0 ID token(s), "
        "1 ended login session(s); marked 1 consent(s) expired"
    )
    assert not Grant.objects.filter(pk=stale.pk).exists() and Grant.objects.filter(pk=fresh.pk).exists()
    assert not AccessToken.objects.filter(pk=old.access.pk).exists()
    assert not RefreshToken.objects.filter(pk=old.refresh.pk).exists()
    assert not LoginSession.objects.filter(pk=old.session.pk).exists()
    consent = Consent.objects.get(pk=old.consent.pk)  # consents are never deleted, only marked
    assert consent.expiry_recorded and consent.status == "expired"
    assert _untouched(live) and LoginSession.objects.filter(pk=live.session.pk).exists()
    summary = AuditEvent.objects.get(event_type=EventType.MAINTENANCE, target="clear_expired")
    assert summary.details == {
        "removed": {"codes": 1, "access": 1, "refresh": 1, "oidc": 0, "login_sessions": 1},
        "consents_marked_expired": 1,
    }
    assert summary.user_agent == "manage.py clear_expired"
    assert (
        AuditEvent.objects.filter(event_type=EventType.CONSENT_EXPIRED, target=f"consent:{old.consent.pk}").count() == 1
    )

    # Safe to run twice: nothing more to remove, the expiry is not recorded again.
    before = snapshot()
    assert run("clear_expired").startswith("removed 0 expired code(s), 0 access token(s), 0 refresh token(s)")
    after = snapshot()
    assert after.consents == before.consents and after.access_tokens == before.access_tokens
    assert after.refresh_tokens == before.refresh_tokens and after.sessions == before.sessions
    assert after.audit_rows == before.audit_rows + 1  # the second summary row only
    assert AuditEvent.objects.filter(event_type=EventType.CONSENT_EXPIRED).count() == 1


def test_clear_expired_keeps_recently_revoked_refresh_tokens(world: dict[str, Granted]) -> None:
    """A rotated (revoked) refresh token stays until its lifetime ends: presenting it again must
    still be recognised as reuse and revoke the family."""
    g = world["alice-claude"]
    g.refresh.revoke()
    run("clear_expired")
    assert RefreshToken.objects.filter(pk=g.refresh.pk, revoked__isnull=False).exists()
