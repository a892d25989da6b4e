"""The authorization-code grant with PKCE, step by step, for tests that need a real token or want to
drive the browser part themselves (tests/browser)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx2 as httpx

from tests.clients import LOOPBACK_REDIRECT, Browser, callback_params


@dataclass
class AuthorizationRequest:
    server_url: str
    client_id: str
    redirect_uri: str = LOOPBACK_REDIRECT
    scope: str = "mcp.read"
    state: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @property
    def url(self) -> str:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self.scope,
                "state": self.state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "resource": self.server_url + "/mcp",
            }
        )
        return f"{self.server_url}/authorize?{query}"

    def redeem(self, code: str) -> httpx.Response:
        return httpx.post(
            self.server_url + "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "client_id": self.client_id,
                "code_verifier": self.verifier,
                "resource": self.server_url + "/mcp",
            },
            timeout=30,
        )


def obtain_tokens(server_url: str, client_id: str, *, user: str = "alice", scope: str = "mcp.read") -> dict[str, str]:
    """The whole grant as a person at a browser completes it (sandbox IdP login, our consent page)."""
    request = AuthorizationRequest(server_url, client_id, scope=scope)
    browser = Browser(user)
    try:
        params = callback_params(browser.authorize(request.url))
    finally:
        browser.close()
    assert params.get("state") == request.state and "code" in params, params
    response = request.redeem(params["code"])
    assert response.status_code == 200, response.text
    return response.json()
