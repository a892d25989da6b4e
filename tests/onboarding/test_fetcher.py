"""Fetching client ID metadata documents safely. The production fetcher, constructed exactly as
django-oauth-toolkit constructs it, refuses every target that is not a public address (IP literals
and names resolving to loopback, private, link-local, CGNAT and IPv4-in-IPv6 forms) before any
connection; the fetch logic itself (no redirects, size and time limits, TLS verified, JSON only,
cache lifetime from the headers, redirect URI rules) is exercised against a real https server through
the test seam, which differs from production only in how the one test host name resolves and which
CA is trusted."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from oauth2_provider import cimd as dot_cimd
from oauth2_provider.cimd import CIMDError
from oauth2_provider.models import Application
from oauth2_provider.settings import oauth2_settings
from oauthlib.common import Request

from consent.cimd import AuthorizationRequestPermission, MetadataFetcher
from consent.models import ClientApproval
from tests.clients import LOOPBACK_REDIRECT
from tests.onboarding.docserver import Answer, DocServer, TestCA, client_document
from tests.onboarding.fetcher import TEST_HOST, TestHostFetcher, host_resolver, seam_fetcher


def _path() -> str:
    return f"/clients/{uuid.uuid4().hex}.json"


def test_production_fetcher_is_the_configured_one() -> None:
    assert oauth2_settings.CIMD_METADATA_FETCHER is MetadataFetcher
    fetcher = oauth2_settings.CIMD_METADATA_FETCHER()
    # Constructed without arguments, it resolves through DOT's validating resolver and the system
    # trust store: nothing of the test seam.
    assert fetcher._resolve is dot_cimd._resolve_and_validate
    assert fetcher._ssl_context is None
    assert settings.OAUTH2_PROVIDER["CIMD_REGISTRATION_PERMISSION_CLASSES"] == (
        "consent.cimd.AuthorizationRequestPermission",
    )


@pytest.mark.parametrize(
    "target",
    [
        "https://127.0.0.1:{port}/client.json",
        "https://localhost:{port}/client.json",  # a name that resolves to loopback
        "https://[::1]:{port}/client.json",
        "https://[::ffff:127.0.0.1]:{port}/client.json",  # IPv4-mapped loopback
        "https://[64:ff9b::7f00:1]:{port}/client.json",  # NAT64 loopback
        "https://127.1.2.3:{port}/client.json",
        "https://0.0.0.0:{port}/client.json",
        "https://10.1.2.3/client.json",
        "https://172.16.5.4/client.json",
        "https://192.168.1.10/client.json",
        "https://169.254.169.254/latest/meta-data/client.json",  # link-local: cloud metadata
        "https://[fe80::1]/client.json",
        "https://100.64.0.1/client.json",  # carrier-grade NAT
        "https://[fd00::1]/client.json",  # unique local
        "https://clients.onboarding.test:{port}/client.json",  # the test host: no real DNS name
        "http://203.0.113.9/client.json",  # not https
        "https://user:pw@example.com/client.json",
    ],
)
def test_production_fetcher_refuses_unsafe_targets(doc_server: DocServer, target: str) -> None:
    path = "/client.json"
    doc_server.publish(path, client_document("x", [LOOPBACK_REDIRECT]))
    before = doc_server.requests_for(path)
    with pytest.raises(CIMDError):
        MetadataFetcher().fetch(target.format(port=doc_server.port))
    assert doc_server.requests_for(path) == before, "the refused target was contacted"


def test_seam_fetches_a_valid_document(doc_server: DocServer, test_ca: TestCA) -> None:
    path = _path()
    url = doc_server.publish(
        path, client_document("", [LOOPBACK_REDIRECT]) | {"client_id": ""}, headers={"Cache-Control": "max-age=600"}
    )
    document, max_age = seam_fetcher(str(test_ca.ca_file)).fetch(url)
    assert document["redirect_uris"] == [LOOPBACK_REDIRECT] and max_age == 600
    assert doc_server.requests_for(path) == 1


def test_the_seam_still_refuses_every_other_internal_host(doc_server: DocServer, test_ca: TestCA) -> None:
    fetcher = seam_fetcher(str(test_ca.ca_file))
    for target in (f"https://127.0.0.1:{doc_server.port}/x.json", f"https://localhost:{doc_server.port}/x.json"):
        with pytest.raises(CIMDError, match="non-public"):
            fetcher.fetch(target)


def test_certificate_is_verified(doc_server: DocServer) -> None:
    """The same server, reached through the seam's resolver but with the system trust store: the
    test CA is unknown there, so the fetch fails on TLS."""
    path = _path()
    url = doc_server.publish(path, client_document("", [LOOPBACK_REDIRECT]))
    with pytest.raises(CIMDError, match="could not fetch"):
        MetadataFetcher(resolve=host_resolver(TEST_HOST)).fetch(url)


@pytest.mark.parametrize(
    "to",
    [
        "https://127.0.0.1:{port}/internal.json",
        "https://169.254.169.254/latest",
        "https://clients.onboarding.test:{port}/internal.json",
    ],
)
def test_redirects_are_not_followed(doc_server: DocServer, test_ca: TestCA, to: str) -> None:
    path = _path()
    doc_server.publish("/internal.json", client_document("", [LOOPBACK_REDIRECT]))
    before = doc_server.requests_for("/internal.json")
    url = doc_server.answer(path, Answer(status=302, headers={"Location": to.format(port=doc_server.port)}))
    with pytest.raises(CIMDError, match="redirect"):
        seam_fetcher(str(test_ca.ca_file)).fetch(url)
    assert doc_server.requests_for(path) == 1
    assert doc_server.requests_for("/internal.json") == before


def test_oversized_document_is_refused(doc_server: DocServer, test_ca: TestCA) -> None:
    path = _path()
    big = client_document("", [LOOPBACK_REDIRECT], padding="x" * (oauth2_settings.CIMD_MAX_DOCUMENT_SIZE + 1))
    url = doc_server.publish(path, big)
    with pytest.raises(CIMDError, match="maximum allowed size"):
        seam_fetcher(str(test_ca.ca_file)).fetch(url)


def test_slow_document_hits_the_deadline(doc_server: DocServer, test_ca: TestCA) -> None:
    path = _path()
    body = json.dumps(client_document("", [LOOPBACK_REDIRECT])).encode()
    url = doc_server.answer(path, Answer(body=body, headers={"Content-Type": "application/json"}, delay=4))
    with override_settings(OAUTH2_PROVIDER={**settings.OAUTH2_PROVIDER, "CIMD_FETCH_TIMEOUT_SECONDS": 1}):
        started = time.monotonic()
        with pytest.raises(CIMDError):
            seam_fetcher(str(test_ca.ca_file)).fetch(url)
        assert time.monotonic() - started < 3


def test_only_json_is_accepted(doc_server: DocServer, test_ca: TestCA) -> None:
    path = _path()
    body = json.dumps(client_document("", [LOOPBACK_REDIRECT])).encode()
    url = doc_server.answer(path, Answer(body=body, headers={"Content-Type": "text/html"}))
    with pytest.raises(CIMDError, match="not JSON"):
        seam_fetcher(str(test_ca.ca_file)).fetch(url)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Cache-Control": "max-age=900"}, 900),
        ({"Cache-Control": "no-store"}, 300),  # the floor: re-fetched soon
        ({"Cache-Control": "max-age=99999999"}, 86400),  # the ceiling
        ({"Date": "Mon, 02 Nov 2026 10:00:00 GMT", "Expires": "Mon, 02 Nov 2026 11:00:00 GMT"}, 3600),
        ({"Expires": "0"}, 300),  # unparsable Expires: stale
        ({}, 86400),
    ],
)
def test_cache_lifetime_follows_the_headers(
    doc_server: DocServer, test_ca: TestCA, headers: dict[str, str], expected: int
) -> None:
    path = _path()
    url = doc_server.publish(path, client_document("", [LOOPBACK_REDIRECT]), headers=headers)
    _, max_age = seam_fetcher(str(test_ca.ca_file)).fetch(url)
    assert max_age == expected


@pytest.mark.parametrize(
    "bad", ["http://app.example/callback", "com.example.app:/callback", "https://app.example/cb#frag", 7]
)
def test_document_redirect_uris_follow_the_redirect_rules(doc_server: DocServer, test_ca: TestCA, bad: Any) -> None:
    path = _path()
    url = doc_server.publish(path, client_document("", [LOOPBACK_REDIRECT, bad]))
    with pytest.raises(CIMDError, match="redirect URIs"):
        seam_fetcher(str(test_ca.ca_file)).fetch(url)


# --- DOT's resolution with these hooks ------------------------------------------------------------


@pytest.fixture
def cimd_on(test_ca: TestCA, monkeypatch: pytest.MonkeyPatch) -> Any:
    """CIMD enabled in this process with the seam fetcher (as the onboarding server runs it)."""
    monkeypatch.setenv("ONBOARDING_CIMD_CA", str(test_ca.ca_file))
    config = {
        **settings.OAUTH2_PROVIDER,
        "CIMD_ENABLED": True,
        "CIMD_METADATA_FETCHER": "tests.onboarding.fetcher.TestHostFetcher",
        "CIMD_FAILURE_BACKOFF_SECONDS": 0,
    }
    with override_settings(OAUTH2_PROVIDER=config):
        assert oauth2_settings.CIMD_METADATA_FETCHER is TestHostFetcher
        yield


def _authorization_request(client_id: str) -> Request:
    return Request(f"https://as.example/authorize?response_type=code&client_id={client_id}")


@pytest.mark.django_db
def test_document_must_name_its_own_url(cimd_on: None, doc_server: DocServer) -> None:
    path = _path()
    url = doc_server.publish(path, client_document("https://other.example/client.json", [LOOPBACK_REDIRECT]))
    assert dot_cimd.resolve_cimd_application(url, _authorization_request(url)) is None
    assert doc_server.requests_for(path) == 1
    assert not Application.objects.filter(client_id=url).exists()


@pytest.mark.django_db
def test_only_authorization_requests_fetch(cimd_on: None, doc_server: DocServer) -> None:
    """The token endpoint (no response_type, open to anyone) never makes the server fetch a URL."""
    path = _path()
    url = doc_server.publish(path, client_document("", [LOOPBACK_REDIRECT]))
    doc_server.publish(path, client_document(url, [LOOPBACK_REDIRECT]))
    token_request = Request(
        "https://as.example/token", http_method="POST", body=f"grant_type=authorization_code&client_id={url}"
    )
    assert dot_cimd.resolve_cimd_application(url, token_request) is None
    assert doc_server.requests_for(path) == 0
    application = dot_cimd.resolve_cimd_application(url, _authorization_request(url))
    assert application is not None and application.registration_source == "cimd"
    assert application.redirect_uris == LOOPBACK_REDIRECT and application.client_type == "public"
    assert doc_server.requests_for(path) == 1


@pytest.mark.django_db
def test_new_clients_are_not_fetched_while_too_many_wait(cimd_on: None, doc_server: DocServer) -> None:
    for i in range(2):
        app = Application.objects.create(
            client_id=f"waiting-{i}",
            name="w",
            client_type="public",
            authorization_grant_type="authorization-code",
            redirect_uris=LOOPBACK_REDIRECT,
            registration_source="dcr",
            algorithm="",
        )
        ClientApproval.objects.create(application=app, source="dcr", status="pending")
    path = _path()
    url = doc_server.publish(path, client_document("", [LOOPBACK_REDIRECT]))
    with override_settings(CLIENT_MAX_PENDING=2):
        assert not AuthorizationRequestPermission().has_permission(_authorization_request(url), url)
    with override_settings(CLIENT_MAX_PENDING=3):
        assert AuthorizationRequestPermission().has_permission(_authorization_request(url), url)
    assert doc_server.requests_for(path) == 0
