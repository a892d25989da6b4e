"""The server remembers the tokens it verified (consent.principal_cache) and must forget them at the
next request after any change that could alter the answer, whichever process made the change.
These tests change things from this process (the services, Django admin, DOT's revocation endpoint)
while the server under test runs in another, sharing PostgreSQL and Redis as replicas do.

They need Redis (the cache is off without it): skipped without REDIS_URL, failed under CI=true."""

from __future__ import annotations

import os
import re
import time
from datetime import timedelta

import httpx2 as httpx
import pytest
from django.conf import settings
from django.utils import timezone

from consent.principal_cache import EPOCH_KEY, PrincipalCache
from consent.tokens import Principal
from tests.mcp.conftest import (
    MODERN,
    REVOCABLE_CLIENT_ID,
    access_token_row,
    assert_challenge,
    rpc_body,
    rpc_request,
)
from tests.tools.conftest import MODEL_BACKEND, admin_form_data
from tools.selectors import EffectiveAccess


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    if not settings.REDIS_URL:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the principal cache tests: REDIS_URL is not set")
        pytest.skip("the principal cache needs Redis: run with REDIS_URL set (make test-pg)")


def _lookups(world) -> dict[str, float]:
    text = httpx.get(world.url + "/metrics", timeout=10).text
    found = re.findall(r'^okta_mcp_principal_cache_lookups_total\{result="(\w+)"\} ([0-9.e+]+)$', text, re.M)
    return {result: float(value) for result, value in found}


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after) if after.get(k, 0) != before.get(k, 0)}


def _tools(world, token: str) -> httpx.Response:
    return rpc_request(world.url, "tools/list", token=token, mode=MODERN)


def _names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(t["name"] for t in rpc_body(response)["result"]["tools"])


def test_a_verified_token_is_reused_until_something_changes(world, db_access) -> None:
    from audit.services import RequestMeta
    from consent.services import consent_revoke

    raw = world.fresh_token("alice")["access_token"]
    before = _lookups(world)
    assert _tools(world, raw).status_code == 200
    assert _tools(world, raw).status_code == 200
    assert _tools(world, raw).status_code == 200
    # One database verification, then two answers from memory.
    assert _delta(before, _lookups(world)) == {"database": 1, "cache": 2}

    row = access_token_row(raw)
    consent_revoke(
        user=row.user, application=row.application, reason="test", actor=None, meta=RequestMeta.for_command("test")
    )
    assert_challenge(_tools(world, raw), 401, "invalid_token")


def test_token_revoked_at_the_endpoint_is_refused_at_the_next_request(world, db_access) -> None:
    raw = world.fresh_token("bob")["access_token"]
    assert _tools(world, raw).status_code == 200
    assert _tools(world, raw).status_code == 200
    revoked = httpx.post(world.url + "/revoke", data={"token": raw, "client_id": REVOCABLE_CLIENT_ID}, timeout=10)
    assert revoked.status_code == 200
    assert_challenge(_tools(world, raw), 401, "invalid_token")


def test_policy_change_applies_to_the_next_request(world, db_access) -> None:
    from audit.services import RequestMeta
    from tools.models import Role
    from tools.services import role_save

    raw = world.fresh_token("bob")["access_token"]
    first = _names(_tools(world, raw))
    assert "get_user" in first
    assert "get_user" in _names(_tools(world, raw))  # now remembered
    role = Role.objects.get(name="viewer")
    role.tools = [t for t in role.tools if t != "get_user"]
    role_save(role=role, actor=None, meta=RequestMeta.for_command("test"))
    try:
        assert _names(_tools(world, raw)) == sorted(set(first) - {"get_user"})
    finally:
        role.tools = sorted({*role.tools, "get_user"})
        role_save(role=role, actor=None, meta=RequestMeta.for_command("test"))
    assert "get_user" in _names(_tools(world, raw))


def test_user_disabled_in_admin_is_refused_at_the_next_request(world, db_access) -> None:
    from django.test import Client

    from accounts.models import User

    raw = world.fresh_token("carol")["access_token"]
    assert _tools(world, raw).status_code == 200
    assert _tools(world, raw).status_code == 200
    carol = access_token_row(raw).user
    admin = User(username=f"cache-admin-{time.time_ns()}", is_staff=True, is_superuser=True)
    admin.set_unusable_password()
    admin.save()
    client = Client()
    client.force_login(admin, backend=MODEL_BACKEND)
    page = client.get(f"/admin/accounts/user/{carol.pk}/change/")
    assert page.status_code == 200
    data = admin_form_data(page.content.decode(), "user_form")
    data.pop("is_active", None)  # an unticked box is not sent
    response = client.post(f"/admin/accounts/user/{carol.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    carol.refresh_from_db()
    try:
        assert not carol.is_active
        assert_challenge(_tools(world, raw), 401, "invalid_token")
    finally:
        User.objects.filter(pk=carol.pk).update(is_active=True)


def test_lost_epoch_means_verifying_against_the_database(world, db_access) -> None:
    """Redis restarted empty (or the key was evicted): nothing remembered may be trusted."""
    import redis

    raw = world.fresh_token("alice")["access_token"]
    assert _tools(world, raw).status_code == 200
    redis.Redis.from_url(settings.REDIS_URL).delete(EPOCH_KEY)
    before = _lookups(world)
    assert _tools(world, raw).status_code == 200
    assert _delta(before, _lookups(world)) == {"database": 1}
    assert redis.Redis.from_url(settings.REDIS_URL).get(EPOCH_KEY)  # a new epoch was started


def _principal(*, token_in: timedelta, consent_in: timedelta) -> Principal:
    now = timezone.now()
    return Principal(
        user_id=1,
        okta_sub="00u1",
        login="alice@acme.example",
        client_id="c",
        client_name="C",
        scopes=frozenset({"mcp.read"}),
        token_expires=now + token_in,
        consent_id=1,
        consent_expires=now + consent_in,
        groups=(),
        group_ids=(),
    )


def test_an_entry_ends_with_its_token_its_consent_and_its_epoch() -> None:
    cache = PrincipalCache()
    access = EffectiveAccess(roles=(), granted=frozenset(), scopes=frozenset({"mcp.read"}))
    cache.put("token", b"e1", _principal(token_in=timedelta(seconds=1), consent_in=timedelta(hours=1)), access)
    cache.put("consent", b"e1", _principal(token_in=timedelta(hours=1), consent_in=timedelta(seconds=1)), access)
    cache.put("long", b"e1", _principal(token_in=timedelta(hours=1), consent_in=timedelta(hours=1)), access)
    assert cache.get("token", b"e1") and cache.get("consent", b"e1") and cache.get("long", b"e1")
    assert cache.get("long", b"e2") is None  # another epoch: gone for good
    assert cache.get("long", b"e1") is None
    assert cache.get("token", None) is None  # epoch unknown: never reused
    time.sleep(1.1)
    assert cache.get("token", b"e1") is None and cache.get("consent", b"e1") is None


def _gets() -> int:
    import redis

    stats = redis.Redis.from_url(settings.REDIS_URL).info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


def test_concurrent_requests_share_one_epoch_read() -> None:
    import asyncio

    async def scenario() -> tuple[int, set[bytes | None]]:
        cache = PrincipalCache()
        await cache.epoch()  # connects, and starts an epoch if there is none
        before = _gets()
        values = await asyncio.gather(*(cache.epoch() for _ in range(20)))
        return _gets() - before, set(values)

    reads, values = asyncio.run(scenario())
    assert reads == 1
    assert len(values) == 1 and None not in values


def test_an_epoch_read_sent_before_a_request_arrived_is_not_its_answer() -> None:
    """A change committed after one request's read was sent, but before a second request asked,
    must be seen by the second: it waits for the next read instead of sharing the one in flight."""
    import asyncio

    import redis

    from consent.principal_cache import _replace_epoch

    async def scenario() -> tuple[bytes | None, bytes | None, bytes, bytes]:
        cache = PrincipalCache()
        old = await cache.epoch()
        assert old is not None
        before = _gets()
        first = asyncio.create_task(cache.epoch())
        # Run the event loop until Redis has answered the first request's read (its answer then
        # waits in the socket); only then change the epoch, from "another process".
        while _gets() == before:
            await asyncio.sleep(0)
        _replace_epoch()
        new = redis.Redis.from_url(settings.REDIS_URL).get(EPOCH_KEY)
        assert new is not None and new != old
        second = await cache.epoch()
        return await first, second, old, new

    first, second, old, new = asyncio.run(scenario())
    assert first == old
    assert second == new


def test_a_request_cancelled_while_waiting_for_the_epoch_leaves_the_others_their_answer() -> None:
    import asyncio

    async def scenario() -> list[bytes | None]:
        cache = PrincipalCache()
        await cache.epoch()
        waiting = [asyncio.create_task(cache.epoch()) for _ in range(5)]
        await asyncio.sleep(0)
        waiting[0].cancel()
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        return [r for r in results[1:] if not isinstance(r, BaseException)]

    values = asyncio.run(scenario())
    assert len(values) == 4 and len(set(values)) == 1 and values[0] is not None
