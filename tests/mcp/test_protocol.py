"""Bad input at /mcp gets a clear error and changes nothing (requirement 26): malformed JSON-RPC,
unknown methods, invalid tool arguments, oversized bodies, and identifiers that would change an
Okta API path; in both protocol generations, with Okta's request log and the audit table as
witnesses that nothing went further than it should."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anyio
import httpx2 as httpx
import pytest
from django.conf import settings

from tests.clients import Browser, MemoryTokenStorage, mcp_connection
from tests.mcp.conftest import (
    ACCEPT,
    LEGACY,
    MODERN,
    assert_clean_json,
    audit_rows,
    bearer,
    call_tool,
    last_audit_id,
    open_session,
    rpc_body,
    rpc_request,
    tool_error_text,
    tool_result,
)

BOTH = pytest.mark.parametrize("mode", [MODERN, LEGACY])
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
PATH_CHANGING_IDS = [
    "../00u1",
    "00u1%2f..",
    "a?b",
    "a#b",
    "a b",
    "a/b",
    "..",
    "%2e%2e",
    "00u1\n",
    "a\\b",
    "00u1/../../groups",
    "00u1%00",
    "00u1\u2215x",
]


def _headers(world, mode: str, session: str | None, token: str) -> dict[str, str]:
    headers = {"Accept": ACCEPT, "Content-Type": "application/json", "MCP-Protocol-Version": mode, **bearer(token)}
    if session:
        headers["Mcp-Session-Id"] = session
    return headers


def _session(world, mode: str, token: str) -> str | None:
    return open_session(world.url, token) if mode == LEGACY else None


MALFORMED = [
    ("truncated", b'{"jsonrpc": "2.0", "id": 1, "method": ', {PARSE_ERROR}),
    ("empty", b"", {PARSE_ERROR}),
    ("not-utf8", b"\xff\xfe not utf-8", {PARSE_ERROR}),
    ("deeply-nested", b"[" * 100_000 + b"]" * 100_000, {PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS}),
    ("not-jsonrpc", b'{"hello": "world"}', {INVALID_REQUEST, INVALID_PARAMS}),
    ("array", b"[1, 2]", {INVALID_REQUEST, INVALID_PARAMS}),
    ("string", b'"tools/list"', {INVALID_REQUEST, INVALID_PARAMS}),
    ("number", b"42", {INVALID_REQUEST, INVALID_PARAMS}),
    ("wrong-version", b'{"jsonrpc": "1.0", "id": 1, "method": "tools/list"}', {INVALID_REQUEST, INVALID_PARAMS}),
    ("object-id", b'{"jsonrpc": "2.0", "id": {"x": 1}, "method": "tools/list"}', {INVALID_REQUEST}),
    ("null-id", b'{"jsonrpc": "2.0", "id": null, "method": "tools/list"}', {INVALID_REQUEST}),
    ("bool-id", b'{"jsonrpc": "2.0", "id": true, "method": "tools/list"}', {INVALID_REQUEST}),
]


@BOTH
def test_malformed_jsonrpc_gets_a_jsonrpc_error(world, db_access, mode) -> None:
    """Each gets a 400 with a JSON-RPC error (the 2025-11-25 transport of the SDK reports an
    invalid request as -32602 where 2026-07-28 says -32600), never a 500 or a silent 202."""
    token = world.tokens["alice"]
    session = _session(world, mode, token)
    before, okta_before = last_audit_id(), world.okta_requests()["count"]
    for name, body, codes in MALFORMED:
        headers = _headers(world, mode, session, token)
        response = httpx.post(world.url + "/mcp", content=body, headers=headers, timeout=10)
        assert response.status_code == 400, (name, response.status_code, response.text[:300])
        assert_clean_json(response)
        message = response.json()
        assert message["jsonrpc"] == "2.0" and message["id"] is None, (name, message)
        assert message["error"]["code"] in codes, (name, message)
    assert audit_rows(before) == [] and world.okta_requests()["count"] == okta_before
    if session:  # the session survived the bad messages
        assert "result" in rpc_body(rpc_request(world.url, "tools/list", token=token, mode=LEGACY, session=session))


@BOTH
def test_unknown_method(world, db_access, mode) -> None:
    token = world.tokens["alice"]
    session = _session(world, mode, token)
    before = last_audit_id()
    for method in ("tools/destroy", "admin/shell", "okta/users/delete"):
        response = rpc_request(world.url, method, {}, token=token, mode=mode, session=session, request_id=9)
        assert response.status_code in (200, 404), response.text
        message = rpc_body(response)
        assert message["id"] == 9 and message["error"]["code"] == METHOD_NOT_FOUND, message
        assert "Traceback" not in response.text
    assert audit_rows(before) == []


INVALID_ARGUMENTS = [
    ({"user": 123}, "user"),
    ({"user": ["bob@acme.example"]}, "user"),
    ({"user": "bob@acme.example", "extra": 1}, "extra"),
    ({"user": "bob@acme.example", "full": "maybe"}, "full"),
    ({}, "user"),
    ({"user": ""}, "user"),
    ({"user": "b" * 101}, "user"),
]


@BOTH
def test_invalid_tool_arguments_name_the_field_and_reach_nothing(world, db_access, mode) -> None:
    token = world.tokens["bob"]
    session = _session(world, mode, token)
    before, okta_before = last_audit_id(), world.okta_requests()["count"]
    for arguments, field in INVALID_ARGUMENTS:
        text = tool_error_text(call_tool(world.url, "get_user", arguments, token=token, mode=mode, session=session))
        assert text.startswith("Invalid arguments for get_user: ") and f"{field}:" in text, (arguments, text)
    assert world.okta_requests()["count"] == okta_before
    rows = audit_rows(before)
    assert [(r.event_type, r.decision, r.reason) for r in rows] == [("tool.call", "denied", "invalid arguments")] * len(
        INVALID_ARGUMENTS
    )


@BOTH
def test_identifiers_that_would_change_the_okta_path_are_refused(world, db_access, mode) -> None:
    token = world.tokens["alice_write"]
    session = _session(world, mode, token)
    okta_before = world.okta_requests()["count"]
    for ident in PATH_CHANGING_IDS:
        for tool, arguments, what in (
            ("get_user", {"user": ident}, "invalid user:"),
            ("clear_user_sessions", {"user_id": ident}, "invalid user id:"),
        ):
            text = tool_error_text(call_tool(world.url, tool, arguments, token=token, mode=mode, session=session))
            assert text.startswith(what), (ident, tool, text)
    # Zero HTTP requests reached the stand-in.
    assert world.okta_requests()["count"] == okta_before


def _big_body() -> bytes:
    filler = "a" * (settings.MCP_MAX_BODY_BYTES + 1)
    return ('{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"x": "' + filler + '"}}').encode()


def _chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@BOTH
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("with_token", [True, False], ids=["valid-token", "no-token"])
def test_oversized_body_is_refused(world, db_access, mode, framing, with_token) -> None:
    token = world.tokens["alice"]
    session = _session(world, mode, token) if with_token else None
    headers = _headers(world, mode, session, token)
    if not with_token:
        headers.pop("Authorization")
    body = _big_body()
    before, okta_before = last_audit_id(), world.okta_requests()["count"]
    content = body if framing == "content-length" else _chunks(body)
    response = httpx.post(world.url + "/mcp", content=content, headers=headers, timeout=30)
    sent = response.request.headers
    assert ("content-length" in sent) == (framing == "content-length")
    assert (sent.get("transfer-encoding") == "chunked") == (framing == "chunked")
    assert response.status_code == 413, response.text[:200]
    assert_clean_json(response)
    assert audit_rows(before) == [] and world.okta_requests()["count"] == okta_before


def test_body_at_the_limit_is_served(world, db_access) -> None:
    """The limit is the limit: a body of exactly MCP_MAX_BODY_BYTES reaches the SDK."""
    token = world.tokens["alice"]
    head = '{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"x": "'
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    tail = '", "_meta": ' + json.dumps(meta) + "}}"
    body = (head + "a" * (settings.MCP_MAX_BODY_BYTES - len(head) - len(tail)) + tail).encode()
    assert len(body) == settings.MCP_MAX_BODY_BYTES
    headers = {**_headers(world, MODERN, None, token), "Mcp-Method": "tools/list"}
    response = httpx.post(world.url + "/mcp", content=body, headers=headers, timeout=30)
    assert response.status_code != 413, response.text[:200]
    assert "result" in rpc_body(response), response.text[:300]


# --- the official SDK client -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["legacy", MODERN])
def test_sdk_client_reads_bad_input_as_tool_errors(server_url, okta_org, public_client, demo_policy, mode) -> None:
    """What a model sees through a real client: invalid arguments and a path-changing id come back
    as tool errors it can read, and Okta receives nothing."""
    browser = Browser("bob")
    storage = MemoryTokenStorage(public_client.client_id)

    def okta_count() -> int:
        return httpx.get(okta_org + "/__sandbox/requests", timeout=10).json()["count"]

    async def scenario() -> list[tuple[bool, str, int]]:
        out = []
        async with mcp_connection(server_url, browser, storage, mode=mode) as conn:
            await conn.client.list_tools()  # authorized (and logged in, which reads Okta) before counting
            bad = ({"user": 5}, {"user": "bob@acme.example", "admin": True}, {"user": "../00u1carol00000000001"})
            for arguments in bad:
                before = await anyio.to_thread.run_sync(okta_count)
                result = await conn.client.call_tool("get_user", arguments)
                after = await anyio.to_thread.run_sync(okta_count)
                out.append((bool(result.is_error), result.content[0].text, after - before))
        return out

    out = anyio.run(scenario)
    browser.close()
    assert [(err, delta) for err, _, delta in out] == [(True, 0)] * 3
    assert "user:" in out[0][1] and "admin:" in out[1][1] and out[2][1].startswith("invalid user:")


# --- the tool list on the wire -------------------------------------------------------------------------


@BOTH
def test_tool_list_on_the_wire_is_what_the_sdk_makes_of_the_definitions(world, db_access, mode) -> None:
    """tools/list answers definitions dumped once and shared between requests: each is exactly what
    the SDK makes of the tool's definition model for the version spoken, and a second list (after a
    list on the other version) is the same as the first."""
    import mcp_types as types
    from mcp_types.methods import serialize_server_result

    from okta_mcp.mcp_server import tool_definition
    from tools.registry import REGISTRY

    token = world.tokens["bob"]
    session = _session(world, mode, token)
    first = rpc_body(rpc_request(world.url, "tools/list", {}, token=token, mode=mode, session=session))["result"]
    other = MODERN if mode == LEGACY else LEGACY
    rpc_body(rpc_request(world.url, "tools/list", {}, token=token, mode=other, session=_session(world, other, token)))
    second = rpc_body(rpc_request(world.url, "tools/list", {}, token=token, mode=mode, session=session))["result"]
    assert first["tools"] == second["tools"]
    names = [t["name"] for t in first["tools"]]
    assert names == sorted(names) and len(names) > 5
    models = types.ListToolsResult(tools=[tool_definition(REGISTRY[n]) for n in names], cache_scope="private", ttl_ms=0)
    expected = serialize_server_result(
        "tools/list", mode, models.model_dump(by_alias=True, mode="json", exclude_none=True)
    )
    assert first["tools"] == expected["tools"]
    assert ("ttlMs" in first) == (mode == MODERN)


# --- a tool's result on the wire -----------------------------------------------------------------------


@BOTH
def test_tool_result_on_the_wire_is_structured_and_text(world, db_access, mode) -> None:
    """A successful tool call answers exactly the fields of a CallToolResult for the version spoken:
    structured content that conforms to the tool's outputSchema, the same JSON as one text block,
    isError false, and (2026-07-28 only) resultType "complete"."""
    import jsonschema

    token = world.tokens["bob"]
    session = _session(world, mode, token)
    listed = rpc_body(rpc_request(world.url, "tools/list", {}, token=token, mode=mode, session=session))
    schemas = {t["name"]: t["outputSchema"] for t in listed["result"]["tools"]}
    calls = [
        ("list_users", {"limit": 200}),
        ("list_users", {"limit": 2, "full": True}),
        ("get_user", {"user": "bob@acme.example"}),
    ]
    for name, arguments in calls:
        result = tool_result(call_tool(world.url, name, arguments, token=token, mode=mode, session=session))
        expected = {"content", "structuredContent", "isError"} | ({"resultType", "_meta"} if mode == MODERN else set())
        assert set(result) == expected, (name, sorted(result))
        assert result["isError"] is False and result.get("resultType", "complete") == "complete", result.keys()
        [block] = result["content"]
        assert set(block) == {"type", "text"} and block["type"] == "text"
        structured = result["structuredContent"]
        assert json.loads(block["text"]) == structured, name
        jsonschema.validate(structured, schemas[name])
        if name == "list_users":
            assert structured["returned"] == len(structured["items"]) > 0
            assert all((i["full"] is not None) == arguments.get("full", False) for i in structured["items"])
