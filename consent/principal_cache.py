"""Bearer tokens this process has verified, remembered so that the next request with the same token
costs one Redis round trip instead of the database queries of `principal_for_token` and the policy.

What keeps it correct is one shared value in Redis, the authorization epoch. Every change that can
make a remembered answer wrong calls `authz_changed` (a token deleted or rotated, a consent revoked,
a user's status or groups changed, a role or mapping changed, a client changed or deleted), which
replaces the epoch with a new random value once the change has committed. An entry is used only
while the epoch read at the start of the request is the one read before the entry was verified, so
a revocation on any replica takes effect on every replica at its next request. Entries also end
with the token, with the consent, and after `MCP_PRINCIPAL_CACHE_SECONDS` at most.

Concurrent requests share epoch reads, but never one that was sent before they arrived (it could
miss a change committed just before them): a request joins the next read, which is sent as soon as
the one in flight has answered. Under load that is one GET per turn of the event loop instead of
one per request, and no request waits for more than two round trips.

When Redis cannot be read, nothing is reused: every request is verified against the database. When
the epoch cannot be replaced after a change, the failure is logged and counted; remembered answers
then end within `MCP_PRINCIPAL_CACHE_SECONDS`. Without Redis (the embedded SQLite default) the cache
is off."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from consent.tokens import Principal
from okta_mcp import metrics
from tools.selectors import EffectiveAccess

logger = logging.getLogger("okta_mcp.mcp")

EPOCH_KEY = "okta-mcp:authz-epoch"
MAX_ENTRIES = 10_000


class _EpochReads:
    """The requests of one event loop waiting for the next epoch read, and whether a read is running."""

    def __init__(self) -> None:
        self.waiting: list[asyncio.Future[bytes | None]] = []
        self.in_flight: list[asyncio.Future[bytes | None]] = []
        self.task: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class _Entry:
    epoch: bytes
    principal: Principal
    access: EffectiveAccess
    valid_until: float


class PrincipalCache:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._reads = _EpochReads()

    @property
    def enabled(self) -> bool:
        return settings.MCP_PRINCIPAL_CACHE_SECONDS > 0 and bool(settings.REDIS_URL)

    def _redis(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            import redis.asyncio

            self._client = redis.asyncio.Redis.from_url(
                settings.REDIS_URL, socket_timeout=1.0, socket_connect_timeout=1.0
            )
            self._client_loop = loop
            self._reads = _EpochReads()
        return self._client

    async def epoch(self) -> bytes | None:
        """The current epoch, read after this call began; None when it cannot be known (then
        nothing may be reused)."""
        if not self.enabled:
            return None
        self._redis()  # binds the client and the waiting list to this event loop
        reads = self._reads
        waiter: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        reads.waiting.append(waiter)
        if reads.task is None:
            reads.task = asyncio.get_running_loop().create_task(self._read_for_waiting(reads))
        # A request cancelled while it waits cancels only its own future, not the shared read.
        return await waiter

    async def _read_for_waiting(self, reads: _EpochReads) -> None:
        try:
            while reads.waiting:
                # Everyone waiting now arrived before this read is sent.
                reads.in_flight, reads.waiting = reads.waiting, []
                value = await self._read_epoch()
                self._settle(reads.in_flight, value)
                reads.in_flight = []
        finally:
            reads.task = None
            # Anyone left (only when this task itself was cancelled) is verified against the database.
            self._settle(reads.in_flight + reads.waiting, None)
            reads.in_flight, reads.waiting = [], []

    @staticmethod
    def _settle(waiters: list[asyncio.Future[bytes | None]], value: bytes | None) -> None:
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(value)

    async def _read_epoch(self) -> bytes | None:
        try:
            client = self._redis()
            value = await client.get(EPOCH_KEY)
            if value is None:
                # First use, or Redis lost its data: start a new epoch. A missing value never
                # counts as an epoch, so entries from before the loss cannot match it.
                await client.set(EPOCH_KEY, secrets.token_hex(16), nx=True)
                value = await client.get(EPOCH_KEY)
        except Exception:  # noqa: BLE001 - any Redis failure means: verify against the database
            logger.warning("principal cache: Redis unavailable, verifying against the database")
            self._entries.clear()
            return None
        return value

    def get(self, token_key: str, epoch: bytes | None) -> _Entry | None:
        if epoch is None:
            return None
        entry = self._entries.get(token_key)
        if entry is None:
            return None
        if entry.epoch != epoch or entry.valid_until <= time.time():
            self._entries.pop(token_key, None)
            return None
        return entry

    def put(self, token_key: str, epoch: bytes | None, principal: Principal, access: EffectiveAccess) -> None:
        if epoch is None:
            return
        valid_until = min(
            principal.token_expires.timestamp(),
            principal.consent_expires.timestamp(),
            time.time() + settings.MCP_PRINCIPAL_CACHE_SECONDS,
        )
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.pop(next(iter(self._entries)))
        self._entries[token_key] = _Entry(epoch, principal, access, valid_until)


principal_cache = PrincipalCache()

_sync_client: Any = None


def _replace_epoch() -> None:
    global _sync_client
    try:
        if _sync_client is None:
            import redis

            _sync_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2.0, socket_connect_timeout=2.0)
        _sync_client.set(EPOCH_KEY, secrets.token_hex(16))
    except Exception:  # noqa: BLE001 - the change itself has committed; say loudly that caches lag
        metrics.principal_cache_invalidation_failed()
        logger.error(
            "principal cache: could not replace the authorization epoch in Redis; answers remembered "
            "by replicas end within %s s",
            settings.MCP_PRINCIPAL_CACHE_SECONDS,
        )


def authz_changed() -> None:
    """Call after (or inside the transaction of) any change that can alter whether a token is
    accepted or what it may do. Takes effect when the transaction commits."""
    if not settings.REDIS_URL:
        return
    connection = transaction.get_connection()
    # One replacement per transaction is enough (clear_expired can delete thousands of tokens).
    if connection.in_atomic_block and any(entry[1] is _replace_epoch for entry in connection.run_on_commit):
        return
    transaction.on_commit(_replace_epoch)


def _model_changed(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    if not created:
        authz_changed()


def authz_watch_oauth_models() -> None:
    """django-oauth-toolkit deletes and rewrites tokens and clients itself (refresh rotation, the
    revocation endpoint, cascades): its model signals call `authz_changed` so none is missed. A new
    token or client changes no remembered answer."""
    from django.db.models.signals import post_delete, post_save
    from oauth2_provider.models import get_access_token_model, get_application_model

    for model in (get_access_token_model(), get_application_model()):
        post_save.connect(_model_changed, sender=model, dispatch_uid=f"authz-save-{model._meta.label}")
        post_delete.connect(_model_changed, sender=model, dispatch_uid=f"authz-delete-{model._meta.label}")
