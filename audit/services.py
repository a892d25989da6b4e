"""The only writer of the audit trail. Every other service calls `audit_record` inside its own
transaction, so the audit row commits or rolls back with the change it describes."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.models import AuditChainHead, AuditEvent, Decision, EventType

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
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def from_django(cls, request: Any) -> "RequestMeta":
        return cls(
            source_ip=request.META.get("REMOTE_ADDR", "") or "",
            user_agent=(request.META.get("HTTP_USER_AGENT", "") or "")[:512],
            request_id=getattr(request, "request_id", "") or uuid.uuid4().hex,
        )

    @classmethod
    def for_command(cls, name: str) -> "RequestMeta":
        return cls(source_ip="", user_agent=f"manage.py {name}")


def redact(value: Any) -> Any:
    """A copy of `value` with secret-looking keys and values replaced. Tool arguments and details
    pass through here before they are stored or logged."""
    if isinstance(value, dict):
        return {
            str(k): (REDACTED if _SECRET_KEY_PATTERN.search(str(k)) else redact(v)) for k, v in value.items()
        }
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
        "created": created.astimezone(dt_timezone.utc).isoformat(timespec="microseconds"),
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
        transaction.on_commit(lambda: logger.info(line))
    return event
