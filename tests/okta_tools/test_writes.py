"""The write tools, end to end: the step-up 403 for a read-only token; a first call that changes
nothing and returns a summary and a confirmation token; a second call with the token that changes
the sandbox org (its state and its System Log) and leaves our audit trail; tokens reused, for other
arguments, another tool, another client or expired refused; MCP elicitation on a legacy session
whose client can ask its user; and people without the role who never see or reach the tools."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio
import httpx2 as httpx
import mcp_types as types
import pytest
from django.conf import settings
from django.utils import timezone
from mcp.shared.exceptions import MCPError

from audit.models import AuditEvent
from tests.okta_tools.conftest import (
    ALICE,
    BOB,
    CAROL,
    EVERYONE,
    HELPDESK,
    JANE,
    LEGACY,
    MODERN,
    Sandbox,
    World,
    error,
    ok,
    run,
)
from tools.models import ToolConfirmation
from tools.registry import REGISTRY

WRITE_TOOLS = sorted(n for n, s in REGISTRY.items() if s.access == "write")
CHANGING = ("POST", "PUT", "DELETE")


def _changes(requests: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in requests if r["method"] in CHANGING]


def _last_audit_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


@pytest.mark.django_db
def test_write_tools_are_destructive_confirmed_and_admin_only() -> None:
    """Every write tool is marked destructive, needs mcp.write, takes a confirmation, names the Okta
    scope it needs, and the demo policy grants it to Identity Admins only. (Marked django_db, it
    also makes pytest-django create the test database when this file runs alone.)"""
    from tools.selectors import tools_allowed_for
    from tools.services import policy_seed_demo

    assert WRITE_TOOLS == [
        "add_user_to_group", "clear_user_sessions", "deactivate_user", "remove_user_from_group",
        "reset_user_factors", "suspend_user", "unlock_user", "unsuspend_user",
    ]  # fmt: skip
    for name in WRITE_TOOLS:
        spec = REGISTRY[name]
        assert spec.destructive and spec.open_world and spec.required_scopes == {"mcp.read", "mcp.write"}, name
        assert "confirmation" in spec.input_model.model_fields and spec.okta_scopes, name
        assert spec.okta_scopes[0].endswith(".manage"), name
    policy_seed_demo()
    for groups in (["Everyone", "Helpdesk"], ["Everyone", "Contractors"]):
        assert not set(WRITE_TOOLS) & tools_allowed_for(groups=groups, scopes=["mcp.read", "mcp.write"]).granted
    assert set(WRITE_TOOLS) <= tools_allowed_for(groups=["Identity Admins"], scopes=["mcp.read", "mcp.write"]).usable


def _raw_call(world: World, who: str, name: str, arguments: dict[str, Any]) -> httpx.Response:
    """A 2026-07-28 tools/call as any client sends it, with `who`'s token from the shared flow."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": name,
            "arguments": arguments,
            "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}},
        },
    }
    headers = {
        "Authorization": f"Bearer {world.token(who)}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": name,
    }
    return httpx.post(world.url + "/mcp", json=body, headers=headers, timeout=30)


def test_read_only_token_gets_step_up_and_okta_sees_nothing(world: World, sandbox: Sandbox, db_access: None) -> None:
    before = sandbox.count()
    for name in WRITE_TOOLS:
        arguments = {"user_id": BOB, **({"group_id": HELPDESK} if "group" in name else {})}
        response = _raw_call(world, "alice", name, arguments)
        assert response.status_code == 403, (name, response.text)
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge and 'scope="mcp.read mcp.write"' in challenge, challenge
    assert sandbox.count() == before
    assert sandbox.user(BOB)["status"] == "ACTIVE"


# tool, arguments, the sandbox check before/after, the System Log event it leaves
def _cases() -> list[tuple[str, dict[str, Any], Any, str]]:
    return [
        ("suspend_user", {"user_id": BOB}, lambda s: s.user(BOB)["status"] == "SUSPENDED", "user.lifecycle.suspend"),
        ("unsuspend_user", {"user_id": BOB}, lambda s: s.user(BOB)["status"] == "ACTIVE", "user.lifecycle.unsuspend"),
        ("unlock_user", {"user_id": JANE}, lambda s: s.user(JANE)["status"] == "ACTIVE", "user.account.unlock_by_admin"),
        ("reset_user_factors", {"user_id": CAROL}, lambda s: s.get(f"/api/v1/users/{CAROL}/factors") == [], "user.mfa.factor.reset_all"),
        ("clear_user_sessions", {"user_id": CAROL}, lambda s: len(s.sessions_cleared(CAROL)) == 1, "user.session.clear"),
        ("add_user_to_group", {"group_id": HELPDESK, "user_id": CAROL}, lambda s: HELPDESK in s.group_ids_of(CAROL), "group.user_membership.add"),
        ("remove_user_from_group", {"group_id": HELPDESK, "user_id": CAROL}, lambda s: HELPDESK not in s.group_ids_of(CAROL), "group.user_membership.remove"),
        ("deactivate_user", {"user_id": CAROL}, lambda s: s.user(CAROL)["status"] == "DEPROVISIONED", "user.lifecycle.deactivate"),
    ]


def test_every_write_asks_first_then_acts_once_with_the_token(world: World, sandbox: Sandbox, db_access: None) -> None:
    """The scenario an admin runs from an AI client that cannot ask them itself (2026-07-28)."""
    cases = _cases()
    assert sorted(c[0] for c in cases) == WRITE_TOOLS
    first_audit = _last_audit_id()

    async def scenario() -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = []
        async with world.client("alice_write") as client:
            for tool, arguments, changed, event in cases:
                step: dict[str, Any] = {"tool": tool}
                mark = len(sandbox.requests())
                step["first"] = await client.call_tool(tool, arguments)
                step["changed_after_first"] = changed(sandbox)
                step["first_changes"] = _changes(sandbox.requests()[mark:])
                token = (step["first"].structured_content or {}).get("confirmation")
                step["second"] = await client.call_tool(tool, {**arguments, "confirmation": token})
                step["changed_after_second"] = changed(sandbox)
                mark = len(sandbox.requests())
                step["reused"] = await client.call_tool(tool, {**arguments, "confirmation": token})
                step["reuse_changes"] = _changes(sandbox.requests()[mark:])
                step["events"] = [
                    e for e in sandbox.log_events(f'eventType eq "{event}"')
                    if set(arguments.values()) <= {t["id"] for t in e.get("target", [])} and e["published"] > started
                ]  # fmt: skip
                steps.append(step)
        return steps

    started = sandbox.get("/api/v1/logs", limit=1, sortOrder="DESCENDING")[0]["published"]
    steps = run(scenario)
    for step, (tool, arguments, _, _) in zip(steps, cases, strict=True):
        first = ok(step["first"])
        assert first["outcome"] == "confirmation_required", (tool, first)
        assert first["confirmation"].startswith("okc_") and len(first["confirmation"]) > 40
        assert first["user_id"] == arguments["user_id"] and first["login"].endswith("@acme.example")
        assert "Nothing has changed" in first["next_step"] and tool in first["next_step"]
        assert step["changed_after_first"] is False and step["first_changes"] == [], tool
        second = ok(step["second"])
        assert second["outcome"] == "done" and second["summary"].startswith("Done. "), (tool, second)
        assert second["confirmation"] is None
        assert step["changed_after_second"] is True, tool
        assert len(step["events"]) == 1, (tool, step["events"])
        assert step["events"][0]["actor"]["alternateId"] == "alice@acme.example"
        assert "already used" in error(step["reused"]) and step["reuse_changes"] == [], tool
    by_tool = {s["tool"]: ok(s["second"]) for s in steps}
    assert by_tool["suspend_user"]["status_before"] == "ACTIVE" and by_tool["suspend_user"]["status_after"] == "SUSPENDED"
    assert by_tool["unlock_user"]["status_before"] == "LOCKED_OUT" and by_tool["unlock_user"]["status_after"] == "ACTIVE"
    assert by_tool["clear_user_sessions"]["sessions_cleared"] is True
    assert by_tool["add_user_to_group"]["group_name"] == "Helpdesk"
    assert "1 enrolled factor" in ok(steps[3]["first"])["summary"]

    # Our audit trail: each write asked (outcome confirmation_required, the summary in the
    # message), then acted (success, with Okta's request ids), and the token never appears.
    rows = list(AuditEvent.objects.filter(id__gt=first_audit, event_type="tool.call.completed").order_by("id"))
    outcomes = [(r.target, r.outcome) for r in rows if r.target in WRITE_TOOLS]
    for tool in WRITE_TOOLS:
        assert outcomes.count((tool, "confirmation_required")) == 1 and outcomes.count((tool, "success")) == 1, tool
        assert outcomes.count((tool, "error")) == 1, tool  # the reuse
    done = [r for r in rows if r.outcome == "success" and r.target == "suspend_user"][0]
    assert done.okta_request_id and all(len(i) > 10 for i in done.okta_request_id.split(","))
    assert done.details["message"] == "confirmed with a confirmation token"
    asked = [r for r in rows if r.outcome == "confirmation_required" and r.target == "suspend_user"][0]
    assert "bob@acme.example" in asked.details["message"] and asked.okta_request_id
    calls = AuditEvent.objects.filter(id__gt=first_audit, event_type="tool.call", target="suspend_user")
    stored = [c.details["arguments"].get("confirmation") for c in calls]
    assert "[redacted]" in stored and not any(s and s.startswith("okc_") for s in stored)
    assert ToolConfirmation.objects.filter(used_at__isnull=True, tool__in=WRITE_TOOLS).count() == 0


def test_confirmation_tokens_are_bound_and_single_use(world: World, sandbox: Sandbox, db_access: None) -> None:
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with world.client("alice_write") as client:
            asked = ok(await client.call_tool("suspend_user", {"user_id": BOB}))
            token = asked["confirmation"]
            mark = len(sandbox.requests())
            out["other_user"] = await client.call_tool("suspend_user", {"user_id": CAROL, "confirmation": token})
            out["other_tool"] = await client.call_tool("clear_user_sessions", {"user_id": BOB, "confirmation": token})
            out["made_up"] = await client.call_tool("suspend_user", {"user_id": BOB, "confirmation": "okc_" + "A" * 43})
            out["bad_shape"] = await client.call_tool("suspend_user", {"user_id": BOB, "confirmation": "a token with spaces"})
            async with world.client("alice_other_client") as other:
                out["other_client"] = await other.call_tool("suspend_user", {"user_id": BOB, "confirmation": token})
            out["changes_while_refused"] = _changes(sandbox.requests()[mark:])
            # None of those used the token up: it still confirms exactly the call it was made for.
            out["right"] = await client.call_tool("suspend_user", {"user_id": BOB, "confirmation": token})
            expiring = ok(await client.call_tool("unsuspend_user", {"user_id": BOB}))["confirmation"]
            await anyio.to_thread.run_sync(
                lambda: ToolConfirmation.objects.filter(tool="unsuspend_user", used_at__isnull=True).update(
                    expires_at=timezone.now() - timedelta(seconds=1)
                )
            )
            out["expired"] = await client.call_tool("unsuspend_user", {"user_id": BOB, "confirmation": expiring})
            out["state_invalid"] = await client.call_tool("suspend_user", {"user_id": BOB})
        return out

    out = run(scenario)
    assert "other arguments" in error(out["other_user"])
    assert "confirms suspend_user" in error(out["other_tool"])
    assert "not issued to you" in error(out["made_up"]) and "not issued to you" in error(out["other_client"])
    assert error(out["bad_shape"]).startswith("Invalid arguments for suspend_user: confirmation")
    assert out["changes_while_refused"] == []
    assert ok(out["right"])["outcome"] == "done" and sandbox.user(BOB)["status"] == "SUSPENDED"
    assert "expired" in error(out["expired"]) and sandbox.user(BOB)["status"] == "SUSPENDED"
    # Bob is suspended already: the tool says so instead of offering a token Okta would refuse.
    assert "their status is SUSPENDED" in error(out["state_invalid"])
    # Stored hashed: the raw token is nowhere in the table.
    row = ToolConfirmation.objects.filter(tool="suspend_user").order_by("-id").first()
    assert row is not None and len(row.token_hash) == 64 and not row.token_hash.startswith("okc_")


def test_invalid_identifiers_reach_nothing(world: World, sandbox: Sandbox, db_access: None) -> None:
    bad = ["../00u1", "00u1%2f..", "a?b", "a#b", "a b", "a/b", "..", "00u1\n", "a\\b", "jane.doe@acme.example"]

    async def scenario() -> list[tuple[str, str, Any]]:
        results = []
        async with world.client("alice_write") as client:
            for ident in bad:
                for tool in WRITE_TOOLS:
                    field = "group_id" if "group" in tool and ident != bad[-1] else "user_id"
                    arguments = {"user_id": BOB, **({"group_id": HELPDESK} if "group" in tool else {}), field: ident}
                    results.append((tool, ident, await client.call_tool(tool, arguments)))
        return results

    before = sandbox.count()
    results = run(scenario)
    assert sandbox.count() == before
    for tool, ident, result in results:
        message = error(result)
        assert message.startswith(("invalid user id:", "invalid group id:", "Invalid arguments")), (tool, ident, message)


def test_elicitation_asks_the_person_on_a_legacy_session(world: World, sandbox: Sandbox, db_access: None) -> None:
    """A client that declared elicitation: the server asks the person (on a legacy session through
    its back channel, on 2026-07-28 with an InputRequiredResult the client answers on retry); only
    an explicit yes acts. A client that did not declare it gets a token: nothing confirms by itself."""
    asked: list[str] = []

    def answering(action: str, confirm: bool | None = None) -> Any:
        async def callback(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
            asked.append(params.message)
            content = {"confirm": confirm} if confirm is not None else None
            return types.ElicitResult(action=action, content=content)  # type: ignore[arg-type]

        return callback

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with world.client("alice_write", mode=LEGACY, elicitation_callback=answering("decline")) as client:
            out["declined"] = await client.call_tool("suspend_user", {"user_id": BOB})
            out["after_decline"] = sandbox.user(BOB)["status"]
        async with world.client("alice_write", mode=LEGACY, elicitation_callback=answering("accept", False)) as client:
            out["unticked"] = await client.call_tool("suspend_user", {"user_id": BOB})
            out["after_unticked"] = sandbox.user(BOB)["status"]
        async with world.client("alice_write", mode=LEGACY, elicitation_callback=answering("accept", True)) as client:
            out["accepted"] = await client.call_tool("suspend_user", {"user_id": BOB})
            out["after_accept"] = sandbox.user(BOB)["status"]
        async with world.client("alice_write", mode=LEGACY) as client:
            out["legacy_without_elicitation"] = await client.call_tool("unsuspend_user", {"user_id": BOB})
            out["after_legacy_without"] = sandbox.user(BOB)["status"]
        async with world.client("alice_write", mode=MODERN, elicitation_callback=answering("accept", True)) as client:
            out["modern_accepted"] = await client.call_tool("unsuspend_user", {"user_id": BOB})
            out["after_modern_accept"] = sandbox.user(BOB)["status"]
        async with world.client("alice_write", mode=MODERN, elicitation_callback=answering("decline")) as client:
            out["modern_declined"] = await client.call_tool("suspend_user", {"user_id": BOB})
        out["after_all"] = sandbox.user(BOB)["status"]
        return out

    before = _last_audit_id()
    confirmations_before = ToolConfirmation.objects.order_by("-id").values_list("id", flat=True).first() or 0
    out = run(scenario)
    assert ok(out["declined"])["outcome"] == "declined" and out["after_decline"] == "ACTIVE"
    assert ok(out["unticked"])["outcome"] == "declined" and out["after_unticked"] == "ACTIVE"
    accepted = ok(out["accepted"])
    assert accepted["outcome"] == "done" and accepted["confirmation"] is None and out["after_accept"] == "SUSPENDED"
    without = ok(out["legacy_without_elicitation"])
    assert without["outcome"] == "confirmation_required" and without["confirmation"]
    assert out["after_legacy_without"] == "SUSPENDED"
    # 2026-07-28: the question travels as an InputRequiredResult; the SDK client asks and retries.
    modern = ok(out["modern_accepted"])
    assert modern["outcome"] == "done" and modern["confirmation"] is None and out["after_modern_accept"] == "ACTIVE"
    assert ok(out["modern_declined"])["outcome"] == "declined" and out["after_all"] == "ACTIVE"
    assert len(asked) == 5 and all("bob@acme.example" in m and "Make this change in Okta?" in m for m in asked)
    notes = list(
        AuditEvent.objects.filter(id__gt=before, event_type="tool.call.completed", target__in=["suspend_user", "unsuspend_user"])
        .order_by("id")
        .values_list("target", "outcome", "details__message")
    )
    assert [n[:2] for n in notes] == [
        ("suspend_user", "declined"), ("suspend_user", "declined"), ("suspend_user", "success"),
        ("unsuspend_user", "confirmation_required"),
        ("unsuspend_user", "confirmation_required"), ("unsuspend_user", "success"),
        ("suspend_user", "confirmation_required"), ("suspend_user", "declined"),
    ]  # fmt: skip
    assert notes[0][2] == "the person answered the confirmation prompt with decline"
    assert notes[1][2] == "the person answered the confirmation prompt with accept"
    assert notes[2][2] == notes[5][2] == "confirmed by the person through elicitation"
    assert notes[4][2].startswith("asked the person through elicitation: Unsuspend bob@acme.example")
    # The token that rode in requestState was used once.
    mine = ToolConfirmation.objects.filter(id__gt=confirmations_before)
    assert mine.filter(tool="unsuspend_user", used_at__isnull=False).count() == 1
    assert mine.filter(tool="unsuspend_user", used_at__isnull=True).count() == 1  # the legacy token, never presented
    # The declined one (2026-07-28) was used up by the refusal: it cannot confirm the call later.
    assert mine.filter(tool="suspend_user").count() == 1 and mine.get(tool="suspend_user").used_at is not None


async def _refused(client: Any, name: str, arguments: dict[str, Any]) -> MCPError:
    with pytest.raises(MCPError) as caught:
        await client.call_tool(name, arguments)
    return caught.value


def test_people_without_the_role_never_see_or_reach_writes(world: World, sandbox: Sandbox, db_access: None) -> None:
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for who in ("bob", "carol"):
            async with world.client(who) as client:
                out[who] = {
                    "tools": sorted(t.name for t in (await client.list_tools()).tools),
                    "calls": [await _refused(client, name, {"user_id": BOB, "group_id": EVERYONE}) for name in WRITE_TOOLS],
                }
        return out

    before = sandbox.count()
    out = run(scenario)
    assert sandbox.count() == before and sandbox.user(BOB)["status"] == "ACTIVE"
    assert not set(WRITE_TOOLS) & set(out["bob"]["tools"]) and "list_users" in out["bob"]["tools"]
    assert out["carol"]["tools"] == []
    for who in ("bob", "carol"):
        for name, refusal in zip(WRITE_TOOLS, out[who]["calls"], strict=True):
            # The MCP specification's protocol error for an unknown tool: a tool not granted looks the same.
            assert (refusal.code, refusal.message) == (-32602, f"Unknown tool: {name}"), (who, name)
    assert ALICE  # the admin's own view is covered above


def test_settings_bound_the_confirmation_lifetime() -> None:
    assert 60 <= settings.TOOL_CONFIRMATION_SECONDS <= 900


def test_a_write_whose_decision_cannot_be_audited_reaches_nothing(world: World, sandbox: Sandbox, db_access: None) -> None:
    """A write tool's decision row is committed (to disk) before Okta is touched. With the audit
    table unavailable for real (renamed for the duration of the call, so the server's INSERT fails as
    it would with the database refusing writes), the call fails and Okta sees no request at all."""
    from django.db import connection

    def table(renamed: bool) -> None:
        old, new = ("audit_auditevent", "audit_auditevent_offline")[:: 1 if renamed else -1]
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {old} RENAME TO {new}")

    before = _last_audit_id()
    outcome: dict[str, Any] = {}

    async def scenario() -> None:
        async with world.client("alice_write") as client:
            mark = len(sandbox.requests())
            await anyio.to_thread.run_sync(table, True)
            try:
                outcome["failed"] = await client.call_tool("suspend_user", {"user_id": BOB})
            finally:
                await anyio.to_thread.run_sync(table, False)
            outcome["requests"] = sandbox.requests()[mark:]
            outcome["after"] = await client.call_tool("suspend_user", {"user_id": BOB})

    run(scenario)
    assert "audit trail is unavailable" in error(outcome["failed"])
    assert outcome["requests"] == []
    # Once the table is back the same call runs (and asks for confirmation): the refusal was the audit's.
    assert ok(outcome["after"])["outcome"] == "confirmation_required"
    rows = AuditEvent.objects.filter(id__gt=before, target="suspend_user")
    assert [(r.event_type, r.outcome) for r in rows.order_by("id")] == [
        ("tool.call", ""),
        ("tool.call.completed", "confirmation_required"),
    ]
