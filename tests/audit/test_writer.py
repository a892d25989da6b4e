"""audit.writer: the rows of /mcp requests, appended by one thread in batches. Driven here the way
the server drives it (many requests awaiting at once on one event loop), against the test database
(PostgreSQL in CI)."""

from __future__ import annotations

import asyncio

import pytest

from audit.models import AuditEvent, EventType
from audit.selectors import audit_chain_verify
from audit.services import RequestMeta, audit_event, audit_record
from audit.writer import AuditUnavailable, audit_write

pytestmark = pytest.mark.django_db(transaction=True)


def _event(n: int, **overrides: object) -> AuditEvent:
    fields: dict[str, object] = {
        "event_type": EventType.TOOL_CALL,
        "target": f"tool-{n}",
        "decision": "allowed",
        "details": {"arguments": {"n": n}},
        "meta": RequestMeta(request_id=f"req-{n}"),
    }
    fields.update(overrides)
    return audit_event(**fields)  # type: ignore[arg-type]


def test_concurrent_requests_get_their_own_committed_rows_in_one_chain() -> None:
    audit_record(event_type=EventType.MAINTENANCE, target="before", meta=RequestMeta())

    async def burst() -> list[AuditEvent]:
        return list(await asyncio.gather(*(audit_write(_event(n)) for n in range(300))))

    written = asyncio.run(burst())
    assert len({e.pk for e in written}) == 300
    stored = {e.pk: (e.request_id, e.hash, e.details) for e in AuditEvent.objects.filter(event_type=EventType.TOOL_CALL)}
    for n, event in enumerate(written):
        assert stored[event.pk] == (f"req-{n}", event.hash, {"arguments": {"n": n}})
    # The rows of one batch and the rows written around it form one chain, in id order.
    audit_record(event_type=EventType.MAINTENANCE, target="after", meta=RequestMeta())
    report = audit_chain_verify()
    assert report.ok, report
    assert AuditEvent.objects.count() == 302


def test_an_event_the_database_refuses_fails_alone() -> None:
    async def mixed() -> list[object]:
        events = [_event(0), _event(1, event_type=None), _event(2)]
        return list(await asyncio.gather(*(audit_write(e) for e in events), return_exceptions=True))

    first, refused, third = asyncio.run(mixed())
    assert isinstance(refused, AuditUnavailable)
    assert isinstance(first, AuditEvent) and isinstance(third, AuditEvent)
    assert sorted(AuditEvent.objects.values_list("target", flat=True)) == ["tool-0", "tool-2"]
    assert audit_chain_verify().ok


def test_a_durable_event_is_committed_like_the_others() -> None:
    event = asyncio.run(audit_write(_event(7), durable=True))
    assert AuditEvent.objects.get(pk=event.pk).hash == event.hash
    assert audit_chain_verify().ok


def test_rows_written_elsewhere_between_batches_keep_the_chain_linear() -> None:
    """The writer remembers where its last append left the chain and appends there in one
    statement; when another writer (here the synchronous path, on another connection) has appended
    since, that statement writes nothing and the locked path takes over."""
    for round_ in range(3):
        asyncio.run(audit_write(_event(round_)))
        audit_record(event_type=EventType.MAINTENANCE, target=f"between-{round_}", meta=RequestMeta())
        asyncio.run(audit_write(_event(10 + round_)))
    rows = list(AuditEvent.objects.order_by("id").values_list("target", flat=True))
    assert rows == [t for r in range(3) for t in (f"tool-{r}", f"between-{r}", f"tool-{10 + r}")]
    assert audit_chain_verify().ok
