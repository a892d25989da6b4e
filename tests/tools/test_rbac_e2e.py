"""Role-based tool access with real parts: the official MCP SDK client, the sandbox Okta login and
Management API, this server under daphne, and the Django admin. People in different Okta groups
connecting the same client get different tools; a tool the roles do not grant looks exactly like a
tool that does not exist; group changes in Okta apply at the next refresh; a suspended or
deactivated user loses every token; and an admin's policy change applies to the very next request."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import pytest
from django.core.management import call_command
from django.db import connections
from django.test import Client as DjangoClient
from mcp.shared.exceptions import MCPError
from oauth2_provider.models import AccessToken, RefreshToken

from accounts.models import User
from audit.models import AuditEvent
from consent.models import Consent, LoginSession
from tests.clients import Browser, MemoryTokenStorage, mcp_connection, tool_names
from tests.tools.conftest import (
    BOB_ID,
    CAROL_ID,
    HELPDESK_ID,
    JANE_ID,
    MODEL_BACKEND,
    LoginRefused,
    StoppingBrowser,
    admin_form_data,
    command_tools,
    sandbox_requests,
    view_tools,
)
from tools.models import Role
from tools.registry import REGISTRY

pytestmark = pytest.mark.django_db(transaction=True)

# The stateless protocol generation; the tests in tests/e2e cover both generations of the flow.
MODE = "2026-07-28"
T = TypeVar("T")


async def in_django(fn: Callable[[], T]) -> T:
    """Run synchronous Django code (ORM, test client) from the async scenario, in a worker thread
    that closes its database connection afterwards."""

    def run() -> T:
        try:
            return fn()
        finally:
            connections.close_all()

    return await anyio.to_thread.run_sync(run)


def read_tools() -> list[str]:
    return sorted(n for n, s in REGISTRY.items() if s.access == "read")


def write_tools() -> list[str]:
    return sorted(n for n, s in REGISTRY.items() if s.access == "write")


def _contains(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether `kind` is `exc`, its cause, or inside an exception group anywhere down the chain."""
    if isinstance(exc, kind):
        return True
    inner = [*getattr(exc, "exceptions", ()), exc.__cause__, exc.__context__]
    return any(_contains(e, kind) for e in inner if e is not None)


def _checksum(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# The MCP specification's protocol error for an unknown tool, with the name taken out.
UNKNOWN = ("protocol error", -32602, "Unknown tool: <name>")


async def call(client: Any, name: str, arguments: dict[str, Any]) -> Any:
    """The result of a call, or the protocol error the SDK client raised for it."""
    try:
        return await client.call_tool(name, arguments)
    except MCPError as exc:
        return exc


def unknown_tool_shape(outcome: Any, name: str) -> tuple:
    """What a client can observe of a call, with the tool's name taken out."""
    if isinstance(outcome, MCPError):
        return ("protocol error", outcome.code, outcome.message.replace(name, "<name>"))
    return (
        "result",
        outcome.is_error,
        [(c.type, c.text.replace(name, "<name>")) for c in outcome.content],
        outcome.structured_content,
    )


def test_people_in_different_groups_get_different_tools_from_the_same_client(
    server_url, okta_org, public_client, demo_policy
) -> None:
    assert write_tools(), "the catalogue has a write tool, so an admin's list can differ from a viewer's"
    hidden = "clear_user_sessions" if "clear_user_sessions" in REGISTRY else write_tools()[0]
    required = REGISTRY[hidden].input_model.model_json_schema().get("required", [])
    hidden_args = {name: JANE_ID for name in required}

    async def connect(user: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        browser = Browser(user)
        storage = MemoryTokenStorage(public_client.client_id)
        try:
            async with mcp_connection(server_url, browser, storage, mode=MODE) as conn:
                out["read_list"] = tool_names(await conn.client.list_tools())
                out["first_scope"] = storage.tokens.scope if storage.tokens else None
                # For alice the write tool is granted: the 403 step-up, re-authorization with
                # mcp.write, and the retried call succeeds. For the others it does not exist.
                out["hidden"] = await call(conn.client, hidden, hidden_args)
                out["hidden_no_args"] = await call(conn.client, hidden, {})
                out["unknown"] = await call(conn.client, "no_such_tool", hidden_args)
                out["whoami"] = await call(conn.client, "whoami", {})
                out["list"] = tool_names(await conn.client.list_tools())
                out["scope"] = storage.tokens.scope if storage.tokens else None
                out["authorizations"] = len(conn.authorizations)
        finally:
            browser.close()
        out["consent_pages"] = browser.consent_pages
        return out

    alice = anyio.run(connect, "alice")
    okta_seen_after_alice = len(sandbox_requests(okta_org))
    bob = anyio.run(connect, "bob")
    carol = anyio.run(connect, "carol")

    # Same client, same default scope (mcp.read) at first.
    assert alice["first_scope"] == bob["first_scope"] == carol["first_scope"] == "mcp.read"
    assert alice["read_list"] == bob["read_list"] == read_tools()
    assert carol["read_list"] == []

    # alice stepped up once, and her call passed the gate (what the tool then does is its business);
    # her list now has the write tools too.
    assert unknown_tool_shape(alice["hidden"], hidden) != UNKNOWN, alice["hidden"]
    allowed = AuditEvent.objects.filter(event_type="tool.call", decision="allowed", target=hidden)
    assert list(allowed.values_list("actor_login", flat=True)) == ["alice@acme.example"]
    assert alice["authorizations"] == 2 and alice["scope"] == "mcp.read mcp.write"
    assert hidden in alice["consent_pages"][-1] and hidden not in alice["consent_pages"][0]
    assert alice["list"] == sorted(REGISTRY)
    # bob and carol were never offered a step-up: they still hold their first token.
    assert bob["authorizations"] == carol["authorizations"] == 1
    assert bob["list"] == read_tools() and carol["list"] == []
    assert alice["list"] != bob["list"] != carol["list"]

    # A tool that exists but is not granted fails exactly like one that does not exist, whatever
    # the arguments, and never reaches Okta.
    unknown = unknown_tool_shape(bob["unknown"], "no_such_tool")
    assert unknown == UNKNOWN
    for who in (bob, carol):
        assert unknown_tool_shape(who["hidden"], hidden) == unknown
        assert unknown_tool_shape(who["hidden_no_args"], hidden) == unknown
        assert unknown_tool_shape(who["unknown"], "no_such_tool") == unknown
    assert unknown_tool_shape(carol["whoami"], "whoami") == unknown
    assert bob["whoami"].is_error is False and bob["whoami"].structured_content["login"] == "bob@acme.example"

    later = [(r["method"], r["path"]) for r in sandbox_requests(okta_org)[okta_seen_after_alice:]]
    assert later and not [r for r in later if r[0] != "GET" or JANE_ID in r[1]], later  # logins only

    denied = AuditEvent.objects.filter(event_type="tool.call", decision="denied")
    others = denied.filter(target=hidden).exclude(actor_login="alice@acme.example")
    assert set(others.values_list("actor_login", "reason")) == {
        ("bob@acme.example", "not granted"),
        ("carol@acme.example", "not granted"),
    }
    # alice's call without arguments was refused for its arguments, after the grant check.
    assert denied.filter(target=hidden, actor_login="alice@acme.example").get().reason == "invalid arguments"
    assert denied.filter(target="no_such_tool", reason="unknown tool").count() == 3
    assert AuditEvent.objects.filter(event_type="step_up.required", target=hidden).values_list(
        "actor_login", flat=True
    ).distinct().get() == "alice@acme.example"


def test_group_changes_apply_at_refresh_and_suspension_revokes_everything(
    server_url, okta_org, public_client, demo_policy, okta_admin
) -> None:
    browser = StoppingBrowser("carol")
    storage = MemoryTokenStorage(public_client.client_id)
    write_tool = write_tools()[0] if write_tools() else "no_such_tool"

    out: dict[str, Any] = {}

    async def scenario() -> None:
        async with mcp_connection(server_url, browser, storage, mode=MODE) as conn:
            out["before"] = tool_names(await conn.client.list_tools())
            # Not granted: the same answer as an unknown tool, not a step-up challenge that would
            # tell carol the tool exists.
            out["write_call"] = await call(conn.client, write_tool, {})

            await anyio.to_thread.run_sync(okta_admin.add_to_group, HELPDESK_ID, CAROL_ID)
            conn.force_refresh()
            out["added"] = tool_names(await conn.client.list_tools())
            out["added_whoami"] = (await conn.client.call_tool("whoami", {})).structured_content

            await anyio.to_thread.run_sync(okta_admin.remove_from_group, HELPDESK_ID, CAROL_ID)
            conn.force_refresh()
            out["removed"] = tool_names(await conn.client.list_tools())
            out["refresh_token"] = storage.tokens.refresh_token

            await anyio.to_thread.run_sync(okta_admin.lifecycle, CAROL_ID, "suspend")
            conn.force_refresh()
            out["authorizations"] = conn.authorizations
            out["after_suspension"] = await conn.client.list_tools()

    try:
        anyio.run(scenario)
    except BaseException as exc:  # noqa: BLE001 - the SDK surfaces the failed re-authorization
        out["error"] = exc
    finally:
        browser.close()

    assert out["before"] == []
    assert unknown_tool_shape(out["write_call"], write_tool) == UNKNOWN
    assert out["added"] == read_tools()
    assert "Helpdesk" in out["added_whoami"]["roles_groups"]
    assert out["removed"] == []
    assert okta_admin.user(CAROL_ID)["status"] == "SUSPENDED"

    # The refresh failed, and with it every token of carol's is gone.
    assert "after_suspension" not in out, "the client kept working after carol was suspended"
    carol = User.objects.get(okta_login="carol@acme.example")
    assert carol.okta_status == "SUSPENDED"
    assert not AccessToken.objects.filter(user=carol).exists()
    assert RefreshToken.objects.filter(user=carol).exists()
    assert not RefreshToken.objects.filter(user=carol, revoked__isnull=True).exists()
    assert RefreshToken.objects.get(token_checksum=_checksum(out["refresh_token"])).revoked is not None
    assert not LoginSession.objects.filter(user=carol, revoked_at__isnull=True).exists()
    assert not Consent.objects.filter(user=carol, revoked_at__isnull=True).exists()
    carol_events = AuditEvent.objects.filter(actor_login="carol@acme.example")
    assert carol_events.filter(
        event_type="token.refresh_denied", reason="user is SUSPENDED in Okta; tokens revoked"
    ).exists()
    assert AuditEvent.objects.filter(
        event_type="token.revoked", target=f"user:{carol.pk}", reason="Okta status SUSPENDED"
    ).exists()
    # The client could not continue without re-authorizing, and re-authorizing failed at the IdP:
    # the old web session at this server no longer counts for a suspended user.
    assert len(out["authorizations"]) == 2
    assert len(browser.refusals) == 1 and "Unable to sign in: this account is suspended." in browser.refusals[0]
    assert _contains(out["error"], LoginRefused), repr(out["error"])
    assert carol_events.filter(event_type="token.issued").count() == 1


def test_a_web_session_that_outlived_a_deactivation_gets_no_new_tokens(
    server_url, okta_org, public_client, demo_policy, okta_admin
) -> None:
    """bob's browser still holds his session at this server when Okta deactivates him. Before any
    refresh has told this server, a second client authorizes through that session: the code is
    issued on the old session, but redeeming it asks Okta again, and nothing is minted."""
    browser = StoppingBrowser("bob")
    out: dict[str, Any] = {}

    async def first() -> None:
        async with mcp_connection(server_url, browser, MemoryTokenStorage(public_client.client_id), mode=MODE) as conn:
            out["tools"] = tool_names(await conn.client.list_tools())

    async def second() -> None:
        async with mcp_connection(server_url, browser, MemoryTokenStorage(public_client.client_id), mode=MODE) as conn:
            out["authorizations"] = conn.authorizations
            out["tools_after"] = await conn.client.list_tools()

    try:
        anyio.run(first)
        okta_admin.lifecycle(BOB_ID, "deactivate")
        assert User.objects.get(okta_login="bob@acme.example").okta_status == "ACTIVE"  # not known here yet
        try:
            anyio.run(second)
        except BaseException as exc:  # noqa: BLE001 - the SDK's token exchange fails
            out["error"] = exc
    finally:
        browser.close()

    assert out["tools"] == read_tools()
    assert "tools_after" not in out and "error" in out
    assert len(out["authorizations"]) == 1 and browser.refusals == []  # the old session was used, not Okta
    bob = User.objects.get(okta_login="bob@acme.example")
    assert bob.okta_status == "DEPROVISIONED"
    assert not AccessToken.objects.filter(user=bob).exists()
    assert not RefreshToken.objects.filter(user=bob, revoked__isnull=True).exists()
    assert not Consent.objects.filter(user=bob, revoked_at__isnull=True).exists()
    events = AuditEvent.objects.filter(actor_login="bob@acme.example")
    assert events.filter(event_type="token.issued").count() == 1
    assert events.filter(
        event_type="authorization.denied", reason="user is DEPROVISIONED in Okta; tokens revoked"
    ).exists()


def test_admin_change_applies_to_the_next_request_and_every_view_agrees(
    server_url, okta_org, public_client, demo_policy, admin_user
) -> None:
    browser = Browser("alice")
    storage = MemoryTokenStorage(public_client.client_id)
    admin = DjangoClient()
    admin.force_login(admin_user, backend=MODEL_BACKEND)
    role = Role.objects.get(name="admin")
    removed = "get_user"

    def views_for_alice(scopes: str) -> tuple[set[str], set[str]]:
        """The tools the effective-access view and the command say alice can call with `scopes`."""
        alice = User.objects.get(okta_login="alice@acme.example")
        query = {"user": alice.pk, "scopes": scopes.split()}
        html = admin.get("/admin/tools/role/effective-access/", query).content.decode()
        out = io.StringIO()
        call_command("effective_access", "--user", "alice@acme.example", "--scopes", scopes, stdout=out)
        in_view = {name for name, callable_ in view_tools(html).items() if callable_}
        in_command = {name for name, marks in command_tools(out.getvalue()).items() if "needs step-up" not in marks}
        return in_view, in_command

    def edit_role(**changes: list[str]) -> int:
        page = admin.get(f"/admin/tools/role/{role.pk}/change/").content.decode()
        data = admin_form_data(page, "role_form")
        data.update(changes)
        return admin.post(f"/admin/tools/role/{role.pk}/change/", data).status_code

    def mapping_index(group: str) -> int:
        return [m.group_name for m in role.group_mappings.all()].index(group)

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with mcp_connection(server_url, browser, storage, mode=MODE) as conn:
            out["before"] = tool_names(await conn.client.list_tools())
            tokens = storage.tokens
            scopes = tokens.scope
            out["scopes"] = scopes
            out["views_before"] = await in_django(lambda: views_for_alice(scopes))

            kept = sorted(set(REGISTRY) - {removed})
            out["edit"] = await in_django(lambda: edit_role(tools=kept))
            out["after_edit"] = tool_names(await conn.client.list_tools())
            out["call_removed"] = await call(conn.client, removed, {"user": "bob@acme.example"})
            out["views_after_edit"] = await in_django(lambda: views_for_alice(scopes))

            index = await in_django(lambda: mapping_index("Identity Admins"))
            out["unmap"] = await in_django(lambda: edit_role(**{f"group_mappings-{index}-DELETE": ["on"]}))
            out["after_unmap"] = tool_names(await conn.client.list_tools())
            out["whoami_after_unmap"] = await call(conn.client, "whoami", {})
            out["views_after_unmap"] = await in_django(lambda: views_for_alice(scopes))

            out["same_tokens"] = storage.tokens is tokens
            out["authorizations"] = len(conn.authorizations)
        return out

    try:
        out = anyio.run(scenario)
    finally:
        browser.close()

    assert out["scopes"] == "mcp.read"
    assert out["before"] == read_tools() and removed in out["before"]
    assert out["views_before"] == (set(out["before"]), set(out["before"]))

    assert out["edit"] == 302
    assert out["after_edit"] == sorted(set(read_tools()) - {removed})
    assert unknown_tool_shape(out["call_removed"], removed) == UNKNOWN
    assert out["views_after_edit"] == (set(out["after_edit"]), set(out["after_edit"]))

    assert out["unmap"] == 302
    assert out["after_unmap"] == []
    assert unknown_tool_shape(out["whoami_after_unmap"], "whoami") == UNKNOWN
    assert out["views_after_unmap"] == (set(), set())

    # No restart, no re-login, no refresh: the same tokens served every request.
    assert out["same_tokens"] and out["authorizations"] == 1
    changes = AuditEvent.objects.filter(event_type="policy.changed", actor_login="admin").order_by("id")
    assert [(e.reason, e.target) for e in changes] == [
        ("role changed", "role:admin"),
        ("mapping deleted", "role:admin"),
    ]
    assert changes[0].details["tools_removed"] == [removed]
    assert changes[1].details == {"group_name": "Identity Admins", "okta_group_id": ""}
