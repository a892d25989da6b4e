"""DNS-rebinding protection and legacy sessions at /mcp (requirements 7 and 8): Origin and Host are
checked before anything else, and a 2025-11-25 session id is random, bound to the user and client
that opened it, and never a credential; the 2026-07-28 protocol has no sessions."""

from __future__ import annotations

import re

import httpx2 as httpx
import pytest
from django.conf import settings

from tests.mcp.conftest import (
    LEGACY,
    MODERN,
    assert_challenge,
    assert_clean_json,
    audit_rows,
    bearer,
    call_tool,
    last_audit_id,
    open_session,
    rpc_body,
    rpc_request,
    tool_result,
)

BOTH = pytest.mark.parametrize("mode", [MODERN, LEGACY])


def _post(world, mode: str, headers: dict[str, str], token: str | None = None) -> httpx.Response:
    """The first request of each protocol: tools/list on 2026-07-28, initialize on 2025-11-25."""
    if mode == LEGACY:
        params = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
        return rpc_request(world.url, "initialize", params, token=token, mode=LEGACY, headers=headers)
    return rpc_request(world.url, "tools/list", token=token, headers=headers)


def _in(session: str, token: str) -> dict[str, str]:
    """Headers of a follow-up request in a 2025-11-25 session."""
    return {"MCP-Protocol-Version": LEGACY, "Mcp-Session-Id": session, **bearer(token)}


# --- requirement 7: Origin and Host ------------------------------------------------------------------


FOREIGN_ORIGINS = ["https://evil.example", "null", settings.PUBLIC_URL + ".evil.example", "http://127.0.0.1:1"]
FOREIGN_HOSTS = ["evil.example", "127.0.0.1:1", "localhost:{port}", "127.0.0.1", "[::1]:{port}"]


@BOTH
def test_foreign_origin_is_forbidden_before_authentication(world, db_access, mode) -> None:
    before, okta_before = last_audit_id(), world.okta_requests()["count"]
    for origin in FOREIGN_ORIGINS:
        for token in (None, world.tokens["alice"]):
            response = _post(world, mode, {"Origin": origin}, token=token)
            assert response.status_code == 403, (origin, response.text)
            assert "www-authenticate" not in response.headers
            assert "mcp-session-id" not in response.headers
            assert_clean_json(response)
    assert audit_rows(before) == [] and world.okta_requests()["count"] == okta_before


@BOTH
def test_foreign_host_is_misdirected_before_authentication(world, db_access, mode) -> None:
    port = settings.PUBLIC_URL.rsplit(":", 1)[1]
    before = last_audit_id()
    for host in FOREIGN_HOSTS:
        # With or without a token, with an allowed or a foreign Origin: Host decides first.
        for token in (None, world.tokens["alice"]):
            for origin in (settings.PUBLIC_URL, "https://evil.example"):
                response = _post(world, mode, {"Host": host.format(port=port), "Origin": origin}, token=token)
                assert response.status_code == 421, (host, response.text)
                assert "www-authenticate" not in response.headers
                assert_clean_json(response)
    assert audit_rows(before) == []


@BOTH
@pytest.mark.parametrize("origin", [settings.PUBLIC_URL, None], ids=["own-origin", "native-client"])
def test_own_origin_and_no_origin_pass(world, db_access, mode, origin) -> None:
    headers = {"Origin": origin} if origin else {}
    response = _post(world, mode, headers, token=world.tokens["alice"])
    assert response.status_code == 200, response.text
    assert "result" in rpc_body(response)
    # Without a token the same request reaches the bearer check: Origin and Host let it through.
    assert_challenge(_post(world, mode, headers), 401, "invalid_token")


# --- requirement 8: legacy sessions ------------------------------------------------------------------


def test_session_ids_are_random_and_distinct(world, db_access) -> None:
    ids = {open_session(world.url, world.tokens["alice"]) for _ in range(3)}
    assert len(ids) == 3
    for sid in ids:
        # 128-bit uuid4 in hex: unguessable and safe in a header.
        assert re.fullmatch(r"[0-9a-f]{32}", sid), sid
    assert len({sid[:8] for sid in ids}) == 3  # no shared counter or timestamp prefix


def test_session_is_bound_to_its_user(world, db_access) -> None:
    alice = world.tokens["alice"]
    session = open_session(world.url, alice)
    before, okta_before = last_audit_id(), world.okta_requests()["count"]
    for other in ("bob", "carol"):
        token = world.tokens[other]
        listed = rpc_request(world.url, "tools/list", token=token, mode=LEGACY, session=session)
        assert listed.status_code == 404, listed.text
        assert_clean_json(listed)
        called = call_tool(world.url, "whoami", {}, token=token, mode=LEGACY, session=session)
        assert called.status_code == 404
        listen = {"Accept": "text/event-stream", **_in(session, token)}
        assert httpx.get(world.url + "/mcp", headers=listen, timeout=10).status_code == 404
        ended = httpx.delete(world.url + "/mcp", headers=_in(session, token), timeout=10)
        assert ended.status_code == 404
    # Nothing ran for them and Okta saw nothing.
    assert not [r for r in audit_rows(before) if r.event_type.startswith("tool")]
    assert world.okta_requests()["count"] == okta_before
    # The session survived the attempts and still serves its owner, as its owner.
    me = tool_result(call_tool(world.url, "whoami", {}, token=alice, mode=LEGACY, session=session))
    assert me["structuredContent"]["login"] == "alice@acme.example"


def test_session_is_bound_to_its_client(world, db_access) -> None:
    """The same person through another client (its own consent and tokens) gets 404 too."""
    session = open_session(world.url, world.tokens["alice"])
    other_client = world.fresh_token("alice")["access_token"]
    response = rpc_request(world.url, "tools/list", token=other_client, mode=LEGACY, session=session)
    assert response.status_code == 404, response.text
    # Another token of the same user and client continues the session.
    same_client = world.tokens["alice_write"]
    ok = rpc_request(world.url, "tools/list", token=same_client, mode=LEGACY, session=session)
    assert ok.status_code == 200 and "result" in rpc_body(ok)


def test_session_id_is_not_a_credential(world, db_access) -> None:
    session = open_session(world.url, world.tokens["alice"])
    before, okta_before = last_audit_id(), world.okta_requests()["count"]
    for method in ("tools/list", "tools/call"):
        params = {"name": "whoami", "arguments": {}} if method == "tools/call" else {}
        response = rpc_request(world.url, method, params, mode=LEGACY, session=session)
        assert_challenge(response, 401, "invalid_token")
        assert "mcp-session-id" not in response.headers
    as_token = {"Authorization": "Bearer " + session}
    response = rpc_request(world.url, "tools/list", mode=LEGACY, session=session, headers=as_token)
    assert_challenge(response, 401, "invalid_token")
    assert audit_rows(before) == [] and world.okta_requests()["count"] == okta_before


def test_session_stream_headers_arrive_at_once(world, db_access) -> None:
    """The standing GET stream of a session answers its headers at once, not with the first
    keep-alive ping 15 s later: the SDK client holds its auth lock until they arrive, so every
    other request of the session would wait that long."""
    token = world.tokens["alice"]
    session = open_session(world.url, token)
    headers = {"Accept": "text/event-stream", **_in(session, token)}
    with httpx.stream("GET", world.url + "/mcp", headers=headers, timeout=httpx.Timeout(5.0)) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
    ended = httpx.delete(world.url + "/mcp", headers=_in(session, token), timeout=10)
    assert ended.status_code == 200
    # An ended session is gone for its owner too.
    assert rpc_request(world.url, "tools/list", token=token, mode=LEGACY, session=session).status_code == 404


def test_unknown_session_id_is_404(world, db_access) -> None:
    response = rpc_request(world.url, "tools/list", token=world.tokens["alice"], mode=LEGACY, session="0" * 32)
    assert response.status_code == 404
    assert_clean_json(response)


def test_modern_protocol_has_no_sessions(world, db_access) -> None:
    bob = world.tokens["bob"]
    for method, params in (("tools/list", {}), ("tools/call", {"name": "whoami", "arguments": {}})):
        response = rpc_request(world.url, method, params, token=bob)
        assert response.status_code == 200, response.text
        assert "mcp-session-id" not in response.headers
    # A legacy session id sent along on the 2026-07-28 protocol is ignored: it neither
    # authenticates nor lends its owner's identity.
    alice_session = open_session(world.url, world.tokens["alice"])
    me = tool_result(call_tool(world.url, "whoami", {}, token=bob, mode=MODERN, session=alice_session))
    assert me["structuredContent"]["login"] == "bob@acme.example"
    assert_challenge(rpc_request(world.url, "tools/list", session=alice_session), 401, "invalid_token")


@pytest.mark.django_db(transaction=True)
def test_sdk_clients_keep_to_their_own_sessions(server_url, okta_org, public_client, demo_policy) -> None:
    """Two people through the official client at once on the session protocol: each session
    answers as its own user, request after request."""
    import anyio

    from tests.clients import Browser, MemoryTokenStorage, mcp_connection

    browsers = {name: Browser(name) for name in ("alice", "bob")}

    async def scenario() -> list[tuple[str, str]]:
        seen = []
        async with (
            mcp_connection(server_url, browsers["alice"], MemoryTokenStorage(public_client.client_id)) as alice,
            mcp_connection(server_url, browsers["bob"], MemoryTokenStorage(public_client.client_id)) as bob,
        ):
            for _ in range(2):
                for name, conn in (("alice", alice), ("bob", bob)):
                    result = await conn.client.call_tool("whoami", {})
                    seen.append((name, result.structured_content["login"]))
        return seen

    seen = anyio.run(scenario)
    for browser in browsers.values():
        browser.close()
    assert seen == [("alice", "alice@acme.example"), ("bob", "bob@acme.example")] * 2
