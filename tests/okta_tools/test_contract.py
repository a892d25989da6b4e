"""The tools checked against Okta's published contract: Stoplight Prism in proxy mode with
`--errors` in front of the sandbox Okta API, and a second daphne process of this project (same
database, same public URL, so the shared tokens are valid there) whose OKTA_ORG_URL is Prism. Every
Okta request and response of these tool calls is validated by Prism; a violation comes back as a
500, which the tool would report as an error, failing the test.

Left out: `list_user_roles`, whose answer the contract cannot validate (its `oneOf` of standard and
custom roles is ambiguous; see sandbox/okta_api/README.md)."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from django.conf import settings

from tests.conftest import LOG_DIR, ROOT, _server_database_url, _start, _stop, _wait_http
from tests.okta_tools.conftest import BOB, MODERN, Sandbox, World, error, ok, run
from tests.okta_tools.test_reads import READS, SINCE

PRISM_DIR = ROOT / "sandbox" / "okta_api" / "prism"
PRISM_JS = PRISM_DIR / "node_modules" / "@stoplight" / "prism-cli" / "dist" / "index.js"
NOT_IN_CONTRACT = {"list_user_roles"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def prism_url(okta_api_url: str) -> Iterator[str]:
    from sandbox.okta_api.recordings import default_reference_dir

    contract = default_reference_dir() / "management-api.prism.yaml"
    if not PRISM_JS.exists() or not contract.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the contract checks: Prism or Okta's contract is missing")
        pytest.skip("Prism (sandbox/okta_api/prism: npm ci) or Okta's contract is missing")
    port = _free_port()
    proc = _start(
        "prism-okta-tools",
        ["node", str(PRISM_JS), "proxy", str(contract), okta_api_url, "--errors", "-h", "127.0.0.1", "-p", str(port)],
        dict(os.environ),
        cwd=PRISM_DIR,
    )
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"SSWS {settings.OKTA_API_TOKEN}"}
    try:
        _wait_http(url + "/api/v1/groups", proc, "Prism", timeout=180)
        assert httpx.get(url + "/api/v1/groups", headers=headers, timeout=30).status_code == 200
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def contract_server(server_url: str, prism_url: str) -> Iterator[str]:
    """This project under daphne once more, talking to Okta through Prism. It keeps the public URL
    (and so the Host it accepts) of the main server: clients send that Host to its port."""
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _server_database_url(),
        "OKTA_ORG_URL": prism_url,
        "PYTHONUNBUFFERED": "1",
    }
    proc = _start(
        "daphne-okta-contract",
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "okta_mcp.asgi:application"],
        env,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", proc, "daphne (through Prism)")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


def _through_prism(world: World, contract_server: str, who: str, **kwargs: Any) -> Any:
    host = settings.PUBLIC_URL.split("://", 1)[1]
    return world.client(who, endpoint=contract_server, headers={"Host": host}, **kwargs)


@pytest.mark.django_db
def test_contract_covers_every_read_tool_but_roles() -> None:
    """(Marked django_db, it also makes pytest-django create the test database when this file runs alone.)"""
    assert {tool for tool, *_ in READS} - NOT_IN_CONTRACT == {t for t, *_ in READS if t != "list_user_roles"}


def test_every_read_tool_through_prism(world: World, sandbox: Sandbox, contract_server: str, db_access: None) -> None:
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {"calls": [], "missing": []}
        async with _through_prism(world, contract_server, "bob") as client:
            for tool, arguments, check, what in READS:
                if tool in NOT_IN_CONTRACT:
                    continue
                out["calls"].append((tool, arguments, check, await client.call_tool(tool, {**arguments, "full": True})))
                if what:
                    missing = {**arguments, what: "nosuch@acme.example" if what == "user" else "00x0000000000missing"}
                    out["missing"].append((tool, await client.call_tool(tool, missing)))
            sandbox.reset(extra_users=450)
            pages = [ok(await client.call_tool("list_users", {"limit": 200}))]
            while pages[-1]["next_cursor"]:
                pages.append(ok(await client.call_tool("list_users", {"limit": 200, "cursor": pages[-1]["next_cursor"]})))
            out["pages"] = pages
            out["log"] = await client.call_tool("query_system_log", {"since": SINCE, "limit": 200})
        return out

    out = run(scenario)
    for tool, arguments, check, result in out["calls"]:
        structured = ok(result)
        if check is not None:
            assert check(structured), (tool, arguments)
    for tool, result in out["missing"]:
        assert error(result).startswith("no Okta "), tool
    assert [p["returned"] for p in out["pages"]] == [200, 200, 54]
    assert len({u["id"] for p in out["pages"] for u in p["items"]}) == 454
    assert ok(out["log"])["returned"] >= 10
    # Since the reset, exactly the three pages and the log query reached Okta (through Prism).
    assert [(r["method"], r["path"]) for r in sandbox.requests()] == [("GET", "/api/v1/users")] * 3 + [("GET", "/api/v1/logs")]


def test_confirmed_write_through_prism(world: World, sandbox: Sandbox, contract_server: str, db_access: None) -> None:
    async def scenario() -> dict[str, Any]:
        async with _through_prism(world, contract_server, "alice_write", mode=MODERN) as client:
            asked = ok(await client.call_tool("suspend_user", {"user_id": BOB}))
            done = await client.call_tool("suspend_user", {"user_id": BOB, "confirmation": asked["confirmation"]})
            group = await client.call_tool("add_user_to_group", {"user_id": BOB, "group_id": "00g1everyone000000001"})
            return {"asked": asked, "done": done, "group": group}

    out = run(scenario)
    assert out["asked"]["outcome"] == "confirmation_required"
    assert ok(out["done"])["status_after"] == "SUSPENDED" and sandbox.user(BOB)["status"] == "SUSPENDED"
    assert "built-in" in error(out["group"]).lower() or "BUILT_IN" in error(out["group"])
    assert LOG_DIR.exists()
