"""The pieces under the tools, in this process, with the real okta SDK: its configuration (from our
settings only), its connections (one per event loop, kept alive), a refused connection, the
identifier and cursor checks, the compaction of Okta's JSON, and the confirmation service's bindings."""

from __future__ import annotations

import gc
import logging
import os
import socket
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from django.utils import timezone

from consent.tokens import Principal
from tests.conftest import ROOT, _start, _stop, _wait_http
from tests.okta_tools.conftest import BOB, Sandbox
from tools.catalogue.common import RawPage, checked_identifier, cursor_decode, cursor_encode, page_of
from tools.catalogue.users import UserPage, user_fields, user_summary
from tools.confirmations import ConfirmationRefused, confirmation_issue, confirmation_redeem
from tools.context import ToolFailure
from tools.models import ToolConfirmation
from tools.okta import OktaCallInfo, OktaError, okta_call, okta_client, okta_client_reset, okta_read


@pytest.fixture
def fresh_client(settings: Any) -> Iterator[Any]:
    """A client built from the settings as the test leaves them, and the normal one afterwards."""
    okta_client_reset()
    yield settings
    okta_client_reset()


def _okta_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "okta_mcp.okta" and r.levelno == logging.WARNING]


def test_the_sdk_reads_no_configuration_of_its_own_and_what_it_would_have_read_is_named(
    okta_org: str, fresh_client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Stray okta.yaml and OKTA_CLIENT_* variables would silently change the SDK's client (another
    org, another token, DPoP, retries): ours takes none of them, and says which it ignores."""
    from okta.config import config_setter

    stray_yaml = tmp_path / "okta.yaml"
    stray_yaml.write_text("okta:\n  client:\n    orgUrl: https://stray.okta.com\n    rateLimit:\n      maxRetries: 5\n")
    monkeypatch.setattr(config_setter, "_LOCAL_YAML_PATH", str(stray_yaml))
    monkeypatch.setattr(config_setter, "_GLOBAL_YAML_PATH", str(tmp_path / "absent" / "okta.yaml"))
    for name, value in (
        ("OKTA_CLIENT_TOKEN", "stray-token"),
        ("OKTA_CLIENT_DPOPENABLED", "true"),
        ("OKTA_CLIENT_REQUESTTIMEOUT", "1"),
        ("OKTA_TESTING_TESTINGDISABLEHTTPSCHECK", "1"),
    ):
        monkeypatch.setenv(name, value)
    # The SDK's own loader takes them all:
    unguarded = config_setter.ConfigSetter().get_config()
    assert unguarded["client"]["orgUrl"] == "https://stray.okta.com" and unguarded["client"]["token"] == "stray-token"
    assert unguarded["client"]["rateLimit"]["maxRetries"] == 5 and unguarded["client"]["dpopEnabled"] == "true"

    caplog.set_level(logging.WARNING, logger="okta_mcp.okta")
    config = okta_client().get_config()["client"]
    assert _okta_warnings(caplog) == [
        "ignoring Okta SDK configuration found outside our settings: OKTA_CLIENT_DPOPENABLED, "
        f"OKTA_CLIENT_REQUESTTIMEOUT, OKTA_CLIENT_TOKEN, OKTA_TESTING_TESTINGDISABLEHTTPSCHECK, {stray_yaml}"
    ]
    assert (config["orgUrl"], config["token"]) == (fresh_client.OKTA_ORG_URL, fresh_client.OKTA_API_TOKEN)
    assert config["rateLimit"]["maxRetries"] == 0 and config["requestTimeout"] == fresh_client.OKTA_REQUEST_TIMEOUT_SECONDS
    assert not config.get("dpopEnabled")
    # And it works, with our credential.
    sandbox = Sandbox(okta_org)
    assert anyio.run(lambda: okta_read("/api/v1/users/{}", BOB)).body["id"] == BOB
    assert [(r["auth"], r["authorized"]) for r in sandbox.requests()] == [("ssws", True)]
    sandbox.close()


def test_our_own_settings_are_not_mistaken_for_the_sdks(fresh_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    """OKTA_CLIENT_ID and OKTA_CLIENT_SECRET (the login client) share the SDK's prefix, not its names."""
    assert os.environ["OKTA_CLIENT_ID"] and os.environ["OKTA_CLIENT_SECRET"]  # tests/settings.py
    assert not [name for name in os.environ if name.startswith("OKTA_CLIENT_") and name not in ("OKTA_CLIENT_ID", "OKTA_CLIENT_SECRET")]
    caplog.set_level(logging.WARNING, logger="okta_mcp.okta")
    okta_client()
    assert _okta_warnings(caplog) == []


def _private_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize("dpop", [False, True])
def test_a_service_app_uses_dpop_when_our_setting_says_so(fresh_client: Any, dpop: bool) -> None:
    fresh_client.OKTA_API_TOKEN = ""
    fresh_client.OKTA_SERVICE_CLIENT_ID = "0oa-service"
    fresh_client.OKTA_PRIVATE_KEY = _private_key_pem()
    fresh_client.OKTA_DPOP = dpop
    client = okta_client()
    assert client.get_config()["client"]["authorizationMode"] == "PrivateKey"
    assert client.get_request_executor()._oauth.is_dpop_enabled() is dpop


def test_calls_in_one_event_loop_share_one_kept_alive_connection(okta_org: str, fresh_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Reads, a typed SDK call and an Okta error, one after the other in one event loop: one TCP
    connection (the sandbox records each request's client port). A loop's connections are closed
    with it: nothing is left unclosed when a loop ends."""
    sandbox = Sandbox(okta_org)

    async def calls() -> None:
        await okta_read("/api/v1/users", query={"limit": 2})
        await okta_read("/api/v1/groups")
        user, _ = await okta_call("get_user", BOB)
        assert user.id == BOB
        with pytest.raises(OktaError):
            await okta_read("/api/v1/users/{}", "nosuch@acme.example")
        await okta_read("/api/v1/users/{}", BOB)

    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        anyio.run(calls)
        anyio.run(calls)
        gc.collect()
    ports = [r["client_port"] for r in sandbox.requests()]
    sandbox.close()
    assert len(ports) == 10 and all(ports)
    assert len(set(ports[:5])) == 1 and len(set(ports[5:])) == 1 and ports[0] != ports[5]
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert [r.getMessage() for r in caplog.records if "nclosed" in r.getMessage()] == []


def _okta_user(**overrides: Any) -> dict[str, Any]:
    user = {
        "id": "00u1", "status": "ACTIVE", "created": "2024-03-06T16:20:01.000Z", "lastLogin": None,
        "statusChanged": "2024-03-07T08:00:00.000Z", "lastUpdated": "2024-03-07T08:00:00.000Z",
        "profile": {"login": "a@acme.example", "email": "a@acme.example", "firstName": "A", "lastName": "B", "mobilePhone": None},
        "_links": {"self": {"href": "https://acme.okta.com/api/v1/users/00u1"}},
    }  # fmt: skip
    return {**user, **overrides}


def test_compact_users_from_okta_json_in_a_page_and_alone() -> None:
    """A page is validated in one go from the users' fields; each item is what the single-user path
    (get_user) gives for the same JSON, odd shapes included."""
    odd = [
        _okta_user(),
        _okta_user(id="00u2", profile=None, lastLogin="2025-01-02T03:04:05.678Z"),
        _okta_user(id="00u3", status=None, profile={"login": 12345, "email": None}),
        {"id": "00u4"},
    ]
    page = page_of(UserPage, RawPage(items=odd, next_cursor="c", query={}), user_fields, False)
    assert page.returned == 4 and page.next_cursor == "c"
    assert [item.model_dump() for item in page.items] == [user_summary(u).model_dump() for u in odd]
    first, second, third, fourth = (item.model_dump() for item in page.items)
    assert first == {
        "id": "00u1", "status": "ACTIVE", "login": "a@acme.example", "email": "a@acme.example", "first_name": "A",
        "last_name": "B", "last_login": None, "created": datetime(2024, 3, 6, 16, 20, 1, tzinfo=UTC),
        "status_changed": datetime(2024, 3, 7, 8, 0, tzinfo=UTC), "full": None,
    }  # fmt: skip
    assert (second["login"], second["email"], second["last_login"]) == ("", None, datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC))
    assert (third["status"], third["login"], third["email"]) == ("", "12345", None)
    assert fourth == {**dict.fromkeys(first, None), "id": "00u4", "status": "", "login": ""}
    full = page_of(UserPage, RawPage(items=odd[:1], next_cursor=None, query={}), user_fields, True)
    assert full.items[0].full == odd[0] and full.next_cursor is None


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
