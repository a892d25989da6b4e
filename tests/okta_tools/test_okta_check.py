"""`manage.py okta_check` against the sandbox Okta API: a working SSWS token (every read probed),
a bad one (a clear error and a non-zero exit, from a real process), and an OAuth service app's
scopes compared without connecting."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import ROOT
from tools.okta import okta_client_reset
from tools.registry import REGISTRY


@pytest.fixture
def fresh_client(settings: Any) -> Iterator[Any]:
    okta_client_reset()
    yield settings
    okta_client_reset()


def _lines(output: str) -> dict[str, str]:
    tools = output.split("Tools:\n", 1)[1].splitlines()
    return {line.split()[0]: line for line in tools if line.startswith("  ")}


def test_ssws_token_every_read_probed(okta_org: str, fresh_client: Any) -> None:
    out = io.StringIO()
    call_command("okta_check", stdout=out)
    text = out.getvalue()
    assert "(SSWS API token)" in text and "Connection: ok" in text
    lines = _lines(text)
    assert set(lines) == set(REGISTRY)
    for name, spec in REGISTRY.items():
        if spec.access == "write":
            assert " not probed " in lines[name] and "[okta." in lines[name], lines[name]
        else:
            assert " ok " in lines[name], lines[name]
    assert "[okta.users.read okta.logs.read]" in lines["user_sign_in_failures"]
    assert "45 tools: 37 ok, 8 not probed, 0 missing scope, 0 failing" in text


def test_a_scope_that_fails_is_reported(okta_org: str, fresh_client: Any) -> None:
    import httpx2 as httpx

    httpx.post(okta_org + "/__sandbox/faults", json={"path_prefix": "/api/v1/zones", "status": 503, "count": 1}, timeout=10)
    out = io.StringIO()
    with pytest.raises(CommandError, match="2 tool\\(s\\) cannot work with this credential: get_network_zone, list_network_zones"):
        call_command("okta_check", stdout=out)
    assert "E0000009" in _lines(out.getvalue())["list_network_zones"]


def test_bad_credential_is_a_clear_error_and_nonzero_exit(okta_org: str) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "OKTA_API_TOKEN": "not-the-token"}
    run = subprocess.run(
        [sys.executable, "manage.py", "okta_check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "CommandError: Okta refused the configured credential (SSWS API token): Invalid token provided" in run.stderr
    assert "E0000011" in run.stderr and "Traceback" not in run.stderr and run.stdout == ""


def test_service_app_scopes_compared_without_connecting(fresh_client: Any) -> None:
    fresh_client.OKTA_API_TOKEN = ""
    fresh_client.OKTA_SERVICE_CLIENT_ID = "0oa-service"
    fresh_client.OKTA_PRIVATE_KEY = "unused without a connection"
    fresh_client.OKTA_API_SCOPES = ["okta.users.manage", "okta.groups.read", "okta.logs.read"]
    out = io.StringIO()
    with pytest.raises(CommandError, match="tool\\(s\\) cannot work"):
        call_command("okta_check", "--no-connect", stdout=out)
    lines = _lines(out.getvalue())
    assert "(OAuth service app (PrivateKey))" in out.getvalue() and "not tried" in out.getvalue()
    # .manage covers .read; what is not granted is named.
    assert " ok " in lines["get_user"] and " ok " in lines["suspend_user"] and " ok " in lines["user_sign_in_failures"]
    assert " ok " in lines["list_user_groups"] and " ok " in lines["whoami"]
    assert "missing scope" in lines["list_apps"] and "not granted: okta.apps.read" in lines["list_apps"]
    assert "not granted: okta.groups.manage" in lines["add_user_to_group"]
