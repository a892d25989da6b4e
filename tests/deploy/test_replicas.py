"""A whole client session through TLS-terminating nginx whose requests alternate between two
replicas: OAuth flow, tools/list, tools/call, a forced refresh and a revocation, in both protocol
generations. The proxy's access log names the replica that served each request."""

from __future__ import annotations

import anyio
import httpx2 as httpx
import pytest

from audit.models import AuditEvent
from tests.clients import Browser, MemoryTokenStorage, mcp_connection, tool_names
from tests.deploy.conftest import Deployment, sample

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.nginx]

LEGACY_VERSION = "2025-11-25"


def _legacy(http: httpx.Client, token: str, method: str, params: dict) -> httpx.Response:
    """A bare 2025-11-25 request. With MCP_LEGACY_SESSIONS=stateless any of them, initialize
    included, is served on its own: no session id is issued or needed."""
    return http.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 7, "method": method, "params": params},
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": LEGACY_VERSION,
        },
    )


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_session_alternates_between_replicas(
    deployment: Deployment, okta_org, public_client, demo_policy, mode: str
) -> None:
    before = [deployment.scrape(i) for i in range(len(deployment.replica_urls))]
    mark = deployment.log_mark()
    browser = Browser("alice", verify=deployment.ssl_context)
    storage = MemoryTokenStorage(public_client.client_id)

    async def scenario() -> dict:
        out: dict = {}
        async with mcp_connection(
            deployment.public_url, browser, storage, mode=mode, verify=deployment.ssl_context
        ) as conn:
            out["tools"] = tool_names(await conn.client.list_tools())
            out["whoami"] = (await conn.client.call_tool("whoami", {})).structured_content
            out["get_user"] = (await conn.client.call_tool("get_user", {"user": "bob@acme.example"})).structured_content
            out["first"] = storage.tokens
            conn.force_refresh()
            out["after_refresh"] = (await conn.client.call_tool("whoami", {})).structured_content
            out["second"] = storage.tokens
            out["authorizations"] = len(conn.authorizations)
        return out

    out = anyio.run(scenario)
    browser.close()
    entries = deployment.log_since(mark)

    # The session worked, through the proxy, with https URLs everywhere.
    assert out["authorizations"] == 1
    assert "whoami" in out["tools"] and "get_user" in out["tools"]
    assert out["whoami"]["login"] == "alice@acme.example"
    assert out["get_user"]["login"] == "bob@acme.example"
    assert out["after_refresh"]["login"] == "alice@acme.example"
    assert out["first"].refresh_token != out["second"].refresh_token
    assert out["first"].access_token != out["second"].access_token

    # Every request of it, from discovery to the last tool call, went to the other replica than
    # the request before it, and both replicas served MCP requests and the OAuth endpoints.
    upstreams = [e["upstream"] for e in entries]
    assert len(entries) >= 12, [e["path"] for e in entries]
    assert all(a != b for a, b in zip(upstreams, upstreams[1:])), upstreams
    for upstream in deployment.upstreams:
        served = {e["path"] for e in entries if e["upstream"] == upstream}
        assert "/mcp" in served, (upstream, served)
    paths = {e["path"] for e in entries}
    assert {"/authorize", "/oidc/authenticate/", "/oidc/callback/", "/token", "/mcp"} <= paths
    assert all(e["status"] < 500 for e in entries)
    # Nothing but the 401 that starts discovery was refused.
    assert [e["status"] for e in entries if e["status"] in (401, 403, 404, 421)] == [401]

    # One request id (nginx's) joins the proxy's log line, the replica's JSON log lines and the
    # audit row of the refresh.
    refresh = [e for e in entries if e["path"] == "/token"][-1]
    row = AuditEvent.objects.get(event_type="token.refreshed", request_id=refresh["request_id"])
    assert row.actor_login == "alice@acme.example"
    lines = deployment.json_log_lines(refresh["request_id"])
    access = [line for line in lines if line.get("logger") == "okta_mcp.access"]
    assert len(access) == 1 and access[0]["http"]["path"] == "/token" and access[0]["http"]["status"] == 200
    served_by = deployment.replica_logs[deployment.upstreams.index(refresh["upstream"])].name
    assert access[0]["replica_log"] == served_by

    # Each replica counts what it served; together they saw exactly this session.
    after = [deployment.scrape(i) for i in range(len(deployment.replica_urls))]

    def total(name: str, **labels: str) -> float:
        return sum(sample(a, name, **labels) - sample(b, name, **labels) for a, b in zip(after, before))

    assert total("okta_mcp_tokens_total", event="issued") == 1
    assert total("okta_mcp_tokens_total", event="refreshed") == 1
    assert total("okta_mcp_tool_calls_total", tool="whoami", outcome="success") == 2
    assert total("okta_mcp_tool_calls_total", tool="get_user", outcome="success") == 1
    assert total("okta_mcp_okta_call_duration_seconds_count", operation="get_user", result="ok") >= 1
    mcp_served = [
        sum(v for (name, labels), v in a.items() if name == "okta_mcp_http_requests_total" and ("endpoint", "mcp") in labels)
        - sum(v for (name, labels), v in b.items() if name == "okta_mcp_http_requests_total" and ("endpoint", "mcp") in labels)
        for a, b in zip(after, before)
    ]
    assert all(n >= 1 for n in mcp_served) and sum(mcp_served) == len([e for e in entries if e["path"] == "/mcp"])

    # Legacy requests need no session: initialize opens none, and tools/list without one works on
    # the other replica. Then revocation through one replica holds on the other at the very next
    # request (the one that accepted the token just before).
    token = out["second"].access_token
    mark = deployment.log_mark()
    with deployment.http() as http:
        initialized = _legacy(
            http,
            token,
            "initialize",
            {"protocolVersion": LEGACY_VERSION, "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}},
        )
        accepted = _legacy(http, token, "tools/list", {})
        revoked = http.post(
            "/revoke",
            data={"token": token, "token_type_hint": "access_token", "client_id": public_client.client_id},
        )
        refused = _legacy(http, token, "tools/list", {})
    served = deployment.log_since(mark, expected=4)
    assert initialized.status_code == 200 and "mcp-session-id" not in initialized.headers
    assert accepted.status_code == 200 and "whoami" in accepted.text
    assert revoked.status_code == 200
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert [e["path"] for e in served] == ["/mcp", "/mcp", "/revoke", "/mcp"]
    assert served[1]["upstream"] == served[3]["upstream"] != served[2]["upstream"]


def test_proxy_passes_scheme_host_and_request_id(deployment: Deployment) -> None:
    with deployment.http() as http:
        metadata = http.get("/.well-known/oauth-protected-resource/mcp")
        server = http.get("/.well-known/oauth-authorization-server")
        wrong_host = http.post("/mcp", json={}, headers={"Host": "evil.example"})
        spoofed_id = http.get("/healthz", headers={"X-Request-Id": "client-chosen-id-1"})
        metrics = http.get("/metrics")
        static = http.get("/static/admin/css/base.css")
    assert metadata.status_code == 200
    assert metadata.json()["resource"] == deployment.public_url + "/mcp"
    assert server.json()["issuer"] == deployment.public_url
    assert server.json()["token_endpoint"] == deployment.public_url + "/token"
    # The gate checks Host itself: the proxy passes it through and the replica refuses it.
    assert wrong_host.status_code == 421
    # nginx's own request id replaces whatever the client sent, and is returned.
    assert spoofed_id.status_code == 200
    assert len(spoofed_id.headers["x-request-id"]) == 32 and spoofed_id.headers["x-request-id"] != "client-chosen-id-1"
    assert "max-age=" in spoofed_id.headers.get("strict-transport-security", "")
    # /metrics is never served through the public name; each replica is scraped directly.
    assert metrics.status_code == 404
    assert static.status_code == 200 and "text/css" in static.headers["content-type"]
