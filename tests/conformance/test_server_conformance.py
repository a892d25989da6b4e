"""The official MCP conformance suite against the real /mcp endpoint, for each protocol revision at
its own wire (2025-11-25: initialize and sessions; 2026-07-28: stateless). The suite cannot send a
bearer token, so it talks to the test-only bearer proxy, which adds alice's real token and passes
everything else through (see tests/conformance/proxy.py for what it does with Host and Origin).
Whatever does not apply to a tools-only server is listed with its reason in conformance/baseline.yml."""

from __future__ import annotations

import shutil

import httpx2 as httpx
import pytest

from audit.models import AuditEvent
from tests.conformance.conftest import ARTIFACTS, node_tool, run_node_tool
from tests.conformance.proxy import RunningProxy
from tests.conformance.results import judge, load_baseline, load_checks, scenarios_started

pytestmark = pytest.mark.django_db(transaction=True)

# The scenarios that matter most for a tools server: each must run and may never be baselined whole
# (single checks that call a reference-server fixture may be, with their reason). tools-call-error
# is not among them: it only calls the reference fixture test_error_handling, which this server
# answers, as the specification says, with the protocol error for an unknown tool.
CORE = {
    "2025-11-25": {
        "server-initialize",
        "server-session-lifecycle",
        "ping",
        "tools-list",
        "dns-rebinding-protection",
    },
    "2026-07-28": {
        "server-stateless",
        "tools-list",
        "dns-rebinding-protection",
        "caching",
        "http-header-validation",
    },
}


@pytest.mark.parametrize("revision", ["2025-11-25", "2026-07-28"])
def test_server_conformance(bearer_proxy: RunningProxy, public_client, revision: str) -> None:
    conformance = node_tool("conformance")
    out = ARTIFACTS / "conformance" / f"server-{revision}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    run = run_node_tool(
        [
            str(conformance),
            "server",
            "--url",
            bearer_proxy.url + "/mcp",
            "--requirements",
            revision,
            "-o",
            str(out),
            "--timeout",
            "15000",
        ],
        timeout=600,
    )
    (out / "output.txt").write_text(run.stdout + "\n--- stderr ---\n" + run.stderr)

    started = scenarios_started(run.stdout)
    ran = load_checks(out)
    baseline = load_baseline(f"server-{revision}")
    assert CORE[revision] <= set(started), f"core scenarios missing from the run: {CORE[revision] - set(started)}"
    for scenario in CORE[revision]:
        assert scenario not in baseline, f"{scenario} must not be baselined whole"
        assert any(c.status == "SUCCESS" for c in ran[scenario]), f"{scenario} passed no check"
    problems = judge(ran, baseline, expected=started)
    assert not problems, f"conformance {revision} (full output in {out}):\n" + "\n".join(problems)

    # The suite reached the real endpoint as alice through her real token: the server audited it.
    listed = AuditEvent.objects.filter(event_type="tools.listed", client_id=public_client.client_id)
    assert listed.filter(actor_login="alice@acme.example").exists()
    # The rebinding probe reached the server with its foreign Host, and the server refused it.
    rebinding = ran["dns-rebinding-protection"]
    assert {c.id for c in rebinding if c.status == "SUCCESS"} >= {
        "localhost-host-rebinding-rejected",
        "localhost-host-valid-accepted",
    }
    assert any((b"host", b"evil.example.com") in r["headers"] for r in bearer_proxy.app.requests)


def _initialize(url: str, headers: dict[str, str]) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"},
        },
    }
    return httpx.post(
        url + "/mcp",
        json=body,
        headers={"Accept": "application/json, text/event-stream", **headers},
        timeout=30,
    )


def test_proxy_passes_foreign_host_origin_and_tokens_through(bearer_proxy: RunningProxy, server_url: str) -> None:
    """What makes the suite's DNS-rebinding and auth results the server's own: the proxy rewrites
    only its own authority and origin, and never replaces a token the client sent."""
    proxy = bearer_proxy.url
    own = _initialize(proxy, {"Origin": proxy})
    assert own.status_code == 200, own.text

    foreign_host = _initialize(proxy, {"Host": "evil.example.com"})
    assert foreign_host.status_code == 421
    assert foreign_host.json() == {"error": "misdirected request: unknown Host"}

    foreign_origin = _initialize(proxy, {"Origin": "http://evil.example.com"})
    assert foreign_origin.status_code == 403
    assert foreign_origin.json() == {"error": "forbidden Origin"}

    # The server's public origin through the proxy is an ordinary allowed origin, not a rewrite.
    assert _initialize(proxy, {"Origin": server_url}).status_code == 200

    own_token = _initialize(proxy, {"Authorization": "Bearer not-a-real-token"})
    assert own_token.status_code == 401
    assert 'error="invalid_token"' in own_token.headers["www-authenticate"]

    forwarded = [dict(r["headers"]) for r in bearer_proxy.app.requests]
    assert forwarded[1][b"host"] == b"evil.example.com"
    assert forwarded[2][b"origin"] == b"http://evil.example.com"
    assert forwarded[0][b"origin"] == server_url.encode()
    assert forwarded[4][b"authorization"] == b"Bearer not-a-real-token"
