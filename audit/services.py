"""The only writer of the audit trail. Every other service calls `audit_record` inside its own
transaction, so the audit row commits or rolls back with the change it describes."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditChainHead, AuditEvent, Decision, EventType
from okta_mcp import metrics
from okta_mcp.observability import current_request_id

logger = logging.getLogger("okta_mcp.audit")

GENESIS_HASH = "0" * 64
_SECRET_KEY_PATTERN = re.compile(
    r"(pass(word)?|secret|token|authorization|api[_-]?key|assertion|private[_-]?key|cookie|code_verifier|^code$)",
    re.IGNORECASE,
)
# Values that look like credentials whatever their key: JWTs, Okta SSWS tokens, long opaque strings.
_SECRET_VALUE_PATTERN = re.compile(r"^(eyJ[\w-]+\.[\w-]+\.[\w-]*|00[\w-]{38,}|[A-Za-z0-9_\-]{40,})$")
REDACTED = "[redacted]"


@dataclass(frozen=True)
class RequestMeta:
    """Who sent the request that caused an event: filled by the edge (view, MCP handler, command)."""

    source_ip: str = ""
    user_agent: str = ""
    # The id of the HTTP request being served (okta_mcp.observability), so the row joins the logs.
    request_id: str = field(default_factory=current_request_id)

    @classmethod
    def from_django(cls, request: Any) -> RequestMeta:
        return cls(
            source_ip=request.META.get("REMOTE_ADDR", "") or "",
            user_agent=(request.META.get("HTTP_USER_AGENT", "") or "")[:512],
            request_id=getattr(request, "request_id", "") or uuid.uuid4().hex,
        )

    @classmethod
    def for_command(cls, name: str) -> RequestMeta:
        return cls(source_ip="", user_agent=f"manage.py {name}")


def redact(value: Any) -> Any:
    """A copy of `value` with secret-looking keys and values replaced. Tool arguments and details
    pass through here before they are stored or logged."""
    if isinstance(value, dict):
        return {str(k): (REDACTED if _SECRET_KEY_PATTERN.search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str) and _SECRET_VALUE_PATTERN.match(value):
        return REDACTED
    return value


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str).encode()


def event_content(event: AuditEvent) -> dict[str, Any]:
    """The fields covered by the hash, in a stable form shared by the writer and the verifier."""
    created: datetime = event.created
    return {
        "id": event.pk,
        "created": created.astimezone(UTC).isoformat(timespec="microseconds"),
        "event_type": event.event_type,
        "actor_user_id": event.actor_user_id,
        "actor_login": event.actor_login,
        "client_id": event.client_id,
        "source_ip": event.source_ip,
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "target": event.target,
        "decision": event.decision,
        "reason": event.reason,
        "outcome": event.outcome,
        "error_code": event.error_code,
        "duration_ms": event.duration_ms,
        "okta_request_id": event.okta_request_id,
        "details": event.details,
    }


def event_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return _hash_of(prev_hash, _canonical(content))


def _hash_of(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical).hexdigest()


def audit_log_committed(events: list[AuditEvent]) -> None:
    """One JSON line per committed row on the `okta_mcp.audit` logger: the exact bytes the row's
    hash covers, with its hash and its predecessor's, so that a SIEM can check the chain from the
    lines alone. The batch's lines are written together (`okta_mcp.observability.BatchedStreamHandler`)."""
    for event in events:
        canonical = getattr(event, "_canonical", None) or _canonical(event_content(event))
        logger.info(
            '{"audit":%s,"prev_hash":"%s","hash":"%s"}',
            canonical.decode("ascii"),
            event.prev_hash,
            event.hash,
            extra={"batched": True},
        )
        metrics.audit_event_observe(event)
    for handler in logger.handlers:
        handler.flush()


def audit_event(
    *,
    event_type: EventType,
    actor: Any = None,
    client_id: str = "",
    target: str = "",
    decision: Decision | str = Decision.NONE,
    reason: str = "",
    outcome: str = "",
    error_code: str = "",
    duration_ms: int | None = None,
    okta_request_id: str = "",
    details: dict[str, Any] | None = None,
    meta: RequestMeta | None = None,
) -> AuditEvent:
    """An event not yet in the chain: `audit_record` or `audit.writer` appends it."""
    meta = meta or RequestMeta()
    return AuditEvent(
        created=timezone.now(),
        event_type=event_type,
        actor_user_id=getattr(actor, "pk", None),
        actor_login=(getattr(actor, "okta_login", "") or getattr(actor, "username", "")) if actor else "",
        client_id=client_id,
        source_ip=meta.source_ip,
        user_agent=meta.user_agent[:512],
        request_id=meta.request_id,
        target=target[:255],
        decision=decision,
        reason=reason[:255],
        outcome=outcome,
        error_code=error_code[:100],
        duration_ms=duration_ms,
        okta_request_id=okta_request_id[:100],
        details=redact(details or {}),
    )


_FIELDS = AuditEvent._meta.concrete_fields
_sequences: dict[str, str] = {}


def _quoted(model: type[Any]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _event_sequence(cursor: Any) -> str:
    if connection.alias not in _sequences:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [AuditEvent._meta.db_table])
        _sequences[connection.alias] = str(cursor.fetchone()[0])
    return _sequences[connection.alias]


def _locked_head(cursor: Any) -> tuple[str, int] | None:
    """The newest hash and the highest id ever given to a row, with the head locked until the
    caller's transaction ends (SQLite has no row locks: its IMMEDIATE transactions hold the database
    write lock instead). Ids never go back, even after a prune deleted every row; None without a head."""
    if connection.vendor == "postgresql":
        cursor.execute(
            # The head's last_event_id is read after the lock (a concurrent append that moved it is
            # seen); the sequence only matters for rows inserted some other way.
            f"SELECT last_hash, GREATEST(COALESCE(last_event_id, 0), "
            f"(SELECT last_value FROM {_event_sequence(cursor)})) FROM {_quoted(AuditChainHead)} WHERE id = 1 FOR UPDATE",
            [],
        )
        row = cursor.fetchone()
        return (str(row[0]), int(row[1])) if row else None
    cursor.execute(f"SELECT last_hash, last_event_id FROM {_quoted(AuditChainHead)} WHERE id = 1", [])
    head = cursor.fetchone()
    if head is None:
        return None
    cursor.execute(f"SELECT MAX(id) FROM {_quoted(AuditEvent)}", [])
    last = max(int(head[1] or 0), int(cursor.fetchone()[0] or 0))
    if connection.vendor == "sqlite":
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [AuditEvent._meta.db_table])
        row = cursor.fetchone()
        last = max(last, int(row[0]) if row else 0)
    return str(head[0]), last


def _row(event: AuditEvent) -> dict[str, Any]:
    row = {f.column: getattr(event, f.attname) for f in _FIELDS}
    row["created"] = event.created.isoformat()
    return row


def _link(events: list[AuditEvent], prev: str, last_id: int) -> None:
    for offset, event in enumerate(events, start=1):
        event.pk = last_id + offset
        event.prev_hash = prev
        # Kept for the row's log line (audit_log_committed), which carries exactly these bytes.
        event._canonical = _canonical(event_content(event))  # type: ignore[attr-defined]
        event.hash = prev = _hash_of(prev, event._canonical)  # type: ignore[attr-defined]


@functools.cache
def _statements(vendor: str) -> tuple[str, str, str]:
    """The append statements' text for a database vendor: built once, since quoting 19 column names
    through the connection proxy on every batch cost the writer more than its hashing. Returns the
    head move, the start of the insert ("INSERT INTO table (columns)") and, for PostgreSQL, the
    whole one-statement append."""
    quote = connection.ops.quote_name
    table = _quoted(AuditEvent)
    insert_into = f"INSERT INTO {table} ({', '.join(quote(f.column) for f in _FIELDS)})"
    move_head = f"UPDATE {_quoted(AuditChainHead)} SET last_hash = %s, last_event_id = %s WHERE id = 1 AND last_hash = %s"
    selected = ", ".join(f"r.{quote(f.column)}" for f in _FIELDS)
    one_statement = (
        f"WITH head AS ({move_head} RETURNING 1), seq AS (SELECT setval(%s::regclass, %s) FROM head) "
        f"{insert_into} SELECT {selected} FROM seq, jsonb_populate_recordset(NULL::{table}, %s::jsonb) r"
    )
    return move_head, insert_into, one_statement


def _insert(cursor: Any, events: list[AuditEvent], expected_hash: str) -> bool:
    """Insert linked `events` and move the head to the last of them, provided the head still holds
    `expected_hash`; False, with nothing written, when it does not."""
    move_head, insert_into, one_statement = _statements(connection.vendor)
    head_params = [events[-1].hash, events[-1].pk, expected_hash]
    if connection.vendor == "postgresql":
        # One statement: the head moves only from the expected hash (under its row lock), and the
        # rows, which travel as one JSON document that PostgreSQL expands (binding 19 parameters a
        # row in Python cost more than the rest of the append), go in only when it did, with the
        # id sequence following.
        rows = json.dumps([_row(event) for event in events], default=str)
        cursor.execute(one_statement, [*head_params, _event_sequence(cursor), events[-1].pk, rows])
        return cursor.rowcount == len(events)
    cursor.execute(move_head, head_params)
    if cursor.rowcount != 1:
        return False
    row = "(" + ", ".join(["%s"] * len(_FIELDS)) + ")"
    params = [f.get_db_prep_save(getattr(event, f.attname), connection) for event in events for f in _FIELDS]
    cursor.execute(f"{insert_into} VALUES {', '.join([row] * len(events))}", params)
    return True


def _saved(events: list[AuditEvent]) -> None:
    for event in events:
        event._state.adding = False
        event._state.db = connection.alias


def audit_append(events: list[AuditEvent]) -> None:
    """Link `events` to the chain, in order, inside the caller's transaction: lock the head, give
    the rows the next ids, hash each over its content (id included) and its predecessor's hash,
    insert them all and move the head. Chain order is id order. Written in SQL rather than through
    the ORM because this runs for every /mcp request, and the ORM's statement compilation was most
    of its cost; on PostgreSQL it is two round trips whatever the number of rows."""
    if not events:
        return
    with connection.cursor() as cursor:
        head = _locked_head(cursor)
        if head is None:
            AuditChainHead.objects.select_for_update().get_or_create(
                pk=1, defaults={"last_hash": GENESIS_HASH, "last_event_id": None}
            )
            head = _locked_head(cursor)
            assert head is not None
        _link(events, *head)
        if not _insert(cursor, events, head[0]):  # the head is locked: it cannot have moved
            raise RuntimeError("audit chain head moved while locked")
    _saved(events)


def audit_append_if_head(events: list[AuditEvent], head: tuple[str, int]) -> bool:
    """In autocommit, one statement: append `events` after `head` (its hash and last id, as the
    caller last saw them) if the chain still ends there. False, with nothing written, when another
    writer has appended since; the caller then uses `audit_append`, which links them again."""
    _link(events, *head)
    with connection.cursor() as cursor:
        if not _insert(cursor, events, head[0]):
            return False
    _saved(events)
    return True


def audit_record(
    *,
    event_type: EventType,
    actor: Any = None,
    client_id: str = "",
    target: str = "",
    decision: Decision | str = Decision.NONE,
    reason: str = "",
    outcome: str = "",
    error_code: str = "",
    duration_ms: int | None = None,
    okta_request_id: str = "",
    details: dict[str, Any] | None = None,
    meta: RequestMeta | None = None,
) -> AuditEvent:
    """Append one event to the chain. Runs in the caller's transaction when there is one (so the
    row and the change it records commit together) and in its own otherwise."""
    event = audit_event(
        event_type=event_type,
        actor=actor,
        client_id=client_id,
        target=target,
        decision=decision,
        reason=reason,
        outcome=outcome,
        error_code=error_code,
        duration_ms=duration_ms,
        okta_request_id=okta_request_id,
        details=details,
        meta=meta,
    )
    with transaction.atomic():
        audit_append([event])
        transaction.on_commit(lambda: audit_log_committed([event]))
    return event


class AuditError(Exception):
    """An expected failure of an audit-trail operation, with a message fit for the operator."""


EXPORT_FORMATS = ("jsonl", "csv")
EXPORT_FIELDS = [
    "id",
    "created",
    "event_type",
    "actor_user_id",
    "actor_login",
    "client_id",
    "source_ip",
    "user_agent",
    "request_id",
    "target",
    "decision",
    "reason",
    "outcome",
    "error_code",
    "duration_ms",
    "okta_request_id",
    "details",
    "prev_hash",
    "hash",
]
# A cell starting with one of these is run as a formula by spreadsheet programs; user agents and
# tool arguments are attacker-controlled, so such cells get a leading quote (OWASP CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True)
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def audit_export(
    *,
    out: Any,
    fmt: str,
    since: datetime | None = None,
    until: datetime | None = None,
    ids: list[int] | None = None,
    actor: Any = None,
    meta: RequestMeta,
) -> int:
    """Stream the matching rows to the text stream `out` (JSON lines or CSV), a chunk at a time so
    memory does not grow with the row count, then record the export itself. Returns rows written."""
    import csv

    from audit.selectors import audit_event_stream, audit_events

    if fmt not in EXPORT_FORMATS:
        raise AuditError(f"unknown format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    if since is not None and until is not None and since >= until:
        raise AuditError("--since must be before --until")
    count = 0
    writer = csv.writer(out) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(EXPORT_FIELDS)
    for record in audit_event_stream(audit_events(since=since, until=until, ids=ids)):
        if writer is not None:
            writer.writerow([_csv_cell(record[f]) for f in EXPORT_FIELDS])
        else:
            out.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        count += 1
    audit_record(
        event_type=EventType.AUDIT_EXPORTED,
        actor=actor,
        target="audit",
        outcome="success",
        details={
            "format": fmt,
            "rows": count,
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "selected_ids": len(ids) if ids is not None else None,
        },
        meta=meta,
    )
    return count


@dataclass(frozen=True)
class PruneResult:
    deleted: int
    pruned_through_id: int | None = None
    checkpoint_id: int | None = None

    def __str__(self) -> str:
        if not self.deleted:
            return "nothing to prune"
        return (
            f"pruned {self.deleted} row(s) up to #{self.pruned_through_id}; "
            f"checkpoint #{self.checkpoint_id} records where the chain was cut"
        )


def audit_prune(*, before: datetime, actor: Any = None, meta: RequestMeta) -> PruneResult:
    """Delete the rows older than `before` and append a checkpoint recording the id and hash of the
    last row deleted, from which `audit_chain_verify` then starts.

    Refused when `before` is in the future, when the chain does not verify (pruning would destroy
    the evidence), and when the cut would remove the newest checkpoint, the row the chain now
    starts from. The cut is at the first row created at or after `before`: every row before it in
    the chain goes, so what remains is contiguous, and no row newer than `before` is removed.
    Safe to run twice: the second run finds nothing older than `before`."""
    from audit.selectors import audit_chain_verify, audit_checkpoint_latest

    if before > timezone.now():
        raise AuditError(f"refusing to prune up to {before.isoformat()}: that date is in the future")
    report = audit_chain_verify()
    if not report.ok:
        raise AuditError(f"refusing to prune a chain that does not verify: {report}")
    with transaction.atomic():
        # The head lock keeps writers out while the cut is chosen and the checkpoint appended.
        AuditChainHead.objects.select_for_update().get_or_create(
            pk=1, defaults={"last_hash": GENESIS_HASH, "last_event_id": None}
        )
        first_kept = AuditEvent.objects.filter(created__gte=before).order_by("id").values_list("id", flat=True).first()
        doomed = AuditEvent.objects.all() if first_kept is None else AuditEvent.objects.filter(pk__lt=first_kept)
        last = doomed.order_by("-id").values("id", "hash").first()
        if last is None:
            return PruneResult(0)
        checkpoint = audit_checkpoint_latest()
        if checkpoint is not None and checkpoint.pk <= last["id"]:
            raise AuditError(
                f"refusing to prune checkpoint #{checkpoint.pk} (created {checkpoint.created.isoformat()}), "
                "the row the chain now starts from: choose an earlier date"
            )
        deleted, _ = doomed.delete()
        event = audit_record(
            event_type=EventType.CHAIN_CHECKPOINT,
            actor=actor,
            target="audit",
            reason=f"rows created before {before.isoformat()} pruned",
            details={
                "pruned_through_id": last["id"],
                # Labelled so that it is not taken for a secret by redact() (it is a long opaque string).
                "pruned_through_hash": "sha256:" + last["hash"],
                "pruned_rows": deleted,
                "before": before.isoformat(),
            },
            meta=meta,
        )
    return PruneResult(deleted, last["id"], event.pk)
