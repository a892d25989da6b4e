"""Fixtures for the /mcp tests: the real server under daphne, tokens obtained through the real flow
(a person at the sandbox IdP, our consent page, /token with PKCE), and raw HTTP helpers for the
requests no well-behaved client would send.

Raw-HTTP tests share tokens minted once (the `world` fixture) whose data is committed outside
pytest-django's per-test transactions: those tests are not marked `django_db`, they reach the
database through `db_access`, and the folder's teardown flushes it as a transactional test would.
Tests driving the MCP SDK client are ordinary transactional tests with the root fixtures."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx2 as httpx
import pytest
from django.conf import settings

from tests.clients import LOOPBACK_REDIRECT, Browser, callback_params

MODERN = "2026-07-28"
LEGACY = "2025-11-25"
ACCEPT = "application/json, text/event-stream"
RESOURCE_METADATA = settings.PUBLIC_URL + "/.well-known/oauth-protected-resource/mcp"
CLIENT_ID = "mcp-rs-client"
REVOCABLE_CLIENT_ID = "mcp-rs-revocable"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def issue_token(server_url: str, browser: Browser, *, client_id: str, scope: str = "mcp.read") -> dict[str, Any]:
    """The authorization-code flow with PKCE as a client runs it; the browser logs in and approves."""
    verifier, challenge = pkce_pair()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": LOOPBACK_REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "scope": scope,
            "state": secrets.token_urlsafe(16),
            "resource": server_url + "/mcp",
        }
    )
    code = callback_params(browser.authorize(f"{server_url}/authorize?{query}"))["code"]
    response = httpx.post(
        server_url + "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": LOOPBACK_REDIRECT,
            "client_id": client_id,
            "code_verifier": verifier,
            "resource": server_url + "/mcp",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


@dataclass
class World:
    """What the raw-HTTP tests here share: the server, the sandbox Okta API and a token per user
    (`alice_write` holds mcp.read and mcp.write), all minted through the real flow."""

    url: str
    okta_api_url: str
    tokens: dict[str, str] = field(default_factory=dict)
    browsers: dict[str, Browser] = field(default_factory=dict)

    def build(self) -> None:
        from tools.services import policy_seed_demo

        httpx.post(self.okta_api_url + "/__sandbox/reset", timeout=10).raise_for_status()
        httpx.delete(self.okta_api_url + "/__sandbox/faults", timeout=10)
        _application(CLIENT_ID, "RS test client")
        _application(REVOCABLE_CLIENT_ID, "RS revocable client")
        policy_seed_demo()
        for name in ("alice", "bob", "carol"):
            if name not in self.browsers:
                self.browsers[name] = Browser(name)
            self.tokens[name] = issue_token(self.url, self.browsers[name], client_id=CLIENT_ID)["access_token"]
        self.tokens["alice_write"] = issue_token(
            self.url, self.browsers["alice"], client_id=CLIENT_ID, scope="mcp.read mcp.write"
        )["access_token"]

    def is_built(self) -> bool:
        from oauth2_provider.models import Application

        return bool(self.tokens) and Application.objects.filter(client_id=CLIENT_ID).exists()

    def fresh_token(
        self, user: str, *, client_id: str = REVOCABLE_CLIENT_ID, scope: str = "mcp.read"
    ) -> dict[str, Any]:
        """Another token through the real flow, by default from the client that tests may revoke."""
        return issue_token(self.url, self.browsers[user], client_id=client_id, scope=scope)

    def okta_requests(self) -> dict[str, Any]:
        response = httpx.get(self.okta_api_url + "/__sandbox/requests", timeout=10)
        response.raise_for_status()
        return response.json()


def _application(client_id: str, name: str) -> Any:
    from audit.services import RequestMeta
    from consent.services import client_register

    app, _ = client_register(
        name=name,
        client_id=client_id,
        redirect_uris=[LOOPBACK_REDIRECT],
        confidential=False,
        actor=None,
        meta=RequestMeta.for_command("tests"),
    )
    return app


@pytest.fixture(scope="package")
def _world(server_url: str, okta_api_url: str, django_db_blocker: Any) -> Iterator[World]:
    from django.core.management import call_command

    world = World(url=server_url, okta_api_url=okta_api_url)
    yield world
    for browser in world.browsers.values():
        browser.close()
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def world(_world: World, django_db_blocker: Any) -> World:
    """The shared world, minted on first use and again after a transactional test (in this folder
    or elsewhere) flushed the database under it."""
    with django_db_blocker.unblock():
        if not _world.is_built():
            _world.build()
    return _world


@pytest.fixture
def db_access(django_db_blocker: Any) -> Iterator[None]:
    """Database access for the tests that share `world`: what they write is committed at once, so
    the server under test sees it; `_world`'s teardown flushes it all."""
    with django_db_blocker.unblock():
        yield


# --- raw MCP over HTTP ---------------------------------------------------------------------------


def envelope(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """2026-07-28 requests carry the protocol version and client capabilities in params._meta."""
    return {
        **(params or {}),
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        },
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def rpc_request(
    url: str,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    mode: str = MODERN,
    session: str | None = None,
    headers: dict[str, str] | None = None,
    request_id: int = 1,
) -> httpx.Response:
    """One JSON-RPC request to /mcp as a client of protocol `mode` would send it."""
    sent = {"Accept": ACCEPT, "Content-Type": "application/json"}
    if mode == MODERN:
        sent.update({"MCP-Protocol-Version": MODERN, "Mcp-Method": method})
        if method == "tools/call" and params and isinstance(params.get("name"), str):
            sent["Mcp-Name"] = params["name"]
        params = envelope(params)
    elif method != "initialize":
        sent["MCP-Protocol-Version"] = LEGACY
    if session:
        sent["Mcp-Session-Id"] = session
    if token:
        sent.update(bearer(token))
    sent.update(headers or {})
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
    return httpx.post(url + "/mcp", json=body, headers=sent, timeout=30)


def open_session(url: str, token: str) -> str:
    """The 2025-11-25 handshake: initialize, then notifications/initialized; returns Mcp-Session-Id."""
    response = rpc_request(
        url,
        "initialize",
        {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "raw-test", "version": "1"}},
        token=token,
        mode=LEGACY,
    )
    assert response.status_code == 200, response.text
    session = response.headers["mcp-session-id"]
    ack = httpx.post(
        url + "/mcp",
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        headers={"Accept": ACCEPT, "MCP-Protocol-Version": LEGACY, "Mcp-Session-Id": session, **bearer(token)},
        timeout=30,
    )
    assert ack.status_code == 202, ack.text
    return session


def rpc_body(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a response, whether sent as JSON or as one SSE event."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                message = json.loads(line[5:])
                if "id" in message:
                    return message
        raise AssertionError(f"no JSON-RPC response in the event stream: {response.text[:300]}")
    return response.json()


def call_tool(
    url: str, name: str, arguments: Any, *, token: str, mode: str = MODERN, session: str | None = None
) -> httpx.Response:
    params = {"name": name, "arguments": arguments}
    return rpc_request(url, "tools/call", params, token=token, mode=mode, session=session)


def tool_result(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    message = rpc_body(response)
    assert "result" in message, message
    return message["result"]


def tool_error_text(response: httpx.Response) -> str:
    result = tool_result(response)
    assert result.get("isError") is True, result
    return " ".join(c.get("text", "") for c in result["content"])


# --- assertions ------------------------------------------------------------------------------------


def challenge_params(response: httpx.Response) -> dict[str, str]:
    """The parameters of a `WWW-Authenticate: Bearer k="v", ...` challenge."""
    value = response.headers.get("www-authenticate", "")
    scheme, _, rest = value.partition(" ")
    assert scheme == "Bearer", value
    params: dict[str, str] = {}
    while rest.strip():
        rest = rest.strip().lstrip(",").strip()
        key, _, rest = rest.partition("=")
        assert rest.startswith('"'), value
        end = rest.index('"', 1)
        params[key.strip()] = rest[1:end]
        rest = rest[end + 1 :]
    return params


def assert_challenge(response: httpx.Response, status: int, error: str, scope: str = "mcp.read") -> dict[str, Any]:
    """Status, the exact challenge parameters and a small JSON body without internals."""
    assert response.status_code == status, (response.status_code, response.text)
    params = challenge_params(response)
    assert params.pop("error") == error
    assert params.pop("resource_metadata") == RESOURCE_METADATA
    assert params.pop("scope") == scope
    params.pop("error_description", None)
    assert params == {}, f"unexpected challenge parameters: {params}"
    assert_clean_json(response)
    body = response.json()
    assert body["error"] == error
    return body


def assert_clean_json(response: httpx.Response) -> None:
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    response.json()
    for leak in ("Traceback", 'File "', "site-packages", "/work/"):
        assert leak not in response.text, response.text


def audit_rows(after_id: int, event_type: str | None = None) -> list[Any]:
    from audit.models import AuditEvent

    qs = AuditEvent.objects.filter(id__gt=after_id).order_by("id")
    if event_type:
        qs = qs.filter(event_type=event_type)
    return list(qs)


def last_audit_id() -> int:
    from audit.models import AuditEvent

    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def checksum(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def access_token_row(raw: str) -> Any:
    from oauth2_provider.models import AccessToken

    return AccessToken.objects.select_related("user", "application").get(token_checksum=checksum(raw))


def make_access_token(*, user: Any, application: Any, scope: str, resource: list[str], expires_in: timedelta) -> str:
    """A token row created directly, for the tokens the AS refuses to mint (negative cases only)."""
    from django.utils import timezone
    from oauth2_provider.models import AccessToken, set_token_value

    raw = secrets.token_urlsafe(32)
    token = AccessToken(
        user=user, application=application, scope=scope, resource=resource, expires=timezone.now() + expires_in
    )
    set_token_value(token, raw)
    token.save()
    return raw
