"""A replica outlives its database connections: after PostgreSQL drops them (a restart, a
failover, an idle-connection reaper), the next /mcp request reconnects instead of failing for
the rest of the process's life. /mcp runs outside Django's request cycle, so the gate does the
connection housekeeping that Django does for its own views."""

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


def test_mcp_recovers_after_the_database_drops_its_connections(server_url: str) -> None:
    require(
        settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql",
        "needs PostgreSQL: run with DATABASE_URL=postgres://... (make test-pg)",
    )
    assert _probe(server_url).status_code == 401

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
