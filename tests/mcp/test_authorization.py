"""Per-tool authorization at /mcp (requirements 5, 6 and 9): the step-up challenge for a write tool
the token's scopes do not cover, tools hidden from and refused to callers whose roles do not grant
them (refused exactly like a tool that does not exist), private caching of the per-user list, and
Okta called with the server's own credential."""

from __future__ import annotations

import anyio
import pytest

from tests.clients import Browser, MemoryTokenStorage, mcp_connection, tool_names
from tests.mcp.conftest import (
    LEGACY,
    MODERN,
    assert_challenge,
    audit_rows,
    call_tool,
    last_audit_id,
    open_session,
    rpc_body,
    rpc_request,
    tool_error_text,
    tool_result,
)

BOTH = pytest.mark.parametrize("mode", [MODERN, LEGACY])
BOB_ID = "00u1bob0000000000001"
SESSIONS_PATH = f"/api/v1/users/{BOB_ID}/sessions"


def _session(world, token: str, mode: str) -> str | None:
    return open_session(world.url, token) if mode == LEGACY else None


def _call(world, name: str, arguments: dict, *, token: str, mode: str):
    return call_tool(world.url, name, arguments, token=token, mode=mode, session=_session(world, token, mode))


def _list(world, token: str, mode: str) -> dict:
    response = rpc_request(world.url, "tools/list", token=token, mode=mode, session=_session(world, token, mode))
    assert response.status_code == 200, response.text
    result = rpc_body(response)["result"]
    if mode == MODERN:
        assert result["cacheScope"] == "private"
    else:
        # 2025-11-25 has no cacheScope; the list arrives on an uncacheable event stream.
        assert response.headers["cache-control"].startswith("no-cache")
    return result


@BOTH
def test_write_tool_without_write_scope_gets_step_up_challenge(world, db_access, mode) -> None:
    token = world.tokens["alice"]
    session = _session(world, token, mode)
    before, okta_before = last_audit_id(), world.okta_requests()["count"]
    response = call_tool(world.url, "clear_user_sessions", {"user_id": BOB_ID}, token=token, mode=mode, session=session)
    body = assert_challenge(response, 403, "insufficient_scope", scope="mcp.read mcp.write")
    assert "clear_user_sessions" in body["error_description"]
    rows = audit_rows(before)
    assert [r.event_type for r in rows] == ["step_up.required"]
    assert rows[0].target == "clear_user_sessions" and rows[0].decision == "denied"
    assert rows[0].details["required_scopes"] == ["mcp.read", "mcp.write"]
    assert rows[0].actor_login == "alice@acme.example"
    # The tool did not run: Okta saw nothing.
    assert world.okta_requests()["count"] == okta_before


@BOTH
def test_write_tool_runs_with_write_scope(world, db_access, mode) -> None:
    """With mcp.read and mcp.write the call reaches the tool, which (for a client without
    elicitation) first answers with a confirmation token and changes Okta only when called again
    with it."""
    token = world.tokens["alice_write"]
    session = _session(world, token, mode)
    before, okta_before = last_audit_id(), world.okta_requests()["count"]
    arguments = {"user_id": BOB_ID}
    first = tool_result(call_tool(world.url, "clear_user_sessions", arguments, token=token, mode=mode, session=session))
    assert first.get("isError") is not True, first
    assert first["structuredContent"]["outcome"] == "confirmation_required"
    assert not [r for r in world.okta_requests()["requests"][okta_before:] if r["method"] != "GET"]
    arguments["confirmation"] = first["structuredContent"]["confirmation"]
    done = tool_result(call_tool(world.url, "clear_user_sessions", arguments, token=token, mode=mode, session=session))
    assert done.get("isError") is not True, done
    assert done["structuredContent"]["outcome"] == "done" and done["structuredContent"]["sessions_cleared"] is True
    made = world.okta_requests()["requests"][okta_before:]
    assert [(r["method"], r["path"]) for r in made if r["method"] != "GET"] == [("DELETE", SESSIONS_PATH)]
    # Requirement 9: the server's SSWS credential, never the client's bearer token.
    assert made and all(r["auth"] == "ssws" and r["authorized"] for r in made)
    rows = [r for r in audit_rows(before) if r.event_type in ("tool.call", "tool.call.completed")]
    assert [(r.event_type, r.target, r.decision) for r in rows] == [
        ("tool.call", "clear_user_sessions", "allowed"),
        ("tool.call.completed", "clear_user_sessions", ""),
    ] * 2
    assert rows[-1].outcome == "success"


@BOTH
def test_tools_list_follows_roles_and_scopes(world, db_access, mode) -> None:
    from tools.registry import REGISTRY

    read = sorted(n for n, spec in REGISTRY.items() if spec.access == "read")
    expected = {
        "alice": read,  # admin, but the write tools need mcp.write
        "alice_write": sorted(REGISTRY),
        "bob": read,  # viewer
        "carol": [],  # no role
    }
    assert "get_user" in read and "clear_user_sessions" not in read
    for who, names in expected.items():
        result = _list(world, world.tokens[who], mode)
        assert sorted(t["name"] for t in result["tools"]) == names, who
    tools = _list(world, world.tokens["alice_write"], mode)["tools"]
    write = next(t for t in tools if t["name"] == "clear_user_sessions")
    assert write["annotations"]["destructiveHint"] is True and write["annotations"]["readOnlyHint"] is False


@BOTH
@pytest.mark.parametrize(
    ("who", "tool", "arguments"),
    [
        ("carol", "get_user", {"user": "bob@acme.example"}),
        ("carol", "whoami", {}),
        ("bob", "clear_user_sessions", {"user_id": BOB_ID}),
    ],
)
def test_tool_not_granted_is_refused_like_a_missing_tool(world, db_access, mode, who, tool, arguments) -> None:
    token = world.tokens[who]
    before, okta_before = last_audit_id(), world.okta_requests()["count"]
    refused = _call(world, tool, arguments, token=token, mode=mode)
    missing = _call(world, "no_such_tool", arguments, token=token, mode=mode)
    # Same status, same shape, same words: only the echoed name differs. In particular a role's
    # missing tool never gets the step-up 403, which would say that the tool exists. Both are the
    # MCP specification's protocol error for an unknown tool (-32602), not a tool result.
    assert refused.status_code == missing.status_code
    assert refused.status_code == (400 if mode == MODERN else 200)
    refused_error, missing_error = rpc_body(refused)["error"], rpc_body(missing)["error"]
    assert refused_error["code"] == missing_error["code"] == -32602
    assert refused_error["message"] == f"Unknown tool: {tool}"
    assert refused_error["message"].replace(tool, "X") == missing_error["message"].replace("no_such_tool", "X")
    assert refused_error.keys() == missing_error.keys()
    assert world.okta_requests()["count"] == okta_before
    decisions = [(r.event_type, r.target, r.decision, r.reason) for r in audit_rows(before)]
    assert ("tool.call", tool, "denied", "not granted") in decisions
    assert ("tool.call", "no_such_tool", "denied", "unknown tool") in decisions
    assert not [d for d in decisions if d[0] in ("step_up.required", "tool.call.completed")]


@BOTH
def test_okta_is_called_with_the_server_credential_only(world, db_access, mode) -> None:
    """Requirement 9: what get_user sends to Okta carries the server's SSWS token, never the
    client's bearer token (in a header or anywhere else), and nothing of Okta's credential comes
    back to the client."""
    from django.conf import settings

    token = world.tokens["bob"]
    okta_before = world.okta_requests()["count"]
    response = _call(world, "get_user", {"user": "alice@acme.example"}, token=token, mode=mode)
    result = tool_result(response)
    assert result["structuredContent"]["login"] == "alice@acme.example"
    made = world.okta_requests()["requests"][okta_before:]
    assert [(r["method"], r["path"]) for r in made] == [("GET", "/api/v1/users/alice@acme.example")]
    assert all(r["auth"] == "ssws" and r["authorized"] for r in made)
    assert all(token not in r["query"] and token not in r["path"] for r in made)
    assert settings.OKTA_API_TOKEN not in response.text and token not in response.text


def test_okta_request_log_tells_the_credentials_apart(world, db_access) -> None:
    """The witness above can fail: a request carrying a client's bearer token (or a wrong SSWS
    token) is logged as such, and refused by the stand-in as Okta would."""
    import httpx2 as httpx

    okta_before = world.okta_requests()["count"]
    for authorization in (f"Bearer {world.tokens['alice']}", "SSWS wrong-token", None):
        headers = {"Authorization": authorization} if authorization else {}
        assert httpx.get(world.okta_api_url + f"/api/v1/users/{BOB_ID}", headers=headers, timeout=10).status_code == 401
    made = world.okta_requests()["requests"][okta_before:]
    assert [(r["auth"], r["authorized"]) for r in made] == [("bearer", False), ("ssws", False), ("", False)]


# --- the official SDK client steps up by itself ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["legacy", MODERN])
def test_sdk_client_steps_up_and_retries(server_url, okta_org, public_client, demo_policy, mode) -> None:
    import httpx2 as httpx

    from audit.models import AuditEvent

    browser = Browser("alice")
    storage = MemoryTokenStorage(public_client.client_id)

    async def scenario() -> dict:
        out: dict = {}
        async with mcp_connection(server_url, browser, storage, mode=mode) as conn:
            out["before"] = tool_names(await conn.client.list_tools())
            first_scope = storage.tokens.scope
            # The 403 makes the SDK re-authorize with the scopes named in the challenge and retry.
            first = await conn.client.call_tool("clear_user_sessions", {"user_id": BOB_ID})
            out["first"] = first.structured_content
            out["scopes"] = (first_scope, storage.tokens.scope)
            out["authorizations"] = list(conn.authorizations)
            arguments = {"user_id": BOB_ID, "confirmation": first.structured_content["confirmation"]}
            done = await conn.client.call_tool("clear_user_sessions", arguments)
            out["done"], out["is_error"] = done.structured_content, done.is_error
            out["after"] = tool_names(await conn.client.list_tools())
        return out

    out = anyio.run(scenario)
    browser.close()

    from tools.registry import REGISTRY

    assert out["before"] == sorted(n for n, spec in REGISTRY.items() if spec.access == "read")
    assert out["first"]["outcome"] == "confirmation_required"
    assert out["is_error"] is not True and out["done"]["outcome"] == "done" and out["done"]["sessions_cleared"] is True
    assert out["after"] == sorted(REGISTRY)
    assert out["scopes"][0] == "mcp.read" and set(out["scopes"][1].split()) == {"mcp.read", "mcp.write"}
    assert len(out["authorizations"]) == 2
    assert "scope=mcp.read+mcp.write" in out["authorizations"][1]
    # The second consent page asked for the new scope and showed the write tool.
    assert len(browser.consent_pages) == 2 and "clear_user_sessions" in browser.consent_pages[1]
    events = list(AuditEvent.objects.order_by("id").values_list("event_type", "target", "decision"))
    step_up = events.index(("step_up.required", "clear_user_sessions", "denied"))
    assert ("tool.call", "clear_user_sessions", "allowed") in events[step_up:]
    made = httpx.get(okta_org + "/__sandbox/requests", timeout=10).json()["requests"]
    assert [r["method"] for r in made if r["path"] == SESSIONS_PATH] == ["DELETE"]


@pytest.mark.django_db
def test_write_tool_is_destructive_and_granted_to_admins_only() -> None:
    """The policy behind the tests above: the demo roles grant the write tool to Identity Admins
    only, and it needs mcp.write on top of the role."""
    from tools.registry import REGISTRY
    from tools.selectors import tools_allowed_for
    from tools.services import policy_seed_demo

    spec = REGISTRY["clear_user_sessions"]
    assert (spec.access, spec.destructive, spec.idempotent) == ("write", True, True)
    assert spec.required_scopes == {"mcp.read", "mcp.write"}
    policy_seed_demo()
    admin_read = tools_allowed_for(groups=["Everyone", "Identity Admins"], scopes=["mcp.read"])
    assert "clear_user_sessions" in admin_read.granted
    assert admin_read.needs_step_up("clear_user_sessions") and not admin_read.can_call("clear_user_sessions")
    admin_write = tools_allowed_for(groups=["Identity Admins"], scopes=["mcp.read", "mcp.write"])
    assert admin_write.can_call("clear_user_sessions") and not admin_write.needs_step_up("clear_user_sessions")
    for groups in (["Everyone", "Helpdesk"], ["Everyone", "Contractors"]):
        access = tools_allowed_for(groups=groups, scopes=["mcp.read", "mcp.write"])
        assert "clear_user_sessions" not in access.granted
        assert not access.needs_step_up("clear_user_sessions") and not access.can_call("clear_user_sessions")
    assert tools_allowed_for(groups=["Contractors"], scopes=["mcp.read"]).granted == frozenset()
