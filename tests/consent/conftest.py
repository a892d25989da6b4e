"""Fixtures for the authorization-server tests: a browser that stops where the test looks, more
client registrations, a logged-in flow that hands out codes and tokens, and the guard that a
refused request changed no token, code, consent or login session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from tests.clients import LOOPBACK_REDIRECT
from tests.consent.flows import ConsentBrowser, Pkce, authorize_url, redeem, state_of_grants

HTTPS_REDIRECT = "https://client.example/callback"


@pytest.fixture
def browser() -> Iterator[ConsentBrowser]:
    """alice (Identity Admins) at a browser."""
    b = ConsentBrowser("alice")
    yield b
    b.close()


def _client(name: str, client_id: str, redirect_uris: str, **fields: Any) -> Any:
    from oauth2_provider.models import Application

    # A public client has no secret; leaving DOT's generated one unhashed skips a PBKDF2 round.
    return Application.objects.create(
        name=name,
        client_id=client_id,
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=redirect_uris,
        skip_authorization=False,
        algorithm="",
        client_secret="",
        hash_client_secret=False,
        **fields,
    )


@pytest.fixture
def public_client(db: None) -> Any:
    """The root fixture's registration (same id, same loopback redirect), without hashing the
    generated secret a public client never uses: one PBKDF2 round less per test."""
    return _client("Test MCP client", "test-mcp-client", LOOPBACK_REDIRECT)


@pytest.fixture
def second_client(db: None) -> Any:
    """Another public client with the same loopback redirect as `public_client`."""
    return _client("Second MCP client", "second-mcp-client", LOOPBACK_REDIRECT)


@pytest.fixture
def https_client(db: None) -> Any:
    """A public client whose only redirect is https on a real host."""
    return _client("Hosted MCP client", "hosted-mcp-client", HTTPS_REDIRECT)


@pytest.fixture
def new_public_client(db: None) -> Callable[..., Any]:
    return _client


@pytest.fixture
def unchanged() -> Callable[[], AbstractContextManager[None]]:
    """`with unchanged(): ...` fails if the block created or changed any token, code, consent or
    login session."""

    @contextmanager
    def guard() -> Iterator[None]:
        before = state_of_grants()
        yield
        after = state_of_grants()
        assert after == before, f"rows changed: {_diff(before, after)}"

    return guard


def _diff(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> dict[str, Any]:
    return {k: {"before": before[k], "after": after[k]} for k in before if before[k] != after[k]}


@dataclass
class Flow:
    """alice, logged in through the sandbox IdP, authorizing `client` at the server under test."""

    server_url: str
    browser: ConsentBrowser
    client: Any

    def url(self, pkce: Pkce | None = None, **params: Any) -> str:
        params.setdefault("client_id", self.client.client_id)
        return authorize_url(self.server_url, pkce=pkce, **params)

    def code(self, **params: Any) -> tuple[str, Pkce]:
        """A fresh code (approving the consent page if it is shown) and its PKCE pair."""
        pkce = Pkce.new()
        redirect_uri = params.get("redirect_uri", LOOPBACK_REDIRECT)
        result = self.browser.code(self.url(pkce, **params), redirect_uri=redirect_uri)
        assert "code" in result, result
        return result["code"], pkce

    def tokens(self, **params: Any) -> dict[str, Any]:
        code, pkce = self.code(**params)
        response = redeem(
            self.server_url,
            code,
            pkce,
            client_id=params.get("client_id", self.client.client_id),
            redirect_uri=params.get("redirect_uri", LOOPBACK_REDIRECT),
        )
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def flow(server_url: str, okta_org: str, public_client: Any, demo_policy: None, browser: ConsentBrowser) -> Flow:
    return Flow(server_url, browser, public_client)
