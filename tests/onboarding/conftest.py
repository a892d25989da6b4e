"""Fixtures for client onboarding: the loopback https server publishing metadata documents, and a
second daphne of this project started the way an operator enables onboarding (CIMD_ENABLED=true,
DCR_ENABLED=true) with a sandbox IdP of its own (its login callback is on that server's port). It
shares the test database with the test process and the main server. Its only difference from
production configuration is the metadata fetcher's resolver and trust store (tests/onboarding/fetcher.py)."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from tests import settings as test_settings
from tests.conftest import ROOT, _server_database_url, _start, _stop, _wait_http
from tests.onboarding.docserver import DocServer, TestCA, make_ca, start_doc_server
from tests.onboarding.fetcher import TEST_HOST


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def test_ca() -> Iterator[TestCA]:
    directory = Path(tempfile.mkdtemp(prefix="okta-mcp-cimd-"))
    yield make_ca(directory, TEST_HOST)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def doc_server(test_ca: TestCA) -> Iterator[DocServer]:
    state, server = start_doc_server(test_ca, TEST_HOST)
    yield state
    server.shutdown()
    server.server_close()


@dataclass(frozen=True)
class Onboarding:
    url: str
    idp_url: str


@pytest.fixture(scope="session")
def onboarding_server(
    django_db_setup: None, django_db_blocker: object, okta_api_url: str, test_ca: TestCA, doc_server: DocServer
) -> Iterator[Onboarding]:
    port, idp_port = _free_port(), _free_port()
    url = f"http://127.0.0.1:{port}"
    processes = []
    try:
        processes.append(
            _start(
                "onboarding-idp",
                ["node", "server.mjs"],
                {
                    **os.environ,
                    "IDP_PORT": str(idp_port),
                    "IDP_CLIENT_ID": settings.OIDC_RP_CLIENT_ID,
                    "IDP_CLIENT_SECRET": settings.OIDC_RP_CLIENT_SECRET,
                    "IDP_REDIRECT_URIS": url + "/oidc/callback/",
                    "OKTA_API_URL": okta_api_url,
                    "OKTA_API_TOKEN": settings.OKTA_API_TOKEN,
                },
                cwd=ROOT / "sandbox" / "idp",
            )
        )
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.onboarding.server_settings",
            "DATABASE_URL": _server_database_url(),
            "OKTA_MCP_TEST_PORTS": f"{port},{idp_port},{test_settings.OKTA_API_PORT}",
            "CIMD_ENABLED": "true",
            "DCR_ENABLED": "true",
            "CIMD_ALLOWED_HOSTS": "",
            "CLIENT_APPROVAL_CONTACT": "security@acme.example",
            "ONBOARDING_CIMD_HOST": TEST_HOST,
            "ONBOARDING_CIMD_CA": str(test_ca.ca_file),
            "PYTHONUNBUFFERED": "1",
        }
        processes.append(
            _start(
                "onboarding-daphne",
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "okta_mcp.asgi:application"],
                env,
            )
        )
        _wait_http(f"http://127.0.0.1:{idp_port}/__health", processes[0], "onboarding IdP")
        _wait_http(url + "/healthz", processes[1], "onboarding daphne")
        yield Onboarding(url=url, idp_url=f"http://127.0.0.1:{idp_port}")
    finally:
        for proc in reversed(processes):
            _stop(proc)


@pytest.fixture
def security_admin(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser("secadmin", "secadmin@acme.example", None)


@pytest.fixture
def admin_http(security_admin: Any) -> Client:
    """A security admin signed in to Django admin (a break-glass superuser, ModelBackend)."""
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(security_admin, backend="django.contrib.auth.backends.ModelBackend")
    return client
