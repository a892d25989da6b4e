"""A replica outlives its database connections: after PostgreSQL drops them (a restart, a
failover, an idle-connection reaper), the next /mcp request reconnects instead of failing for
the rest of the process's life. /mcp runs outside Django's request cycle: the gate does the
connection housekeeping that Django does for its own views, and the audit writer, which keeps its
connection between requests, retries a batch once on a new one."""

from __future__ import annotations

import httpx2 as httpx
import pytest
from django.conf import settings
from django.db import connection

from tests.deploy.conftest import require

pytestmark = pytest.mark.django_db(transaction=True)


def _probe(server_url: str) -> httpx.Response:
    # An unknown bearer token: the gate looks it up in the database and answers 401.
    return httpx.post(
        server_url + "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": "Bearer no-such-token-0123456789"},
        timeout=10,
    )


def _valid_token() -> str:
    """A user in the admin role with an active consent for a registered client, and an access token
    for our resource: what the real flow leaves in the database."""
    from datetime import timedelta

    from accounts.models import User
    from audit.services import RequestMeta
    from consent.services import client_register, consent_grant
    from tests.mcp.conftest import LOOPBACK_REDIRECT, make_access_token
    from tools.services import policy_seed_demo

    policy_seed_demo()
    meta = RequestMeta.for_command("tests")
    app, _ = client_register(
        name="Failover client", client_id="failover-client", redirect_uris=[LOOPBACK_REDIRECT],
        confidential=False, actor=None, meta=meta,
    )  # fmt: skip
    user = User.objects.create(username="okta:00ufailover", okta_sub="00ufailover", okta_groups=["Identity Admins"])
    consent_grant(
        user=user, application=app, scopes=frozenset({"mcp.read"}), tools=["whoami"],
        redirect_uri=LOOPBACK_REDIRECT, meta=meta,
    )  # fmt: skip
    return make_access_token(
        user=user, application=app, scope="mcp.read", resource=[settings.MCP_RESOURCE], expires_in=timedelta(hours=1)
    )


def _tools_list(server_url: str, token: str) -> httpx.Response:
    from tests.mcp.conftest import rpc_request

    return rpc_request(server_url, "tools/list", token=token)


def test_mcp_recovers_after_the_database_drops_its_connections(server_url: str) -> None:
    from audit.models import AuditEvent

    require(
        settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql",
        "needs PostgreSQL: run with DATABASE_URL=postgres://... (make test-pg)",
    )
    token = _valid_token()
    assert _probe(server_url).status_code == 401
    # A tools/list leaves an audit row: the writer now holds a connection.
    assert _tools_list(server_url, token).status_code == 200

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        (terminated,) = cursor.fetchone()
    assert terminated >= 1

    answers = [_probe(server_url) for _ in range(3)]
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert all('error="invalid_token"' in a.headers["www-authenticate"] for a in answers)
    before = AuditEvent.objects.filter(event_type="tools.listed").count()
    listed = [_tools_list(server_url, token) for _ in range(3)]
    assert [r.status_code for r in listed] == [200, 200, 200], listed[0].text
    assert AuditEvent.objects.filter(event_type="tools.listed").count() == before + 3
