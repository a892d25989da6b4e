"""The conformance suite's authorization-server scenarios against our AS: RFC 8414 metadata and a
full authorization-code grant. The suite prints the authorization URL and waits on its own loopback
callback listener; the person at the browser (tests.clients.Browser) logs in at the sandbox IdP and
approves our consent page, and the redirect is then delivered to the suite's listener."""

from __future__ import annotations

import shutil
import subprocess
import time

import httpx2 as httpx
import pytest
from oauth2_provider.models import AccessToken, Application

from consent.models import Consent
from tests.clients import Browser
from tests.conformance.conftest import ARTIFACTS, NODE_DIR, node_env, node_tool
from tests.conformance.proxy import free_port
from tests.conformance.results import judge, load_baseline, load_checks

pytestmark = pytest.mark.django_db(transaction=True)


def _read_authorization_url(proc: subprocess.Popen[str], issuer: str, seen: list[str], timeout: float = 60) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith(issuer + "/authorize?"):
            return line.strip()
    raise AssertionError("the suite printed no authorization URL:\n" + "".join(seen))


def test_authorization_server_conformance(server_url: str, okta_org: str, demo_policy: None) -> None:
    conformance = node_tool("conformance")
    port = free_port()
    callback = f"http://127.0.0.1:{port}/callback"
    client = Application.objects.create(
        name="Conformance suite",
        client_id="mcp-conformance",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=callback,
        algorithm="",
    )
    out = ARTIFACTS / "conformance" / "authorization"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    resource = server_url + "/mcp"
    proc = subprocess.Popen(
        [str(conformance), "authorization", "--url", server_url, "--client-id", client.client_id,
         "--resource", resource, "--port", str(port), "-o", str(out)],
        cwd=NODE_DIR, env=node_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    seen: list[str] = []
    browser = Browser("bob")
    try:
        url = _read_authorization_url(proc, server_url, seen)
        final = browser.authorize(url, redirect_uri=callback)
        delivered = httpx.get(final, timeout=30)  # the browser lands on the suite's callback listener
        assert delivered.status_code == 200, delivered.text
        rest, _ = proc.communicate(timeout=120)
    finally:
        browser.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(seen) + rest
    (out / "output.txt").write_text(output)

    ran = load_checks(out)
    assert set(ran) == {"authorization-server-metadata-endpoint", "authorization-code-grant"}, output
    problems = judge(ran, load_baseline("authorization"))
    assert not problems, "\n".join(problems) + "\n" + output
    grant = {c.id: c.status for c in ran["authorization-code-grant"]}
    assert grant == {"authorization-code-grant": "SUCCESS"}, output

    # The grant went through our consent page (it named the suite's client) and bound the token.
    assert "Conformance suite" in browser.consent_pages[0] and "127.0.0.1" in browser.consent_pages[0]
    consent = Consent.objects.get(user__okta_login="bob@acme.example", application=client)
    assert consent.status == "active"
    token = AccessToken.objects.get(application=client, user=consent.user)
    assert token.resource == [resource] and token.scope == "mcp.read"
