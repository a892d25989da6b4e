"""Writes for the tools app: policy changes and the audit rows of tool use."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audit.models import AuditEvent, Decision, EventType
from audit.services import RequestMeta, audit_record, redact
from consent.tokens import Principal
from tools.models import GroupMapping, Role


class PolicyError(Exception):
    pass


def _principal_actor(principal: Principal) -> Any:
    class _Actor:  # audit rows take the actor by value
        pk = principal.user_id
        okta_login = principal.login

    return _Actor()


def tools_listed(*, principal: Principal, tools: list[str], meta: RequestMeta) -> None:
    audit_record(
        event_type=EventType.TOOLS_LISTED,
        actor=_principal_actor(principal),
        client_id=principal.client_id,
        decision=Decision.ALLOWED,
        details={"tools": tools},
        meta=meta,
    )


def tool_call_decide(
    *, principal: Principal, tool: str, allowed: bool, reason: str, arguments: Any, meta: RequestMeta
) -> AuditEvent:
    """The row written before a tool runs. It must be committed before the tool is called: if it
    cannot be written, the caller does not run the tool."""
    return audit_record(
        event_type=EventType.TOOL_CALL,
        actor=_principal_actor(principal),
        client_id=principal.client_id,
        target=tool,
        decision=Decision.ALLOWED if allowed else Decision.DENIED,
        reason=reason,
        details={"arguments": redact(arguments) if isinstance(arguments, (dict, list)) else {}},
        meta=meta,
    )


def tool_call_finish(
    *,
    principal: Principal,
    tool: str,
    call_event_id: int,
    outcome: str,
    error_code: str,
    duration_ms: int,
    okta_request_ids: list[str],
    meta: RequestMeta,
    message: str = "",
) -> None:
    audit_record(
        event_type=EventType.TOOL_CALL_COMPLETED,
        actor=_principal_actor(principal),
        client_id=principal.client_id,
        target=tool,
        outcome=outcome,
        error_code=error_code,
        duration_ms=duration_ms,
        okta_request_id=",".join(okta_request_ids)[:100],
        details={"call_event": call_event_id, "message": message[:500]},
        meta=meta,
    )


def step_up_required(*, principal: Principal, tool: str, scopes: list[str], meta: RequestMeta) -> None:
    audit_record(
        event_type=EventType.STEP_UP_REQUIRED,
        actor=_principal_actor(principal),
        client_id=principal.client_id,
        target=tool,
        decision=Decision.DENIED,
        reason="insufficient_scope",
        details={"required_scopes": scopes},
        meta=meta,
    )


def policy_changed(*, actor: Any, action: str, target: str, details: dict[str, Any], meta: RequestMeta) -> None:
    """Every change to roles, mappings and grants goes through here."""
    audit_record(
        event_type=EventType.POLICY_CHANGED,
        actor=actor,
        target=target,
        reason=action,
        details=details,
        meta=meta,
    )


def role_save(
    *, role: Role, actor: Any, meta: RequestMeta, changed: list[str] | None = None, created: bool = False
) -> Role:
    with transaction.atomic():
        role.save()
        policy_changed(
            actor=actor,
            action="role created" if created else "role changed",
            target=f"role:{role.name}",
            details={"tools": sorted(role.tools), "description": role.description, "changed": changed or []},
            meta=meta,
        )
    return role


def role_delete(*, role: Role, actor: Any, meta: RequestMeta) -> None:
    with transaction.atomic():
        name = role.name
        role.delete()
        policy_changed(actor=actor, action="role deleted", target=f"role:{name}", details={}, meta=meta)


def group_mapping_save(*, mapping: GroupMapping, actor: Any, meta: RequestMeta, created: bool) -> GroupMapping:
    with transaction.atomic():
        mapping.save()
        policy_changed(
            actor=actor,
            action="mapping created" if created else "mapping changed",
            target=f"role:{mapping.role.name}",
            details={"group_name": mapping.group_name, "okta_group_id": mapping.okta_group_id},
            meta=meta,
        )
    return mapping


def group_mapping_delete(*, mapping: GroupMapping, actor: Any, meta: RequestMeta) -> None:
    with transaction.atomic():
        details = {"group_name": mapping.group_name, "okta_group_id": mapping.okta_group_id}
        role_name = mapping.role.name
        mapping.delete()
        policy_changed(actor=actor, action="mapping deleted", target=f"role:{role_name}", details=details, meta=meta)


def policy_seed_demo(*, actor: Any = None) -> list[Role]:
    """The demo policy (`make demo` and the tests): `viewer` for the Helpdesk group with every read
    tool, `admin` for Identity Admins with every tool. Safe to run twice."""
    from tools.registry import REGISTRY

    meta = RequestMeta(user_agent="seed_demo")
    plan = {
        "viewer": ("Help-desk analysts: read-only Okta access", "Helpdesk", [n for n, s in REGISTRY.items() if s.access == "read"]),
        "admin": ("Identity administrators: every tool", "Identity Admins", list(REGISTRY)),
    }
    roles = []
    for name, (description, group, tools) in plan.items():
        role, created = Role.objects.get_or_create(name=name)
        role.description = description
        role.tools = sorted(tools)
        role_save(role=role, actor=actor, meta=meta, created=created)
        if not role.group_mappings.filter(group_name=group).exists():
            group_mapping_save(mapping=GroupMapping(role=role, group_name=group), actor=actor, meta=meta, created=True)
        roles.append(role)
    return roles
