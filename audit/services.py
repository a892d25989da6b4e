"""The only writer of the audit trail. Every other service calls `audit_record` inside its own
transaction, so the audit row commits or rolls back with the change it describes."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
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
    return hashlib.sha256(prev_hash.encode() + _canonical(content)).hexdigest()


def _committed(line: str, event: AuditEvent) -> None:
    logger.info(line)
    metrics.audit_event_observe(event)


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
    meta = meta or RequestMeta()
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(
            pk=1, defaults={"last_hash": GENESIS_HASH, "last_event_id": None}
        )
        event = AuditEvent(
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
            okta_request_id=okta_request_id,
            details=redact(details or {}),
            prev_hash=head.last_hash,
            # A unique placeholder until the id (part of the hashed content) is known.
            hash=uuid.uuid4().hex,
        )
        event.save()
        event.hash = event_hash(head.last_hash, event_content(event))
        AuditEvent.objects.filter(pk=event.pk).update(hash=event.hash)
        head.last_hash = event.hash
        head.last_event_id = event.pk
        head.save(update_fields=["last_hash", "last_event_id"])
        line = json.dumps({"audit": event_content(event), "hash": event.hash}, default=str)
        transaction.on_commit(lambda: _committed(line, event))
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
