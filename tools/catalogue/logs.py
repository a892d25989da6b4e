"""System Log tools: a bounded, newest-first query, and a user's recent sign-in failures."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, Field, model_validator

from tools.catalogue.common import (
    Expression,
    FullField,
    ListInput,
    Page,
    UserRef,
    checked_identifier,
    okta_page,
    text,
    whole,
)
from tools.catalogue.users import UserSummary, resolve_user, user_summary
from tools.context import ToolContext, ToolFailure
from tools.registry import register

LOGS_READ = ("okta.logs.read",)
# Okta keeps System Log events for 90 days; a window may not be longer.
MAX_WINDOW = timedelta(days=90)
DEFAULT_WINDOW = timedelta(hours=24)


class LogActor(BaseModel):
    id: str | None = None
    type: str | None = None
    alternate_id: str | None = Field(default=None, description="Usually the login")
    display_name: str | None = None


def _actor(obj: Any) -> LogActor:
    return LogActor(
        id=text(obj, "id"),
        type=text(obj, "type"),
        alternate_id=text(obj, "alternateId"),
        display_name=text(obj, "displayName"),
    )


class LogEventSummary(BaseModel):
    uuid: str | None = None
    published: datetime | None = None
    event_type: str | None = Field(default=None, description="e.g. user.session.start, group.user_membership.add")
    display_message: str | None = None
    severity: str | None = None
    outcome: str | None = Field(default=None, description="SUCCESS, FAILURE, DENY, ...")
    reason: str | None = Field(default=None, description="Why, when Okta says (e.g. INVALID_CREDENTIALS)")
    actor: LogActor | None = None
    targets: list[LogActor] = Field(default_factory=list)
    client_ip: str | None = None
    client_location: str | None = Field(default=None, description="City and country of the client's IP")
    user_agent: str | None = None
    okta_request_id: str | None = None
    full: dict[str, Any] | None = FullField


def log_event_summary(event: dict[str, Any], full: bool = False) -> LogEventSummary:
    targets = event.get("target") if isinstance(event.get("target"), list) else []
    place = ", ".join(
        p for p in (text(event, "client.geographicalContext.city"), text(event, "client.geographicalContext.country")) if p
    )
    return LogEventSummary(
        uuid=text(event, "uuid"),
        published=event.get("published"),
        event_type=text(event, "eventType"),
        display_message=text(event, "displayMessage"),
        severity=text(event, "severity"),
        outcome=text(event, "outcome.result"),
        reason=text(event, "outcome.reason"),
        actor=_actor(event.get("actor")) if isinstance(event.get("actor"), dict) else None,
        targets=[_actor(t) for t in targets if isinstance(t, dict)],
        client_ip=text(event, "client.ipAddress"),
        client_location=place or None,
        user_agent=text(event, "client.userAgent.rawUserAgent"),
        okta_request_id=text(event, "debugContext.debugData.requestId"),
        full=whole(event, full),
    )


class LogPage(Page[LogEventSummary]):
    since: str = Field(description="Start of the window searched")
    until: str = Field(description="End of the window searched")


def okta_time(moment: datetime) -> str:
    """Okta's timestamp format: UTC with milliseconds."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class QueryLogInput(ListInput):
    since: datetime | None = Field(default=None, description="Start of the window (ISO 8601); default: 24 h before `until`")
    until: datetime | None = Field(default=None, description="End of the window (ISO 8601); default: now")
    filter: Expression | None = Field(
        default=None,
        description='Okta System Log filter, e.g. eventType eq "group.user_membership.add" and target.id eq "00g..."',
    )
    q: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$",
        description="Keywords matched anywhere in the event (at most 10 words of at most 40 characters)",
    )

    @model_validator(mode="after")
    def _bounded(self) -> "QueryLogInput":
        if self.q is not None:
            words = self.q.split()
            if len(words) > 10 or any(len(w) > 40 for w in words):
                raise ValueError("q: at most 10 keywords of at most 40 characters each")
        return self


def _window(since: datetime | None, until: datetime | None) -> tuple[str, str]:
    now = datetime.now(timezone.utc)
    end = until or now
    if end.tzinfo is None:
        end = end.replace(tzinfo=timezone.utc)
    end = min(end, now)
    start = since or end - DEFAULT_WINDOW
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    if start >= end:
        raise ToolFailure("invalid window: since must be before until (and until not in the future)", code="invalid_window")
    if end - start > MAX_WINDOW:
        raise ToolFailure("invalid window: at most 90 days (Okta keeps System Log events for 90 days)", code="invalid_window")
    return okta_time(start), okta_time(end)


@register(
    name="query_system_log", title="Query the System Log", access="read",
    input_model=QueryLogInput, output_model=LogPage, okta_scopes=LOGS_READ,
)
async def query_system_log(ctx: ToolContext, args: QueryLogInput) -> LogPage:
    """Okta System Log events in a time window (default: the last 24 h), newest first, narrowed by an Okta filter expression and/or keywords. Paged."""
    since, until = (None, None) if args.cursor else _window(args.since, args.until)
    raw = await okta_page(
        ctx, tool="query_system_log", path="/api/v1/logs",
        query={
            "filter": args.filter,
            "q": args.q,
            "since": okta_time(args.since) if args.since else None,
            "until": okta_time(args.until) if args.until else None,
        },
        fixed={"since": since, "until": until, "sortOrder": "DESCENDING"},
        cursor=args.cursor, limit=args.limit,
    )
    items = [log_event_summary(e, args.full) for e in raw.items]
    window = raw.query
    return LogPage(
        items=items, returned=len(items), next_cursor=raw.next_cursor,
        since=str(window.get("since", "")), until=str(window.get("until", "")),
    )


# --- a user's sign-in failures --------------------------------------------------------------------
class SignInFailuresInput(ListInput):
    user: UserRef
    since_hours: int = Field(default=168, ge=1, le=2160, description="How far back to look, in hours (default 7 days)")


class SignInFailures(Page[LogEventSummary]):
    user: UserSummary
    status_note: str | None = Field(default=None, description="What the user's Okta status means for signing in")
    since: str
    until: str


STATUS_NOTES = {
    "LOCKED_OUT": "The account is locked out (too many failed sign-in attempts): the user cannot sign in until it is unlocked.",
    "SUSPENDED": "The account is suspended by an administrator: the user cannot sign in until it is unsuspended.",
    "DEPROVISIONED": "The account is deactivated: the user cannot sign in.",
    "PASSWORD_EXPIRED": "The password has expired: the user must change it at the next sign-in.",
    "RECOVERY": "A password reset is in progress.",
    "STAGED": "The account was created but never activated.",
    "PROVISIONED": "The account is activated but the user has not set a password yet.",
}

# Sign-in attempts that did not succeed: the session start itself, MFA and app sign-on, and lockouts.
FAILURE_FILTER = (
    'actor.id eq "{user_id}" and (outcome.result eq "FAILURE" or outcome.result eq "DENY") and '
    '(eventType eq "user.session.start" or eventType sw "user.authentication" or eventType eq "user.account.lock")'
)


@register(
    name="user_sign_in_failures", title="A user's recent sign-in failures", access="read",
    input_model=SignInFailuresInput, output_model=SignInFailures, okta_scopes=("okta.users.read", "okta.logs.read"),
)
async def user_sign_in_failures(ctx: ToolContext, args: SignInFailuresInput) -> SignInFailures:
    """Why can't this person sign in? Their Okta status and their failed sign-ins, MFA failures and lockouts from the System Log (default: the last 7 days), newest first."""
    user = await resolve_user(ctx, args.user)
    user_id = checked_identifier(str(user.get("id") or ""), "user id")
    until = datetime.now(timezone.utc)
    since, until_text = (None, None) if args.cursor else _window(until - timedelta(hours=args.since_hours), until)
    raw = await okta_page(
        ctx, tool="user_sign_in_failures", path="/api/v1/logs",
        query={"filter": FAILURE_FILTER.format(user_id=user_id)},
        fixed={"since": since, "until": until_text, "sortOrder": "DESCENDING"},
        cursor=args.cursor, limit=args.limit,
    )
    summary = user_summary(user)
    items = [log_event_summary(e, args.full) for e in raw.items]
    return SignInFailures(
        user=summary,
        status_note=STATUS_NOTES.get(summary.status),
        items=items,
        returned=len(items),
        next_cursor=raw.next_cursor,
        since=str(raw.query.get("since", "")),
        until=str(raw.query.get("until", "")),
    )

