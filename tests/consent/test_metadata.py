"""Requirements 10 and 11 (and the AS side of 1): the RFC 8414 authorization-server metadata and
the RFC 9728 protected-resource metadata name one issuer, PUBLIC_URL, byte for byte, whatever the
request's Host header says, and advertise only what the server accepts."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx2 as httpx
import pytest
from django.conf import settings

from tests.consent.flows import http

AS_METADATA = "/.well-known/oauth-authorization-server"
RS_METADATA_PATHS = ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]


def _get(server_url: str, path: str, **headers: str) -> httpx.Response:
    return http().get(server_url + path, headers=headers)


def test_issuer_is_the_public_origin(server_url: str) -> None:
    response = _get(server_url, AS_METADATA)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    meta = response.json()
    assert meta["issuer"] == settings.PUBLIC_URL == server_url
    assert not meta["issuer"].endswith("/") and urlsplit(meta["issuer"]).path == ""
    assert meta["authorization_endpoint"] == server_url + "/authorize"
    assert meta["token_endpoint"] == server_url + "/token"
    assert meta["revocation_endpoint"] == server_url + "/revoke"


def test_metadata_advertises_only_what_is_accepted(server_url: str) -> None:
    meta = _get(server_url, AS_METADATA).json()
    assert meta["response_types_supported"] == ["code"]
    assert meta["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert "none" in meta["token_endpoint_auth_methods_supported"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["scopes_supported"] == ["mcp.read", "mcp.write"]
    # Registration and client ID metadata documents are off here: neither is advertised as on.
    assert "registration_endpoint" not in meta
    assert "client_id_metadata_document_supported" not in meta  # absent while CIMD is off (requirement 11)
    # Nothing here needs OpenID Connect discovery or an introspection endpoint.
    assert "jwks_uri" not in meta and "introspection_endpoint" not in meta


@pytest.mark.parametrize("path", RS_METADATA_PATHS)
def test_resource_metadata_names_the_issuer(server_url: str, path: str) -> None:
    response = _get(server_url, path)
    assert response.status_code == 200
    meta = response.json()
    issuer = _get(server_url, AS_METADATA).json()["issuer"]
    assert meta["resource"] == server_url + "/mcp"
    assert meta["authorization_servers"] == [issuer]
    assert meta["scopes_supported"] == ["mcp.read", "mcp.write"]
    assert "offline_access" not in meta["scopes_supported"]
    assert meta["bearer_methods_supported"] == ["header"]


def test_challenge_points_at_the_same_resource_metadata(server_url: str) -> None:
    challenge = http().post(server_url + "/mcp", json={}).headers["www-authenticate"]
    assert f'resource_metadata="{server_url}/.well-known/oauth-protected-resource/mcp"' in challenge


@pytest.mark.parametrize("path", [AS_METADATA, *RS_METADATA_PATHS])
def test_another_allowed_host_does_not_change_the_issuer(server_url: str, path: str) -> None:
    # Django matches ALLOWED_HOSTS without the port, so "127.0.0.1:<other port>" is let through;
    # proxies' forwarding headers are not trusted either. Neither may leak into the metadata.
    host = urlsplit(server_url).hostname
    direct = _get(server_url, path).json()
    forwarded = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    response = _get(server_url, path, Host=f"{host}:1", **forwarded)
    assert response.status_code == 200
    assert response.json() == direct
    assert ":1/" not in response.text and "evil.example" not in response.text and "https:" not in response.text


@pytest.mark.parametrize("path", [AS_METADATA, *RS_METADATA_PATHS])
def test_foreign_host_is_refused(server_url: str, path: str) -> None:
    response = _get(server_url, path, Host="evil.example")
    assert response.status_code == 400
    assert "evil.example" not in response.text
