"""Fixtures for the third-party clients: the pinned Node 22 tools under conformance/, a real access
token obtained through the real OAuth flow (sandbox IdP login and our consent page), and the
test-only bearer proxy for the conformance suite, which cannot send a token itself."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.conformance.oauth_flow import obtain_tokens
from tests.conformance.proxy import RunningProxy

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "conformance"
NODE_BIN = NODE_DIR / "node_modules" / ".bin"
ARTIFACTS = ROOT / "test-artifacts"


def missing_tool(message: str) -> NoReturn:
    """Skip on a developer's machine that lacks a tool; in CI a missing tool is a broken install."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI must install it)")
    pytest.skip(message)


def node_tool(name: str) -> Path:
    """A binary from conformance/node_modules, or a skip saying how to install it."""
    path = NODE_BIN / name
    node = NODE_BIN / "node"
    if not path.exists() or not node.exists():
        missing_tool(f"{name} is not installed: run `npm ci` in conformance/ (pins Node 22 and the MCP tools)")
    return path


def node_env() -> dict[str, str]:
    """PATH starts with the pinned Node 22, so the tools' `#!/usr/bin/env node` runs it, not the system Node."""
    return {
        **os.environ,
        "PATH": f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "NO_COLOR": "1",
        "FORCE_COLOR": "0",
        "BROWSER": "none",  # nothing may try to open a desktop browser
    }


def run_node_tool(args: list[str], *, timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd or NODE_DIR, env=node_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def access_token(server_url: str, okta_org: str, public_client: object, demo_policy: None) -> str:
    """alice's (Identity Admins: every tool) access token for /mcp, from the real flow. With mcp.write:
    the suite's header scenarios call the first listed tool (a write tool) with bad arguments, and a
    read-only token would meet our step-up 403 before the header checks it is probing."""
    return obtain_tokens(server_url, public_client.client_id, scope="mcp.read mcp.write")["access_token"]  # type: ignore[attr-defined]


@pytest.fixture
def bearer_proxy(server_url: str, access_token: str) -> Iterator[RunningProxy]:
    proxy = RunningProxy(upstream=server_url, token=access_token).start()
    yield proxy
    proxy.stop()
