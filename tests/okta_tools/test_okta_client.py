"""The pieces under the tools, in this process, with the real okta SDK: a refused connection, the
identifier and cursor checks, and the confirmation service's bindings."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import anyio
import pytest
from django.utils import timezone

from consent.tokens import Principal
from tests.conftest import ROOT, _start, _stop, _wait_http
from tools.catalogue.common import checked_identifier, cursor_decode, cursor_encode
from tools.confirmations import ConfirmationRefused, confirmation_issue, confirmation_redeem
from tools.context import ToolFailure
from tools.models import ToolConfirmation
from tools.okta import OktaCallInfo, OktaError, okta_call, okta_client_reset, okta_read


@pytest.fixture
def fresh_client(settings: Any) -> Iterator[Any]:
    """A client built from the settings as the test leaves them, and the normal one afterwards."""
    okta_client_reset()
    yield settings
    okta_client_reset()


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


def test_connection_refused_is_a_clear_error(fresh_client: Any) -> None:
    fresh_client.OKTA_ORG_URL = f"http://127.0.0.1:{_dead_port()}"
    info = OktaCallInfo()
    with pytest.raises(OktaError) as caught:
        anyio.run(lambda: okta_call("get_user", "00u1bob0000000000001", info=info))
    assert str(caught.value) == f"Okta could not be reached at {fresh_client.OKTA_ORG_URL} (connection refused)"
    assert caught.value.code == "unreachable" and info.calls == 1 and info.request_ids == []


def test_an_exhausted_rate_limit_bucket_is_honoured_without_a_request(fresh_client: Any) -> None:
    """Okta says X-Rate-Limit-Remaining: 0 on a success: the next call in that bucket does not
    spend a request on a certain 429; it waits for the reset, or (past the bound) says when to retry."""
    port = _dead_port()
    api = _start(
        "okta-api-rate-limited",
        [sys.executable, "-m", "sandbox.okta_api", "--port", str(port), "--rate-limit", "2"],
        {**os.environ, "OKTA_API_TOKEN": fresh_client.OKTA_API_TOKEN},
        cwd=ROOT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(url + "/__health", api, "rate-limited sandbox Okta API")
        fresh_client.OKTA_ORG_URL = url
        info = OktaCallInfo()
        for _ in range(2):
            anyio.run(lambda: okta_read("/api/v1/groups", info=info))
        with pytest.raises(OktaError) as caught:
            anyio.run(lambda: okta_read("/api/v1/groups", info=info))
        assert str(caught.value).startswith("rate limited, retry after ") and caught.value.retry_after
        assert info.calls == 2  # the third call never left this process
        import httpx2 as httpx

        assert httpx.get(url + "/__sandbox/requests", timeout=10).json()["count"] == 2
        # Another bucket is not affected.
        anyio.run(lambda: okta_read("/api/v1/users", info=info))
        assert info.calls == 3
    finally:
        _stop(api)


def test_okta_answers_read_through_the_real_sdk(okta_org: str, fresh_client: Any) -> None:
    info = OktaCallInfo()
    user, response = anyio.run(lambda: okta_call("get_user", "bob@acme.example", info=info))
    assert user.profile.login == "bob@acme.example" and len(info.request_ids) == 1
    with pytest.raises(OktaError) as caught:
        anyio.run(lambda: okta_call("get_user", "nosuch@acme.example", info=info))
    assert caught.value.status == 404 and caught.value.code == "E0000007" and caught.value.request_id == info.request_ids[-1]
    # Lifecycle calls answer (response, error) on failure: read the same way.
    with pytest.raises(OktaError) as caught:
        anyio.run(lambda: okta_call("unsuspend_user", "00u1bob0000000000001", info=info))
    assert caught.value.code == "E0000001" and "Cannot unsuspend" in str(caught.value)


@pytest.mark.parametrize(
    "value", ["../00u1", "00u1%2f..", "a?b", "a#b", "a b", "a/b", "..", "%2e%2e", "00u1\n", "a\\b", "-", "", "a" * 65, "é"]
)
def test_identifiers_that_could_change_the_path_are_refused(value: str) -> None:
    with pytest.raises(ToolFailure, match="^invalid group id: "):
        checked_identifier(value, "group id")
    if value not in ("a" * 65,):
        with pytest.raises(ToolFailure, match="^invalid user: "):
            checked_identifier(value, "user", login=True)


def test_identifiers_that_are_fine() -> None:
    assert checked_identifier("00g1helpdesk000000001", "group id") == "00g1helpdesk000000001"
    assert checked_identifier("jane.doe+it@acme.example", "user", login=True) == "jane.doe+it@acme.example"
    with pytest.raises(ToolFailure):
        checked_identifier("jane.doe@acme.example", "user id")  # ids only where an id is asked for


def test_cursor_is_signed_and_bound() -> None:
    cursor = cursor_encode(tool="list_users", query={"q": "al"}, position={"a": "00u1", "args": []})
    assert "00u1" not in cursor
    assert cursor_decode(cursor, tool="list_users", query={"q": None}) == ({"q": "al"}, {"a": "00u1", "args": []})
    assert cursor_decode(cursor, tool="list_users", query={"q": "al"})[1]["a"] == "00u1"
    for bad, tool, query, message in (
        (cursor[:-2] + "xx", "list_users", {}, "altered"),
        (cursor, "list_groups", {}, "another tool"),
        (cursor, "list_users", {"q": "bo"}, "q differs"),
    ):
        with pytest.raises(ToolFailure, match=message):
            cursor_decode(bad, tool=tool, query=query)


def _principal(user: Any, client_id: str = "c1") -> Principal:
    now = timezone.now()
    return Principal(
        user_id=user.pk, okta_sub=user.okta_sub, login=user.okta_login, client_id=client_id, client_name=client_id,
        scopes=frozenset({"mcp.read", "mcp.write"}), token_expires=now, consent_id=1, consent_expires=now,
        groups=(), group_ids=(),
    )  # fmt: skip


@pytest.mark.django_db
def test_confirmation_tokens_bind_user_client_tool_arguments() -> None:
    from accounts.models import User

    alice = User.objects.create(username="okta:a", okta_sub="sub-a", okta_login="alice@acme.example")
    mallory = User.objects.create(username="okta:m", okta_sub="sub-m", okta_login="mallory@acme.example")
    args = {"user_id": "00u1bob0000000000001"}
    issued = confirmation_issue(principal=_principal(alice), tool="suspend_user", arguments=args, summary="Suspend bob")
    assert ToolConfirmation.objects.get().token_hash != issued.token and issued.token not in str(
        list(ToolConfirmation.objects.values())
    )
    refusals = [
        (_principal(mallory), "suspend_user", args, "confirmation_invalid"),
        (_principal(alice, "c2"), "suspend_user", args, "confirmation_invalid"),
        (_principal(alice), "suspend_user", {"user_id": "00u1carol00000000001"}, "confirmation_mismatch"),
        (_principal(alice), "deactivate_user", args, "confirmation_mismatch"),
    ]
    for principal, tool, arguments, code in refusals:
        with pytest.raises(ConfirmationRefused) as caught:
            confirmation_redeem(principal=principal, tool=tool, arguments=arguments, token=issued.token)
        assert caught.value.code == code
    # Refusals did not use it up; the right call does, once.
    assert confirmation_redeem(principal=_principal(alice), tool="suspend_user", arguments=args, token=issued.token).used_at
    with pytest.raises(ConfirmationRefused) as caught:
        confirmation_redeem(principal=_principal(alice), tool="suspend_user", arguments=args, token=issued.token)
    assert caught.value.code == "confirmation_used"
    late = confirmation_issue(principal=_principal(alice), tool="suspend_user", arguments=args, summary="Suspend bob")
    ToolConfirmation.objects.filter(used_at__isnull=True).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ConfirmationRefused) as caught:
        confirmation_redeem(principal=_principal(alice), tool="suspend_user", arguments=args, token=late.token)
    assert caught.value.code == "confirmation_expired"
