"""Security data in Django admin: audit rows, consents and tokens are read-only for everyone,
superusers included; tokens are never shown or searchable; actions revoke through the services."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import AccessToken, Grant, IDToken, RefreshToken

from audit.models import AuditEvent, Decision, EventType
from audit.services import RequestMeta, audit_record
from consent.models import Consent
from tests.audit.helpers import grant_with_tokens, make_client, make_user

pytestmark = pytest.mark.django_db


def _changelist(model: type) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def _url(model: type, view: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _actions(client: Client, model: type) -> set[str]:
    response = client.get(_changelist(model))
    assert response.status_code == 200
    return {value for value, _ in response.context["action_form"].fields["action"].choices if value}


def _assert_read_only(client: Client, model: type, obj: object) -> None:
    assert client.get(_url(model, "add")).status_code == 403
    assert client.post(_url(model, "add"), {}).status_code == 403
    assert client.get(_url(model, "change", obj.pk)).status_code == 200  # view only
    assert client.post(_url(model, "change", obj.pk), {}).status_code == 403
    assert client.get(_url(model, "delete", obj.pk)).status_code == 403
    assert client.post(_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert "delete_selected" not in _actions(client, model)
    assert model.objects.filter(pk=obj.pk).exists()


def _events() -> dict[str, AuditEvent]:
    meta = RequestMeta(request_id="req-0123456789")
    alice, bob = make_user("alice@acme.example"), make_user("bob@acme.example")

    return {
        "call": audit_record(
            event_type=EventType.TOOL_CALL,
            actor=alice,
            client_id="vscode",
            target="get_user",
            decision=Decision.ALLOWED,
            details={"arguments": {"user": "<script>alert(1)</script>"}},
            meta=meta,
        ),
        "denied": audit_record(
            event_type=EventType.TOOL_CALL,
            actor=bob,
            client_id="claude",
            target="deactivate_user",
            decision=Decision.DENIED,
            reason="not granted",
            meta=RequestMeta(),
        ),
        "login": audit_record(event_type=EventType.LOGIN_SUCCESS, actor=bob, target="user:2", meta=RequestMeta()),
    }


def _listed(client: Client, query: str) -> list[int]:
    response = client.get(_changelist(AuditEvent) + query)
    assert response.status_code == 200, query
    return sorted(e.pk for e in response.context["cl"].result_list)


# --- audit trail ---------------------------------------------------------------------------------


def test_audit_rows_are_read_only_for_superusers(superuser_client: Client) -> None:
    events = _events()
    _assert_read_only(superuser_client, AuditEvent, events["call"])
    assert _actions(superuser_client, AuditEvent) == {"export_csv"}
    assert AuditEvent.objects.get(pk=events["call"].pk).hash == events["call"].hash


def test_audit_filters_and_search(superuser_client: Client) -> None:
    e = _events()
    make_client("vscode", "VS Code")
    assert _listed(superuser_client, "?event_type=tool.call") == sorted([e["call"].pk, e["denied"].pk])
    assert _listed(superuser_client, "?decision=denied") == [e["denied"].pk]
    assert _listed(superuser_client, "?actor_login=bob%40acme.example") == sorted([e["denied"].pk, e["login"].pk])
    assert _listed(superuser_client, "?client_id=vscode") == [e["call"].pk]
    assert _listed(superuser_client, "?tool=get_user") == [e["call"].pk]
    today, tomorrow = timezone.now(), timezone.now() + timedelta(days=1)
    assert (
        len(
            _listed(
                superuser_client, f"?created__year={today.year}&created__month={today.month}&created__day={today.day}"
            )
        )
        == 3
    )
    assert (
        _listed(
            superuser_client,
            f"?created__year={tomorrow.year}&created__month={tomorrow.month}&created__day={tomorrow.day}",
        )
        == []
    )
    assert _listed(superuser_client, "?q=req-0123456789") == [e["call"].pk]
    assert _listed(superuser_client, "?q=alice%40acme.example") == [e["call"].pk]
    assert _listed(superuser_client, "?q=claude") == [e["denied"].pk]
    page = superuser_client.get(_changelist(AuditEvent)).content.decode()
    assert "VS Code (vscode)" in page and ">get_user<" in page  # filter choices


def test_audit_detail_renders_json_readably_and_escaped(superuser_client: Client) -> None:
    event = _events()["call"]
    page = superuser_client.get(_url(AuditEvent, "change", event.pk)).content.decode()
    assert "<pre>{\n  &quot;arguments&quot;: {\n    &quot;user&quot;: &quot;&lt;script&gt;" in page
    assert "<script>alert(1)" not in page
    assert event.hash in page and event.request_id in page


def test_audit_csv_export_action_returns_the_selected_rows(superuser_client: Client) -> None:
    e = _events()
    selected = [e["call"].pk, e["login"].pk]
    response = superuser_client.post(
        _changelist(AuditEvent), {"action": "export_csv", "_selected_action": selected, "index": 0}
    )
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert sorted(int(r["id"]) for r in rows) == sorted(selected)
    assert {r["hash"] for r in rows} == {e["call"].hash, e["login"].hash}
    exported = AuditEvent.objects.order_by("-id").first()
    assert exported.event_type == EventType.AUDIT_EXPORTED and exported.actor_login == "admin"
    assert exported.details["rows"] == 2


# --- consents ------------------------------------------------------------------------------------


def test_consent_admin_filters_read_only_and_revoke(superuser_client: Client) -> None:
    alice, bob = make_user("alice@acme.example"), make_user("bob@acme.example")
    vscode, claude = make_client("vscode"), make_client("claude")
    active = grant_with_tokens(alice, vscode)
    other = grant_with_tokens(bob, claude)
    expired = grant_with_tokens(bob, vscode)
    Consent.objects.filter(pk=expired.consent.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    _assert_read_only(superuser_client, Consent, active.consent)

    def listed(query: str) -> list[int]:
        response = superuser_client.get(_changelist(Consent) + query)
        return sorted(c.pk for c in response.context["cl"].result_list)

    assert listed("?status=active") == sorted([active.consent.pk, other.consent.pk])
    assert listed("?status=expired") == [expired.consent.pk]
    assert listed(f"?user__id__exact={bob.pk}") == sorted([other.consent.pk, expired.consent.pk])
    assert listed(f"?application__id__exact={claude.pk}") == [other.consent.pk]

    response = superuser_client.post(
        _changelist(Consent),
        {"action": "revoke_selected", "_selected_action": [active.consent.pk], "index": 0},
        follow=True,
    )
    page = response.content.decode()
    assert "Revoked 1 consent(s), 1 access token(s), 1 refresh token(s), 1 login session(s)" in page
    assert listed("?status=revoked") == [active.consent.pk]
    assert not AccessToken.objects.filter(pk=active.access.pk).exists()
    assert RefreshToken.objects.get(pk=active.refresh.pk).revoked is not None
    # Only the selected pair: bob's tokens are untouched.
    assert AccessToken.objects.filter(pk__in=[other.access.pk, expired.access.pk]).count() == 2
    row = AuditEvent.objects.get(event_type=EventType.CONSENT_REVOKED)
    assert row.actor_login == "admin" and row.target == f"consent:{active.consent.pk}"
    assert row.reason == "revoked in admin by admin"


# --- tokens --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [AccessToken, RefreshToken, Grant, IDToken])
def test_token_admins_are_read_only_and_never_show_or_search_the_secret(superuser_client: Client, model: type) -> None:
    granted = grant_with_tokens(make_user("alice@acme.example"), make_client("vscode"))
    raw = {AccessToken: granted.raw_access, RefreshToken: granted.raw_refresh}.get(model)
    if model is Grant:
        obj = Grant.objects.create(
            user=granted.consent.user,
            application=granted.consent.application,
            code="grant-code-0123456789abcdef",
            expires=timezone.now() + timedelta(seconds=60),
            redirect_uri="http://127.0.0.1/cb",
            scope="mcp.read",
            code_challenge="x" * 43,
            code_challenge_method="S256",
        )
        raw = "grant-code-0123456789abcdef"
    elif model is IDToken:
        obj = IDToken.objects.create(
            user=granted.consent.user, application=granted.consent.application, expires=timezone.now(), scope="openid"
        )
    else:
        obj = model.objects.get(pk=(granted.access if model is AccessToken else granted.refresh).pk)
    _assert_read_only(superuser_client, model, obj)
    assert "revoke_selected" in _actions(superuser_client, model)
    model_admin = admin.site._registry[model]
    assert not any(f.split("__")[0] in ("token", "token_checksum", "code", "jti") for f in model_admin.search_fields)
    if raw:
        pages = (
            superuser_client.get(_changelist(model)).content.decode()
            + superuser_client.get(_url(model, "change", obj.pk)).content.decode()
        )
        assert raw not in pages
        checksum = getattr(obj, "token_checksum", None)
        assert not checksum or checksum not in pages
        # Searching for the value finds nothing, and does not need to: it is not a search field.
        assert list(superuser_client.get(_changelist(model) + f"?q={raw}").context["cl"].result_list) == []


def test_token_revoke_actions(superuser_client: Client) -> None:
    alice = make_user("alice@acme.example")
    first = grant_with_tokens(alice, make_client("vscode"))
    second = grant_with_tokens(alice, make_client("claude"))
    superuser_client.post(
        _changelist(AccessToken), {"action": "revoke_selected", "_selected_action": [first.access.pk], "index": 0}
    )
    # An access token goes with its refresh token (RFC 7009 §2.1 semantics, as DOT's /revoke does).
    assert not AccessToken.objects.filter(pk=first.access.pk).exists()
    assert RefreshToken.objects.get(pk=first.refresh.pk).revoked is not None
    superuser_client.post(
        _changelist(RefreshToken), {"action": "revoke_selected", "_selected_action": [second.refresh.pk], "index": 0}
    )
    assert RefreshToken.objects.get(pk=second.refresh.pk).revoked is not None
    assert not AccessToken.objects.filter(pk=second.access.pk).exists()
    rows = AuditEvent.objects.filter(event_type=EventType.TOKEN_REVOKED, actor_login="admin").order_by("id")
    assert [r.details["access"] for r in rows] == [[first.access.pk], []]
    assert [r.details["refresh"] for r in rows] == [[], [second.refresh.pk]]
    # Revoking again revokes nothing and writes nothing.
    superuser_client.post(
        _changelist(RefreshToken), {"action": "revoke_selected", "_selected_action": [second.refresh.pk], "index": 0}
    )
    assert rows.count() == 2
