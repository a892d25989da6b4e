"""The MCP Inspector CLI (pinned in conformance/package.json, on Node 22) as a real client: with a
bearer token in a header, and through its own OAuth flow (discovery from our 401, PKCE, our consent
page, the code delivered to its loopback listener), in both protocol generations ("legacy" =
2025-11-25 with initialize and a session, "modern" = 2026-07-28, stateless)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2 as httpx
import pytest
from oauth2_provider.models import AccessToken, Application

from audit.models import AuditEvent
from tests.clients import Browser
from tests.conformance.conftest import NODE_DIR, node_env, node_tool
from tests.conformance.proxy import free_port
from tools.registry import REGISTRY

pytestmark = pytest.mark.django_db(transaction=True)

ERAS = ["legacy", "modern"]


def _inspector_env(home: Path) -> dict[str, str]:
    # A throwaway HOME: the Inspector keeps its catalog and OAuth state under ~/.mcp-inspector.
    return {**node_env(), "HOME": str(home), "MCP_INSPECTOR_SECRET_STORE": "memory"}


def _inspector(server_url: str, era: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    inspector = node_tool("inspector")
    cmd = [
        str(inspector),
        "--cli",
        server_url + "/mcp",
        "--transport",
        "http",
        "--protocol-era",
        era,
        "--format",
        "json",
        *args,
    ]
    return subprocess.run(
        cmd, cwd=NODE_DIR, env=_inspector_env(home), capture_output=True, text=True, timeout=120, check=False
    )


def _result(run: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert run.returncode == 0, f"exit {run.returncode}: {run.stdout[-800:]} {run.stderr[-1500:]}"
    return json.loads(run.stdout)["result"]


@pytest.mark.parametrize("era", ERAS)
def test_inspector_lists_and_calls_tools_with_bearer_header(
    server_url: str, access_token: str, era: str, tmp_path: Path
) -> None:
    bearer = f"Authorization: Bearer {access_token}"
    listed = _result(_inspector(server_url, era, tmp_path, "--header", bearer, "--method", "tools/list"))
    assert sorted(t["name"] for t in listed["tools"]) == sorted(REGISTRY)  # alice's role grants every tool
    get_user = next(t for t in listed["tools"] if t["name"] == "get_user")
    assert get_user["annotations"]["readOnlyHint"] is True and get_user["inputSchema"]["required"] == ["user"]

    me = _result(
        _inspector(server_url, era, tmp_path, "--header", bearer, "--method", "tools/call", "--tool-name", "whoami")
    )
    assert me["isError"] is False
    assert me["structuredContent"]["login"] == "alice@acme.example"
    user = _result(
        _inspector(server_url, era, tmp_path, "--header", bearer, "--method", "tools/call", "--tool-name", "get_user",
                   "--tool-arg", "user=bob@acme.example")
    )  # fmt: skip
    assert user["structuredContent"]["login"] == "bob@acme.example" and user["structuredContent"]["status"] == "ACTIVE"
    # The 2026-07-28 wire names the server in every result's _meta; the legacy wire does not.
    assert ("io.modelcontextprotocol/serverInfo" in me.get("_meta", {})) is (era == "modern")

    bad = _inspector(
        server_url, era, tmp_path, "--header", "Authorization: Bearer not-a-real-token", "--method", "tools/list"
    )
    assert bad.returncode != 0 and '"result"' not in bad.stdout
    assert AuditEvent.objects.filter(
        event_type="tool.call", actor_login="alice@acme.example", target__contains="get_user"
    ).exists()


def test_inspector_without_token_or_terminal_stops_at_auth_required(server_url: str, tmp_path: Path) -> None:
    run = _inspector(server_url, "legacy", tmp_path, "--method", "tools/list")
    assert run.returncode != 0
    assert json.loads(run.stderr.strip().splitlines()[-1])["error"]["code"] == "auth_required"


def _authorization_url(proc: subprocess.Popen[str], seen: list[str], timeout: float = 60) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if "Please navigate to:" in line:
            return line.split("Please navigate to:", 1)[1].strip()
    raise AssertionError("the Inspector printed no authorization URL:\n" + "".join(seen))


@pytest.mark.parametrize("era", ERAS)
def test_inspector_completes_its_own_oauth_flow_headlessly(
    server_url: str, okta_org: str, demo_policy: None, era: str, tmp_path: Path
) -> None:
    """MCP_AUTO_OPEN_ENABLED=true is the Inspector's switch for OAuth without a terminal; it prints
    the URL it would open, and BROWSER=true makes its opener a no-op. bob (Helpdesk) plays the user."""
    port = free_port()
    callback = f"http://127.0.0.1:{port}/oauth/callback"
    client = Application.objects.create(
        name="MCP Inspector",
        client_id="mcp-inspector",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=callback,
        algorithm="",
    )
    inspector = node_tool("inspector")
    env = {**_inspector_env(tmp_path), "MCP_AUTO_OPEN_ENABLED": "true", "BROWSER": "true"}
    proc = subprocess.Popen(
        [str(inspector), "--cli", server_url + "/mcp", "--transport", "http", "--protocol-era", era, "--format", "json",
         "--client-id", client.client_id, "--callback-url", callback, "--method", "tools/list"],
        cwd=NODE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: list[str] = []
    browser = Browser("bob")
    try:
        url = _authorization_url(proc, seen)
        assert url.startswith(server_url + "/authorize?") and "code_challenge_method=S256" in url
        assert "resource=" + quote(server_url + "/mcp", safe="") in url
        final = browser.authorize(url, redirect_uri=callback)
        assert httpx.get(final, timeout=30).status_code == 200
        out, err = proc.communicate(timeout=120)
    finally:
        browser.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(seen) + err
    listed = json.loads(out)["result"]
    # bob's role (Helpdesk: read tools), not alice's, although the Inspector asked for mcp.write too.
    assert sorted(t["name"] for t in listed["tools"]) == sorted(n for n, s in REGISTRY.items() if s.access == "read")
    assert "MCP Inspector" in browser.consent_pages[0]
    token = AccessToken.objects.get(application=client, user__okta_login="bob@acme.example")
    assert token.resource == [server_url + "/mcp"]
