"""Writes for the tools app: policy changes and the audit rows of tool use."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from audit.models import AuditEvent, Decision, EventType
from audit.services import RequestMeta, audit_event, audit_record
from audit.writer import audit_write
from consent.principal_cache import authz_changed
from consent.tokens import Principal
from tools.models import GroupMapping, Role
from tools.registry import REGISTRY


class PolicyError(Exception):
    """A policy change that was refused; the message says why and nothing was changed."""


def _principal_actor(principal: Principal) -> Any:
    # Audit rows take the actor by value.
    return SimpleNamespace(pk=principal.user_id, okta_login=principal.login)


async def tools_listed(*, principal: Principal, tools: list[str], meta: RequestMeta) -> None:
    await audit_write(
        audit_event(
            event_type=EventType.TOOLS_LISTED,
            actor=_principal_actor(principal),
            client_id=principal.client_id,
            decision=Decision.ALLOWED,
            details={"tools": tools},
            meta=meta,
        )
    )


def _arguments(arguments: Any) -> Any:
    # audit_event redacts the details, arguments included.
    return arguments if isinstance(arguments, (dict, list)) else {}


async def tool_call_denied(*, principal: Principal, tool: str, reason: str, arguments: Any, meta: RequestMeta) -> None:
    await audit_write(
        audit_event(
            event_type=EventType.TOOL_CALL,
            actor=_principal_actor(principal),
            client_id=principal.client_id,
            target=tool,
            decision=Decision.DENIED,
            reason=reason,
            details={"arguments": _arguments(arguments)},
            meta=meta,
        )
    )


async def tool_call_decided(*, principal: Principal, tool: str, arguments: Any, meta: RequestMeta) -> AuditEvent:
    """The row of a write tool's call, committed to disk before the tool touches Okta: if it cannot
    be written (AuditUnavailable), the tool does not run. `tool_call_finished` records the outcome."""
    return await audit_write(
        audit_event(
            event_type=EventType.TOOL_CALL,
            actor=_principal_actor(principal),
            client_id=principal.client_id,
            target=tool,
            decision=Decision.ALLOWED,
            reason="granted by role",
            details={"arguments": _arguments(arguments)},
            meta=meta,
        ),
        durable=True,
    )


async def tool_call_finished(
    *,
    principal: Principal,
    tool: str,
    decided: AuditEvent | None,
    arguments: Any,
    outcome: str,
    error_code: str,
    duration_ms: int,
    okta_request_ids: list[str],
    meta: RequestMeta,
    message: str = "",
) -> None:
    """After a write tool (`decided` is its decision row): a `tool.call.completed` row with the
    outcome. After a read tool: its one `tool.call` row, decision and outcome together, committed
    before the result goes back (a read changes nothing, so nothing needs recording before it runs)."""
    common = {
        "actor": _principal_actor(principal),
        "client_id": principal.client_id,
        "target": tool,
        "outcome": outcome,
        "error_code": error_code,
        "duration_ms": duration_ms,
        "okta_request_id": ",".join(okta_request_ids),
        "meta": meta,
    }
    if decided is not None:
        event = audit_event(
            event_type=EventType.TOOL_CALL_COMPLETED,
            details={"call_event": decided.pk, "message": message[:500]},
            **common,
        )
    else:
        event = audit_event(
            event_type=EventType.TOOL_CALL,
            decision=Decision.ALLOWED,
            reason="granted by role",
            details={"arguments": _arguments(arguments), "message": message[:500]},
            **common,
        )
    await audit_write(event)


async def step_up_required(*, principal: Principal, tool: str, scopes: list[str], meta: RequestMeta) -> None:
    await audit_write(
        audit_event(
            event_type=EventType.STEP_UP_REQUIRED,
            actor=_principal_actor(principal),
            client_id=principal.client_id,
            target=tool,
            decision=Decision.DENIED,
            reason="insufficient_scope",
            details={"required_scopes": scopes},
            meta=meta,
        )
    )


def policy_changed(*, actor: Any, action: str, target: str, details: dict[str, Any], meta: RequestMeta) -> None:
    """Every change to roles, mappings and grants goes through here."""
    authz_changed()
    audit_record(
        event_type=EventType.POLICY_CHANGED,
        actor=actor,
        target=target,
        reason=action,
        details=details,
        meta=meta,
    )


_OKTA_GROUP_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")


def _validated(obj: Role | GroupMapping) -> None:
    try:
        obj.full_clean()
    except ValidationError as exc:
        problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
        raise PolicyError(problems) from None


def role_save(*, role: Role, actor: Any, meta: RequestMeta) -> Role:
    """Create or change a role. Only registry names may be granted; the audit row says which tools
    were added and removed, and by whom."""
    tools = role.tools if isinstance(role.tools, list) else None
    if tools is None or not all(isinstance(t, str) for t in tools):
        raise PolicyError("tools must be a list of tool names")
    unknown = sorted(set(tools) - set(REGISTRY))
    if unknown:
        raise PolicyError(f"not in the tool registry: {', '.join(unknown)}")
    role.tools = sorted(set(tools))
    role.description = (role.description or "").strip()
    _validated(role)
    with transaction.atomic():
        before = (
            Role.objects.select_for_update().filter(pk=role.pk).values("name", "description", "tools").first()
            if role.pk
            else None
        )
        role.save()
        old_tools = set(before["tools"]) if before else set()
        changed = [f for f in ("name", "description", "tools") if before is None or before[f] != getattr(role, f)]
        if before is not None and not changed:
            return role
        details: dict[str, Any] = {
            "tools": role.tools,
            "tools_added": sorted(set(role.tools) - old_tools),
            "tools_removed": sorted(old_tools - set(role.tools)),
            "description": role.description,
            "changed": changed,
        }
        if before is not None and before["name"] != role.name:
            details["renamed_from"] = before["name"]
        policy_changed(
            actor=actor,
            action="role created" if before is None else "role changed",
            target=f"role:{role.name}",
            details=details,
            meta=meta,
        )
    return role


def role_delete(*, role: Role, actor: Any, meta: RequestMeta) -> None:
    """Delete a role and its group mappings; the audit row keeps what it granted and to whom."""
    with transaction.atomic():
        name = role.name
        details = {
            "tools": sorted(str(t) for t in role.tools) if isinstance(role.tools, list) else [str(role.tools)],
            "groups": [
                {"group_name": m.group_name, "okta_group_id": m.okta_group_id} for m in role.group_mappings.all()
            ],
        }
        role.delete()
        policy_changed(actor=actor, action="role deleted", target=f"role:{name}", details=details, meta=meta)


def group_mapping_save(*, mapping: GroupMapping, actor: Any, meta: RequestMeta) -> GroupMapping:
    """Grant a role to an Okta group (by name, or by id when one is given), or change that grant."""
    mapping.group_name = (mapping.group_name or "").strip()
    mapping.okta_group_id = (mapping.okta_group_id or "").strip()
    if mapping.okta_group_id and not _OKTA_GROUP_ID.match(mapping.okta_group_id):
        raise PolicyError("okta_group_id: an Okta group id has letters and digits only (like 00g1a2b3c4d5e6f7g8h9)")
    _validated(mapping)
    with transaction.atomic():
        before = (
            GroupMapping.objects.select_for_update().filter(pk=mapping.pk).values("group_name", "okta_group_id").first()
            if mapping.pk
            else None
        )
        after = {"group_name": mapping.group_name, "okta_group_id": mapping.okta_group_id}
        mapping.save()
        if before == after:
            return mapping
        details: dict[str, Any] = dict(after)
        if before is not None:
            details["before"] = before
        policy_changed(
            actor=actor,
            action="mapping created" if before is None else "mapping changed",
            target=f"role:{mapping.role.name}",
            details=details,
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
    tool, `admin` for Identity Admins with every tool. Safe to run twice: a second run changes and
    records nothing."""
    meta = RequestMeta.for_command("seed_demo")
    plan = {
        "viewer": (
            "Help-desk analysts: read-only Okta access",
            "Helpdesk",
            [n for n, s in REGISTRY.items() if s.access == "read"],
        ),
        "admin": ("Identity administrators: every tool", "Identity Admins", list(REGISTRY)),
    }
    roles = []
    with transaction.atomic():
        for name, (description, group, tools) in plan.items():
            role = Role.objects.filter(name=name).first() or Role(name=name)
            role.description = description
            role.tools = sorted(tools)
            role_save(role=role, actor=actor, meta=meta)
            if not role.group_mappings.filter(group_name=group).exists():
                group_mapping_save(mapping=GroupMapping(role=role, group_name=group), actor=actor, meta=meta)
            roles.append(role)
    return roles
