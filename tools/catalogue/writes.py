"""Write tools: user lifecycle (suspend, unsuspend, unlock, reset factors, clear sessions,
deactivate) and group membership. Every one is destructive and never acts on the first call:

1. identifiers are checked (no HTTP call for a bad one), then the current state is read from Okta
   and a summary of the change is written;
2. with a `confirmation` token from an earlier call (issued to this user and client, for this tool
   and these exact arguments, unused and unexpired) the change is made;
3. otherwise, when the client declared MCP elicitation, its user is asked, and only an explicit yes
   makes the change: on a legacy session, through the session's back channel; on 2026-07-28 (no
   back channel), the call answers with an InputRequiredResult carrying the question and, as its
   requestState, a confirmation token bound as in step 2, and the client retries with the answer;
4. otherwise nothing changes: the result is the summary and a single-use token for step 2.
Nothing confirms by default: a client that cannot ask gets a token, never an action."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

import anyio
from asgiref.sync import sync_to_async
from django.conf import settings
from pydantic import BaseModel, Field

from tools.catalogue.common import OktaId, checked_identifier, okta_object, text, tool_error
from tools.confirmations import (
    ConfirmationRefused,
    confirmation_cancel,
    confirmation_check,
    confirmation_issue,
    confirmation_redeem,
)
from tools.context import ToolContext, ToolFailure, ToolNeedsInput
from tools.okta import OktaError, okta_call, okta_read
from tools.registry import register

logger = logging.getLogger("okta_mcp.tools")

USERS_MANAGE = ("okta.users.manage",)
GROUPS_MANAGE = ("okta.groups.manage",)


class WriteInput(BaseModel):
    model_config = {"extra": "forbid"}
    confirmation: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description=(
            "Leave out on the first call: nothing changes and you get a summary and a token. Pass that token "
            "here, with the same arguments, only after the person you act for has agreed to the change."
        ),
    )


class UserWriteInput(WriteInput):
    user_id: OktaId = Field(description="Okta user id (00u...); find it with get_user or list_users")


class ChangeResult(BaseModel):
    outcome: Literal["done", "confirmation_required", "declined"] = Field(
        description="done: Okta was changed. confirmation_required or declined: nothing was changed."
    )
    action: str
    summary: str = Field(description="What would change (or what changed), in words")
    user_id: str | None = None
    login: str | None = None
    status_before: str | None = None
    status_after: str | None = None
    confirmation: str | None = Field(default=None, description="Single-use token that confirms exactly this call")
    confirmation_expires_at: datetime | None = None
    next_step: str | None = None


R = TypeVar("R", bound=ChangeResult)


@dataclass
class Plan:
    """What a write would do, read from Okta before anything changes."""

    summary: str
    fields: dict[str, Any] = field(default_factory=dict)


class ConfirmChange(BaseModel):
    confirm: bool = Field(title="Make this change", description="Tick to make the change described above")


def _declared_form_elicitation(ctx: ToolContext) -> bool:
    session = getattr(ctx.mcp, "session", None)
    try:
        capabilities = session.client_capabilities if session is not None else None
        elicitation = capabilities.elicitation if capabilities is not None else None
        return elicitation is not None and (elicitation.form is not None or elicitation.url is None)
    except Exception:  # noqa: BLE001 - a transport that cannot say cannot ask
        return False


def _modern(ctx: ToolContext) -> bool:
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    return getattr(ctx.mcp, "protocol_version", None) in MODERN_PROTOCOL_VERSIONS


def _can_elicit(ctx: ToolContext) -> bool:
    """Form elicitation as a server-to-client request needs a client that declared it and a back
    channel (a legacy session's stream; the stateless 2026-07-28 transport has none)."""
    if _modern(ctx) or not _declared_form_elicitation(ctx):
        return False
    try:
        return bool(ctx.mcp.session.can_send_request)
    except Exception:  # noqa: BLE001
        return False


def _retry_state(ctx: ToolContext) -> tuple[str | None, dict[str, Any]]:
    """On 2026-07-28, a client answering our InputRequiredResult retries the call with the echoed
    requestState (our confirmation token) and its inputResponses."""
    params = getattr(ctx.mcp, "params", None) or {}
    state = params.get("requestState", params.get("request_state"))
    responses = params.get("inputResponses", params.get("input_responses")) or {}
    return (state if isinstance(state, str) and state else None), (responses if isinstance(responses, dict) else {})


def _accepted(response: Any) -> bool:
    if hasattr(response, "model_dump"):
        response = response.model_dump(mode="json")
    if not isinstance(response, dict):
        return False
    content = response.get("content") or {}
    return response.get("action") == "accept" and isinstance(content, dict) and content.get("confirm") is True


async def _ask(ctx: ToolContext, summary: str) -> bool | None:
    """True: the person said yes. False: they said no, dismissed it, or did not answer in time.
    None: they could not be asked (the caller falls back to a confirmation token)."""
    if not _can_elicit(ctx):
        return None
    from mcp.server.elicitation import elicit_with_validation

    message = f"{summary}\n\nMake this change in Okta?"
    try:
        with anyio.fail_after(settings.TOOL_ELICITATION_TIMEOUT_SECONDS):
            answer = await elicit_with_validation(
                ctx.mcp.session, message, ConfirmChange, related_request_id=getattr(ctx.mcp, "request_id", None)
            )
    except TimeoutError:
        ctx.note = "no answer to the confirmation prompt"
        return False
    except Exception as exc:  # noqa: BLE001 - a client that fails to ask is treated as one that cannot
        logger.warning("elicitation failed, falling back to a confirmation token: %s", type(exc).__name__)
        return None
    if answer.action == "accept" and answer.data.confirm is True:
        return True
    ctx.note = f"the person answered the confirmation prompt with {answer.action}"
    return False


async def guarded_change(
    ctx: ToolContext,
    *,
    tool: str,
    args: WriteInput,
    output: type[R],
    plan_change: Callable[[], Awaitable[Plan]],
    act: Callable[[], Awaitable[dict[str, Any]]],
) -> R:
    """Ask, or act on a confirmation: see the module docstring. `plan_change` reads Okta and says
    what would change (refusing changes Okta would refuse); `act` makes the change."""
    arguments = args.model_dump(mode="json", exclude={"confirmation"})
    retry_token, responses = _retry_state(ctx) if _modern(ctx) else (None, {})
    token = args.confirmation or retry_token
    if retry_token and not args.confirmation and not _accepted(responses.get("confirm")):
        await sync_to_async(confirmation_cancel)(principal=ctx.principal, token=retry_token)
        plan = await plan_change()
        ctx.outcome = "declined"
        ctx.note = "the person did not confirm the change (elicitation)"
        return output(**{"action": tool, **plan.fields, "outcome": "declined", "summary": "Not changed (not confirmed). " + plan.summary})
    if token:
        try:
            # A token that cannot confirm this call is refused before Okta is read.
            await sync_to_async(confirmation_check)(principal=ctx.principal, tool=tool, arguments=arguments, token=token)
            plan = await plan_change()
            await sync_to_async(confirmation_redeem)(principal=ctx.principal, tool=tool, arguments=arguments, token=token)
        except ConfirmationRefused as exc:
            raise ToolFailure(str(exc), code=exc.code) from None
        base = {"action": tool, **plan.fields}
        ctx.note = "confirmed with a confirmation token" if args.confirmation else "confirmed by the person through elicitation"
        done = await act()
        return output(**{**base, "outcome": "done", "summary": "Done. " + plan.summary, **done})
    plan = await plan_change()
    base = {"action": tool, **plan.fields}
    if _modern(ctx) and _declared_form_elicitation(ctx):
        # 2026-07-28 has no back channel: the question goes back as an InputRequiredResult, with the
        # confirmation token (bound as always) as its requestState; the client asks its user and
        # retries with their answer.
        from mcp.server.elicitation import render_elicitation_schema
        from mcp_types import ElicitRequest, ElicitRequestFormParams, InputRequiredResult

        issued = await sync_to_async(confirmation_issue)(
            principal=ctx.principal, tool=tool, arguments=arguments, summary=plan.summary
        )
        ctx.outcome = "confirmation_required"
        ctx.note = "asked the person through elicitation: " + plan.summary
        question = ElicitRequest(
            params=ElicitRequestFormParams(
                message=f"{plan.summary}\n\nMake this change in Okta?",
                requested_schema=render_elicitation_schema(ConfirmChange),
            )
        )
        raise ToolNeedsInput(InputRequiredResult(input_requests={"confirm": question}, request_state=issued.token))
    answer = await _ask(ctx, plan.summary)
    if answer is True:
        ctx.note = "confirmed by the person through elicitation"
        done = await act()
        return output(**{**base, "outcome": "done", "summary": "Done. " + plan.summary, **done})
    if answer is False:
        ctx.outcome = "declined"
        return output(**{**base, "outcome": "declined", "summary": "Not changed (not confirmed). " + plan.summary})
    issued = await sync_to_async(confirmation_issue)(
        principal=ctx.principal, tool=tool, arguments=arguments, summary=plan.summary
    )
    minutes = max(1, settings.TOOL_CONFIRMATION_SECONDS // 60)
    ctx.outcome = "confirmation_required"
    ctx.note = plan.summary
    return output(
        **{
            **base,
            "outcome": "confirmation_required",
            "summary": plan.summary,
            "confirmation": issued.token,
            "confirmation_expires_at": issued.expires_at,
            "next_step": (
                "Nothing has changed. Show the summary to the person you act for. Only if they agree, call "
                f"{tool} again with the same arguments and confirmation set to this token "
                f"(single use, valid {minutes} minutes)."
            ),
        }
    )


# --- reading what a write would touch ------------------------------------------------------------
async def _user(ctx: ToolContext, user_id: str) -> dict[str, Any]:
    return await okta_object(ctx, "/api/v1/users/{}", user_id, what="user", ident=user_id)


def _who(user: dict[str, Any]) -> str:
    name = " ".join(p for p in (text(user, "profile.firstName"), text(user, "profile.lastName")) if p)
    login = text(user, "profile.login") or str(user.get("id"))
    return f"{login} ({name}, {user.get('id')})" if name else f"{login} ({user.get('id')})"


def _user_fields(user: dict[str, Any]) -> dict[str, Any]:
    return {"user_id": str(user.get("id")), "login": text(user, "profile.login"), "status_before": text(user, "status")}


async def _okta_change(ctx: ToolContext, method: str, *args: Any, what: str, ident: str, **kwargs: Any) -> None:
    try:
        await okta_call(method, *args, info=ctx.okta, **kwargs)
    except OktaError as exc:
        raise tool_error(exc, what=what, ident=ident) from None


async def _status_now(ctx: ToolContext, user_id: str) -> str | None:
    return text(await _user(ctx, user_id), "status")


def _require_status(user: dict[str, Any], allowed: set[str], action: str) -> None:
    status = text(user, "status") or ""
    if status not in allowed:
        raise ToolFailure(
            f"cannot {action} {_who(user)}: their status is {status}; Okta allows this only for "
            + " or ".join(sorted(allowed)),
            code="invalid_state",
        )


# --- lifecycle ----------------------------------------------------------------------------------
async def _lifecycle(
    ctx: ToolContext,
    args: UserWriteInput,
    *,
    tool: str,
    method: str,
    verb: str,
    allowed: set[str] | None,
    effect: str,
    **kwargs: Any,
) -> ChangeResult:
    user_id = checked_identifier(args.user_id, "user id")

    async def plan_change() -> Plan:
        user = await _user(ctx, user_id)
        if allowed is not None:
            _require_status(user, allowed, verb)
        return Plan(summary=f"{verb.capitalize()} {_who(user)}, status {text(user, 'status')}: {effect}", fields=_user_fields(user))

    async def act() -> dict[str, Any]:
        await _okta_change(ctx, method, user_id, what="user", ident=user_id, **kwargs)
        return {"status_after": await _status_now(ctx, user_id)}

    return await guarded_change(ctx, tool=tool, args=args, output=ChangeResult, plan_change=plan_change, act=act)


@register(
    name="suspend_user", title="Suspend a user", access="write", input_model=UserWriteInput, output_model=ChangeResult,
    destructive=True, idempotent=True, okta_scopes=USERS_MANAGE,
)
async def suspend_user(ctx: ToolContext, args: UserWriteInput) -> ChangeResult:
    """Suspend an ACTIVE Okta user: they cannot sign in until unsuspended (their data and assignments stay). Asks for confirmation first."""
    return await _lifecycle(
        ctx, args, tool="suspend_user", method="suspend_user", verb="suspend", allowed={"ACTIVE"},
        effect="becomes SUSPENDED and cannot sign in until unsuspended.",
    )


@register(
    name="unsuspend_user", title="Unsuspend a user", access="write", input_model=UserWriteInput, output_model=ChangeResult,
    destructive=True, idempotent=True, okta_scopes=USERS_MANAGE,
)
async def unsuspend_user(ctx: ToolContext, args: UserWriteInput) -> ChangeResult:
    """Unsuspend a SUSPENDED Okta user: they can sign in again. Asks for confirmation first."""
    return await _lifecycle(
        ctx, args, tool="unsuspend_user", method="unsuspend_user", verb="unsuspend", allowed={"SUSPENDED"},
        effect="becomes ACTIVE and can sign in again.",
    )


@register(
    name="unlock_user", title="Unlock a user", access="write", input_model=UserWriteInput, output_model=ChangeResult,
    destructive=True, idempotent=True, okta_scopes=USERS_MANAGE,
)
async def unlock_user(ctx: ToolContext, args: UserWriteInput) -> ChangeResult:
    """Unlock a LOCKED_OUT Okta user (locked after too many failed sign-ins): they can sign in again with their password. Asks for confirmation first."""
    return await _lifecycle(
        ctx, args, tool="unlock_user", method="unlock_user", verb="unlock", allowed={"LOCKED_OUT"},
        effect="becomes ACTIVE and can sign in again with their current password.",
    )


@register(
    name="reset_user_factors", title="Reset a user's MFA factors", access="write", input_model=UserWriteInput,
    output_model=ChangeResult, destructive=True, idempotent=True, okta_scopes=USERS_MANAGE,
)
async def reset_user_factors(ctx: ToolContext, args: UserWriteInput) -> ChangeResult:
    """Remove every MFA factor a user has enrolled (e.g. a lost phone): they must enroll again at their next sign-in. Asks for confirmation first."""
    user_id = checked_identifier(args.user_id, "user id")

    async def plan_change() -> Plan:
        user = await _user(ctx, user_id)
        try:
            answer = await okta_read("/api/v1/users/{}/factors", user_id, info=ctx.okta)
        except OktaError as exc:
            raise tool_error(exc, what="user", ident=user_id) from None
        factors = [f for f in (answer.body or []) if isinstance(f, dict)]
        kinds = sorted({str(f.get("factorType")) for f in factors if f.get("factorType")})
        enrolled = f"{len(factors)} enrolled factor(s) ({', '.join(kinds)})" if factors else "no enrolled factors"
        return Plan(
            summary=f"Reset the MFA factors of {_who(user)}: removes {enrolled}; they must enroll again at their next sign-in.",
            fields=_user_fields(user),
        )

    async def act() -> dict[str, Any]:
        await _okta_change(ctx, "reset_factors", user_id, what="user", ident=user_id)
        return {}

    return await guarded_change(
        ctx, tool="reset_user_factors", args=args, output=ChangeResult, plan_change=plan_change, act=act
    )


class SessionsCleared(ChangeResult):
    sessions_cleared: bool = Field(default=False, description="Okta ended the sessions; the user must sign in again")


@register(
    name="clear_user_sessions", title="Sign a user out of Okta", access="write", input_model=UserWriteInput,
    output_model=SessionsCleared, destructive=True, idempotent=True, okta_scopes=USERS_MANAGE,
)
async def clear_user_sessions(ctx: ToolContext, args: UserWriteInput) -> SessionsCleared:
    """End every Okta session of one user (DELETE /api/v1/users/{id}/sessions): they must sign in again. Asks for confirmation first."""
    user_id = checked_identifier(args.user_id, "user id")

    async def plan_change() -> Plan:
        user = await _user(ctx, user_id)
        return Plan(
            summary=f"Sign {_who(user)} out of Okta: every Okta session of theirs ends and they must sign in again.",
            fields=_user_fields(user),
        )

    async def act() -> dict[str, Any]:
        await _okta_change(ctx, "revoke_user_sessions", user_id, what="user", ident=user_id)
        return {"sessions_cleared": True}

    return await guarded_change(
        ctx, tool="clear_user_sessions", args=args, output=SessionsCleared, plan_change=plan_change, act=act
    )


@register(
    name="deactivate_user", title="Deactivate a user", access="write", input_model=UserWriteInput, output_model=ChangeResult,
    destructive=True, idempotent=True, okta_scopes=USERS_MANAGE,
)
async def deactivate_user(ctx: ToolContext, args: UserWriteInput) -> ChangeResult:
    """Deactivate an Okta user (offboarding): they lose access to Okta and every app, and app accounts may be deprovisioned. It does not delete the user. Asks for confirmation first."""
    return await _lifecycle(
        ctx, args, tool="deactivate_user", method="deactivate_user", verb="deactivate",
        allowed={"STAGED", "PROVISIONED", "ACTIVE", "RECOVERY", "LOCKED_OUT", "PASSWORD_EXPIRED", "SUSPENDED"},
        effect="becomes DEPROVISIONED: no access to Okta or any app; apps may deprovision their accounts. Reactivating later needs an admin.",
        send_email=False,
    )


# --- group membership ---------------------------------------------------------------------------
class MembershipInput(WriteInput):
    group_id: OktaId = Field(description="Okta group id (00g...)")
    user_id: OktaId = Field(description="Okta user id (00u...)")


class MembershipChange(ChangeResult):
    group_id: str | None = None
    group_name: str | None = None


async def _membership(ctx: ToolContext, args: MembershipInput, *, tool: str, add: bool) -> MembershipChange:
    group_id = checked_identifier(args.group_id, "group id")
    user_id = checked_identifier(args.user_id, "user id")

    async def plan_change() -> Plan:
        group = await okta_object(ctx, "/api/v1/groups/{}", group_id, what="group", ident=group_id)
        user = await _user(ctx, user_id)
        name = text(group, "profile.name") or group_id
        if group.get("type") != "OKTA_GROUP":
            raise ToolFailure(
                f"cannot change the membership of {name}: it is a {group.get('type')} group, managed by Okta or its source",
                code="invalid_state",
            )
        if add:
            summary = (
                f"Add {_who(user)} to the group {name} ({group_id}): they gain the apps, policies and any admin "
                "roles assigned to that group."
            )
        else:
            summary = (
                f"Remove {_who(user)} from the group {name} ({group_id}): they lose the apps, policies and admin "
                "roles they get only through that group."
            )
        return Plan(summary=summary, fields={**_user_fields(user), "group_id": group_id, "group_name": name})

    method = "assign_user_to_group" if add else "unassign_user_from_group"

    async def act() -> dict[str, Any]:
        await _okta_change(ctx, method, group_id, user_id, what="group or user", ident=f"{group_id}/{user_id}")
        return {}

    return await guarded_change(ctx, tool=tool, args=args, output=MembershipChange, plan_change=plan_change, act=act)


@register(
    name="add_user_to_group", title="Add a user to a group", access="write", input_model=MembershipInput,
    output_model=MembershipChange, destructive=True, idempotent=True, okta_scopes=GROUPS_MANAGE + ("okta.users.read",),
)
async def add_user_to_group(ctx: ToolContext, args: MembershipInput) -> MembershipChange:
    """Add a user to an Okta group, giving them what the group grants (apps, policies, admin roles). Asks for confirmation first."""
    return await _membership(ctx, args, tool="add_user_to_group", add=True)


@register(
    name="remove_user_from_group", title="Remove a user from a group", access="write", input_model=MembershipInput,
    output_model=MembershipChange, destructive=True, idempotent=True, okta_scopes=GROUPS_MANAGE + ("okta.users.read",),
)
async def remove_user_from_group(ctx: ToolContext, args: MembershipInput) -> MembershipChange:
    """Remove a user from an Okta group, taking away what they get only through it. Asks for confirmation first."""
    return await _membership(ctx, args, tool="remove_user_from_group", add=False)
