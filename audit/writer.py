"""The audit rows of /mcp requests, appended by one writer thread per process in batches.

A request hands its event to the writer and waits until the row is committed: no MCP response
leaves before its audit row is in the database, and when the database cannot take it the request
fails instead of going unaudited. Under load, the events of concurrent requests are appended in one
transaction (one chain-head lock, one commit) instead of one each, which is what lets the audit
trail keep up with the event loop.

Durability: an event marked `durable` (a write tool's decision, taken before Okta is touched) is
committed with PostgreSQL's synchronous commit, i.e. on disk before the tool runs. The others (tool
lists, read tool calls, denials) are committed with `synchronous_commit = off` when
`AUDIT_ASYNC_COMMIT` is on (the default): visible to every reader at once and in the same order,
but flushed to disk by PostgreSQL's WAL writer a moment later (at most 3 x `wal_writer_delay`,
600 ms by default). A crash of PostgreSQL itself (not of this server) can therefore lose the last
fraction of a second of read audit rows; it can never reorder them or break the chain."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction

from audit.models import AuditEvent
from audit.services import audit_append, audit_append_if_head, audit_log_committed

# Not "okta_mcp.audit": that logger's stream carries only the rows' JSON lines.
logger = logging.getLogger("okta_mcp.audit_writer")

MAX_BATCH = 256
# The writer keeps one connection while requests keep coming, and closes it after this long idle.
IDLE_SECONDS = 60.0


class AuditUnavailable(Exception):
    """The row could not be committed; whatever it was to record must not happen."""


@dataclass
class _Pending:
    event: AuditEvent
    durable: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[AuditEvent]


@dataclass
class _CloseConnection:
    done: threading.Event


def _settle(future: asyncio.Future[AuditEvent], event: AuditEvent | None) -> None:
    if future.done():  # the request was cancelled; its row is written all the same
        return
    if event is None:
        future.set_exception(AuditUnavailable("the audit trail is unavailable"))
    else:
        future.set_result(event)


def _settle_all(settled: list[tuple[asyncio.Future[AuditEvent], AuditEvent | None]]) -> None:
    for future, event in settled:
        _settle(future, event)


class AuditWriter:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Pending | _CloseConnection] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._async_connection: Any = None
        self._head: tuple[str, int] | None = None

    async def append(self, event: AuditEvent, *, durable: bool = False) -> AuditEvent:
        """Append `event` to the chain; returns it saved (with its id and hash) once committed.
        Raises AuditUnavailable when it could not be."""
        loop = asyncio.get_running_loop()
        pending = _Pending(event, durable, loop, loop.create_future())
        self._start()
        self._queue.put(pending)
        # Shielded: a request cancelled while waiting (client gone) still gets its row written.
        return await asyncio.shield(pending.future)

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()

    def close_connection(self) -> None:
        """Close the writer's database connection once the events queued before have been written
        (for process shutdown, and for tests that drop their database)."""
        if self._thread is None:
            return
        done = threading.Event()
        self._queue.put(_CloseConnection(done))
        done.wait(timeout=30)

    def _next(self, idle_seconds: float) -> _Pending | _CloseConnection:
        try:
            return self._queue.get(timeout=idle_seconds)
        except queue.Empty:
            # Idle for a while: give the connection back.
            connection.close()
            return self._queue.get()

    def _run(self) -> None:
        while True:
            # A batch: what is queued, up to MAX_BATCH or a request to close the connection.
            item = self._next(IDLE_SECONDS)
            batch: list[_Pending] = []
            while not isinstance(item, _CloseConnection):
                batch.append(item)
                if len(batch) == MAX_BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    self._write_batch(batch)
                except Exception:  # noqa: BLE001 - the thread must outlive any one batch
                    logger.exception("audit writer: batch failed")
                    self._settle(batch, set())
            if isinstance(item, _CloseConnection):
                connection.close()
                item.done.set()

    def _write_batch(self, batch: list[_Pending]) -> None:
        if self._commit(batch):
            committed = batch
        elif len(batch) > 1:
            # One event the database refuses must not take the others down with it.
            committed = [pending for pending in batch if self._commit([pending])]
        else:
            committed = []
        # The requests go on as soon as their rows are committed; the rows' log lines (a copy for log
        # shippers, written by this thread in commit order) need not hold them up.
        self._settle(batch, {id(pending) for pending in committed})
        if committed:
            audit_log_committed([pending.event for pending in committed])

    @staticmethod
    def _settle(batch: list[_Pending], done: set[int]) -> None:
        # One wake-up per event loop for the whole batch, not one per event.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[AuditEvent], AuditEvent | None]]] = {}
        for pending in batch:
            outcome = pending.event if id(pending) in done else None
            by_loop.setdefault(pending.loop, []).append((pending.future, outcome))
        for loop, settled in by_loop.items():
            loop.call_soon_threadsafe(_settle_all, settled)

    def _asynchronous_commit(self) -> bool:
        """Whether this thread's connection commits without waiting for the WAL flush. Set once per
        connection (a statement fewer per batch); a durable batch turns it back on for itself."""
        if not settings.AUDIT_ASYNC_COMMIT or connection.vendor != "postgresql":
            return False
        connection.ensure_connection()
        raw = connection.connection
        if self._async_connection is not raw:
            with connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO OFF")
            self._async_connection = raw
        return True

    def _commit(self, batch: list[_Pending]) -> bool:
        events = [pending.event for pending in batch]
        durable = any(pending.durable for pending in batch)
        # A connection the database dropped (restart, failover) fails on first use: the batch is
        # tried once more on a new connection before its requests are failed.
        for attempt in (1, 2):
            try:
                asynchronous = self._asynchronous_commit()
                # While this process is the only writer, the head is where its last append left it:
                # one statement, no lock held across round trips. Otherwise, or for a durable
                # batch, the locked transaction.
                head = self._head if asynchronous and not durable else None
                if head is not None and audit_append_if_head(events, head):
                    self._head = (events[-1].hash, int(events[-1].pk))
                    return True
                with transaction.atomic():
                    if durable and asynchronous:
                        with connection.cursor() as cursor:
                            cursor.execute("SET LOCAL synchronous_commit TO ON")
                    audit_append(events)
                self._head = (events[-1].hash, int(events[-1].pk))
                return True
            except (OperationalError, InterfaceError):
                connection.close()
                self._head = None
                if attempt == 2:
                    logger.exception("audit writer: database unavailable, %d event(s) refused", len(events))
            except Exception:  # noqa: BLE001 - reported per event by the caller
                self._head = None
                logger.exception("audit writer: %d event(s) refused", len(events))
                return False
        return False


_writer = AuditWriter()


async def audit_write(event: AuditEvent, *, durable: bool = False) -> AuditEvent:
    """The one way /mcp requests append to the audit trail (see the module docstring)."""
    return await _writer.append(event, durable=durable)


def audit_writer_close_connection() -> None:
    _writer.close_connection()
