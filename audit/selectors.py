"""Reads of the audit trail: the rows in a time window (streamed, never materialised) and the
verification of the hash chain."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Max, QuerySet

from audit.models import AuditChainHead, AuditEvent, EventType
from audit.services import GENESIS_HASH, event_content, event_hash

# Rows fetched per round trip when streaming: memory stays flat whatever the size of the table.
CHUNK_SIZE = 1000


def audit_events(
    *, since: datetime | None = None, until: datetime | None = None, ids: list[int] | None = None
) -> QuerySet[AuditEvent]:
    """Rows in chain order, `since` inclusive and `until` exclusive."""
    qs = AuditEvent.objects.order_by("id")
    if since is not None:
        qs = qs.filter(created__gte=since)
    if until is not None:
        qs = qs.filter(created__lt=until)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    return qs


def audit_event_record(event: AuditEvent) -> dict[str, Any]:
    """One row as exported: the hashed content plus both hashes, so that a copy of an export can be
    checked offline with the same canonical form (see `audit.services.event_hash`)."""
    return {**event_content(event), "prev_hash": event.prev_hash, "hash": event.hash}


def audit_event_stream(qs: QuerySet[AuditEvent]) -> Iterator[dict[str, Any]]:
    for event in qs.iterator(chunk_size=CHUNK_SIZE):
        yield audit_event_record(event)


@dataclass(frozen=True)
class ChainReport:
    rows_checked: int
    bad_event_id: int | None = None
    reason: str = ""
    start: str = "genesis"

    @property
    def ok(self) -> bool:
        return not self.reason

    def __str__(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.rows_checked} row(s) checked from {self.start}"
        where = f"row #{self.bad_event_id}" if self.bad_event_id is not None else "the chain head"
        return f"audit chain broken at {where}: {self.reason} ({self.rows_checked} row(s) checked before it)"


def audit_checkpoint_latest(*, up_to_id: int | None = None) -> AuditEvent | None:
    qs = AuditEvent.objects.filter(event_type=EventType.CHAIN_CHECKPOINT)
    if up_to_id is not None:
        qs = qs.filter(pk__lte=up_to_id)
    return qs.order_by("-id").first()


def _head() -> tuple[int | None, str]:
    head = AuditChainHead.objects.filter(pk=1).values_list("last_event_id", "last_hash").first()
    return head if head is not None else (None, GENESIS_HASH)


def audit_chain_verify() -> ChainReport:
    """Recompute every hash in id order and follow every link, from the genesis or, after a prune,
    from the newest checkpoint's record of the last pruned row. Returns the number of rows checked
    and the first bad row: content changed (its hash no longer matches), link broken (a row before
    it was removed or re-hashed), or rows missing at the tail (the chain head names a newer row).

    The chain head is read first and rows are checked up to the id it names: rows and head commit
    together, so every row up to it is visible, and rows written meanwhile are left for the next
    run instead of racing the writer."""
    head_id, head_hash = _head()
    first = AuditEvent.objects.order_by("id").first()
    if first is None:
        if head_id is not None:
            return ChainReport(0, head_id, "every row is gone: the chain head names a row that does not exist")
        return ChainReport(0)
    if head_id is None:
        return ChainReport(0, first.pk, "rows exist but the chain head was never written (rows inserted by hand)")

    checkpoint = audit_checkpoint_latest(up_to_id=head_id)
    expected_prev = GENESIS_HASH
    start = "genesis"
    if checkpoint is not None:
        cut_id = (checkpoint.details or {}).get("pruned_through_id")
        cut_hash = (checkpoint.details or {}).get("pruned_through_hash")
        if not isinstance(cut_id, int) or not isinstance(cut_hash, str) or not cut_hash.startswith("sha256:"):
            return ChainReport(0, checkpoint.pk, "content changed: checkpoint details are not a valid cut")
        cut_hash = cut_hash.removeprefix("sha256:")
        if first.pk <= cut_id:
            return ChainReport(0, first.pk, f"row survives the prune recorded by checkpoint #{checkpoint.pk}")
        expected_prev = cut_hash
        start = f"checkpoint #{checkpoint.pk} (rows up to #{cut_id} pruned)"

    checked = 0
    last_id: int | None = None
    after_id = 0
    for _ in range(5):
        rows = AuditEvent.objects.filter(pk__gt=after_id, pk__lte=head_id).order_by("id")
        for event in rows.iterator(chunk_size=CHUNK_SIZE):
            if event.prev_hash != expected_prev:
                return ChainReport(
                    checked, event.pk, "link broken: prev_hash does not match the hash of the row before it", start
                )
            if event_hash(event.prev_hash, event_content(event)) != event.hash:
                return ChainReport(
                    checked, event.pk, "content changed: the row's hash does not match its content", start
                )
            expected_prev = event.hash
            last_id = event.pk
            checked += 1
        if expected_prev != head_hash:
            return ChainReport(
                checked,
                head_id,
                f"rows missing at the tail: the chain head names row #{head_id}, last found #{last_id}",
                start,
            )
        # Rows the head did not name when it was read: either written since (read the head again
        # and go on) or inserted outside audit_record (not covered by the head at all).
        beyond = AuditEvent.objects.filter(pk__gt=head_id).aggregate(m=Max("id"))["m"]
        if beyond is None:
            break
        after_id = head_id
        head_id, head_hash = _head()
        if head_id is None or head_id < beyond:
            return ChainReport(
                checked, beyond, "row is not linked into the chain (inserted outside the audit service)", start
            )
    return ChainReport(checked, start=start)
