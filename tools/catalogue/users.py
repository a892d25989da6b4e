"""User tools: who this connection acts for, and Okta users with their groups, app links, factors
and admin roles."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from consent.tokens import seconds_left
from tools.catalogue.common import (
    Expression,
    FullField,
    GetInput,
    Keyword,
    ListInput,
    Page,
    UserRef,
    as_text,
    checked_identifier,
    okta_object,
    okta_page,
    page_of,
    text,
    whole,
)
from tools.context import ToolContext
from tools.registry import register

USERS_READ = ("okta.users.read",)


class NoInput(BaseModel):
    model_config = {"extra": "forbid"}


class WhoAmI(BaseModel):
    login: str = Field(description="Your Okta login")
    okta_user_id: str
    client_id: str = Field(description="The AI client this token was issued to")
    client_name: str
    scopes: list[str]
    roles_groups: list[str] = Field(description="Your Okta groups as last read from Okta")
    token_expires_at: datetime
    token_expires_in_seconds: int
    consent_expires_at: datetime


@register(name="whoami", title="Who am I", access="read", input_model=NoInput, output_model=WhoAmI, open_world=False)
async def whoami(ctx: ToolContext, args: NoInput) -> WhoAmI:
    """Who this connection acts for: your Okta login, the client, its scopes and when the token and consent expire."""
    p = ctx.principal
    return WhoAmI(
        login=p.login,
        okta_user_id=p.okta_sub,
        client_id=p.client_id,
        client_name=p.client_name,
        scopes=sorted(p.scopes),
        roles_groups=list(p.groups),
        token_expires_at=p.token_expires,
        token_expires_in_seconds=seconds_left(p.token_expires),
        consent_expires_at=p.consent_expires,
    )


# --- users ---------------------------------------------------------------------------------------
class UserSummary(BaseModel):
    id: str
    status: str
    login: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    last_login: datetime | None = None
    created: datetime | None = None
    status_changed: datetime | None = None
    full: dict[str, Any] | None = FullField


def user_fields(user: dict[str, Any], full: bool = False) -> dict[str, Any]:
    """The UserSummary fields of an Okta user. Pages take these (see `page_of`): pydantic then
    validates a 200-user page in one call instead of 200."""
    profile = user.get("profile")
    if not isinstance(profile, dict):
        profile = {}
    return {
        "id": str(user.get("id") or ""),
        "status": str(user.get("status") or ""),
        "login": as_text(profile.get("login")) or "",
        "email": as_text(profile.get("email")),
        "first_name": as_text(profile.get("firstName")),
        "last_name": as_text(profile.get("lastName")),
        "last_login": user.get("lastLogin"),
        "created": user.get("created"),
        "status_changed": user.get("statusChanged"),
        "full": whole(user, full),
    }


def user_summary(user: dict[str, Any], full: bool = False) -> UserSummary:
    return UserSummary.model_validate(user_fields(user, full))


class UserPage(Page[UserSummary]):
    pass


class ListUsersInput(ListInput):
    search: Expression | None = Field(
        default=None,
        description='Okta search expression (most attributes, sw/eq/co), e.g. profile.lastName sw "Do" and status eq "ACTIVE"',
    )
    filter: Expression | None = Field(
        default=None, description='Okta filter expression (status, id, profile.login/email/firstName/lastName, dates), e.g. status eq "LOCKED_OUT"'
    )
    q: Keyword | None = Field(default=None, description="Starts-with match on first name, last name or email (simple lookup)")


@register(
    name="list_users", title="List or search Okta users", access="read",
    input_model=ListUsersInput, output_model=UserPage, okta_scopes=USERS_READ,
)
async def list_users(ctx: ToolContext, args: ListUsersInput) -> UserPage:
    """List Okta users, or find them with an Okta `search` or `filter` expression or a simple `q` lookup. Paged: pass next_cursor back as cursor."""
    raw = await okta_page(
        ctx, tool="list_users", path="/api/v1/users",
        query={"search": args.search, "filter": args.filter, "q": args.q},
        cursor=args.cursor, limit=args.limit,
    )
    return page_of(UserPage, raw, user_fields, args.full)


class GetUserInput(GetInput):
    user: UserRef


@register(name="get_user", title="Get an Okta user", access="read", input_model=GetUserInput, output_model=UserSummary, okta_scopes=USERS_READ)
async def get_user(ctx: ToolContext, args: GetUserInput) -> UserSummary:
    """Look up one Okta user by id or login: status, login, name, email, last login."""
    ident = checked_identifier(args.user, "user", login=True)
    return user_summary(await okta_object(ctx, "/api/v1/users/{}", ident, what="user", ident=ident), args.full)


async def resolve_user(ctx: ToolContext, user: str) -> dict[str, Any]:
    """The Okta user for an id or login (one call); the user's sub-resources are addressed by id."""
    ident = checked_identifier(user, "user", login=True)
    return await okta_object(ctx, "/api/v1/users/{}", ident, what="user", ident=ident)


async def user_id_for(ctx: ToolContext, user: str) -> str:
    ident = checked_identifier(user, "user", login=True)
    if "@" not in ident:
        return ident
    return str((await resolve_user(ctx, ident))["id"])


class UserListInput(ListInput):
    user: UserRef


# --- a user's groups ------------------------------------------------------------------------------
class GroupSummary(BaseModel):
    id: str
    name: str
    description: str | None = None
    type: str | None = Field(default=None, description="OKTA_GROUP, APP_GROUP (e.g. from AD) or BUILT_IN")
    created: datetime | None = None
    last_membership_updated: datetime | None = None
    full: dict[str, Any] | None = FullField


def group_summary(group: dict[str, Any], full: bool = False) -> GroupSummary:
    return GroupSummary(
        id=str(group.get("id") or ""),
        name=text(group, "profile.name") or "",
        description=text(group, "profile.description"),
        type=text(group, "type"),
        created=group.get("created"),
        last_membership_updated=group.get("lastMembershipUpdated"),
        full=whole(group, full),
    )


class GroupPage(Page[GroupSummary]):
    pass


@register(
    name="list_user_groups", title="A user's groups", access="read",
    input_model=UserListInput, output_model=GroupPage, okta_scopes=("okta.users.read", "okta.groups.read"),
)
async def list_user_groups(ctx: ToolContext, args: UserListInput) -> GroupPage:
    """The Okta groups one user (id or login) is a member of."""
    user_id = await user_id_for(ctx, args.user)
    raw = await okta_page(
        ctx, tool="list_user_groups", path="/api/v1/users/{}/groups", ids=(user_id,),
        cursor=args.cursor, limit=args.limit, okta_paged=False, not_found=("user", args.user),
    )
    return page_of(GroupPage, raw, group_summary, args.full)


# --- app links ------------------------------------------------------------------------------------
class AppLinkSummary(BaseModel):
    app_instance_id: str | None = Field(default=None, description="The app's id (0oa...)")
    app_name: str | None = None
    label: str | None = None
    link_url: str | None = None
    hidden: bool | None = None
    full: dict[str, Any] | None = FullField


def app_link_summary(link: dict[str, Any], full: bool = False) -> AppLinkSummary:
    return AppLinkSummary(
        app_instance_id=text(link, "appInstanceId"),
        app_name=text(link, "appName"),
        label=text(link, "label"),
        link_url=text(link, "linkUrl"),
        hidden=link.get("hidden"),
        full=whole(link, full),
    )


class AppLinkPage(Page[AppLinkSummary]):
    pass


@register(
    name="list_user_app_links", title="A user's apps", access="read",
    input_model=UserListInput, output_model=AppLinkPage, okta_scopes=USERS_READ,
)
async def list_user_app_links(ctx: ToolContext, args: UserListInput) -> AppLinkPage:
    """The applications one user (id or login) can sign in to (their Okta dashboard app links)."""
    user_id = await user_id_for(ctx, args.user)
    raw = await okta_page(
        ctx, tool="list_user_app_links", path="/api/v1/users/{}/appLinks", ids=(user_id,),
        cursor=args.cursor, limit=args.limit, okta_paged=False, not_found=("user", args.user),
    )
    return page_of(AppLinkPage, raw, app_link_summary, args.full)


# --- factors --------------------------------------------------------------------------------------
class FactorSummary(BaseModel):
    id: str
    factor_type: str | None = Field(default=None, description="e.g. push, token:software:totp, sms, signed_nonce")
    provider: str | None = None
    vendor_name: str | None = None
    status: str | None = None
    device: str | None = Field(default=None, description="Device or credential name, when Okta gives one")
    created: datetime | None = None
    last_updated: datetime | None = None
    full: dict[str, Any] | None = FullField


def factor_summary(factor: dict[str, Any], full: bool = False) -> FactorSummary:
    return FactorSummary(
        id=str(factor.get("id") or ""),
        factor_type=text(factor, "factorType"),
        provider=text(factor, "provider"),
        vendor_name=text(factor, "vendorName"),
        status=text(factor, "status"),
        device=text(factor, "profile.name") or text(factor, "profile.deviceType"),
        created=factor.get("created"),
        last_updated=factor.get("lastUpdated"),
        full=whole(factor, full),
    )


class FactorPage(Page[FactorSummary]):
    pass


@register(
    name="list_user_factors", title="A user's enrolled factors", access="read",
    input_model=UserListInput, output_model=FactorPage, okta_scopes=USERS_READ,
)
async def list_user_factors(ctx: ToolContext, args: UserListInput) -> FactorPage:
    """The MFA factors one user (id or login) has enrolled: type, provider and status."""
    user_id = await user_id_for(ctx, args.user)
    raw = await okta_page(
        ctx, tool="list_user_factors", path="/api/v1/users/{}/factors", ids=(user_id,),
        cursor=args.cursor, limit=args.limit, okta_paged=False, not_found=("user", args.user),
    )
    return page_of(FactorPage, raw, factor_summary, args.full)


# --- admin roles ----------------------------------------------------------------------------------
class RoleSummary(BaseModel):
    id: str | None = None
    type: str | None = Field(default=None, description="e.g. SUPER_ADMIN, READ_ONLY_ADMIN, or CUSTOM")
    label: str | None = None
    status: str | None = None
    assignment_type: str | None = Field(default=None, description="USER (direct) or GROUP (through a group)")
    assigned_through: str | None = Field(default=None, description="The group or user the role is assigned to")
    full: dict[str, Any] | None = FullField


def role_summary(role: dict[str, Any], full: bool = False) -> RoleSummary:
    assignee = text(role, "_links.assignee.href")
    return RoleSummary(
        id=text(role, "id"),
        type=text(role, "type"),
        label=text(role, "label"),
        status=text(role, "status"),
        assignment_type=text(role, "assignmentType"),
        assigned_through=assignee.rsplit("/", 1)[-1] if assignee else None,
        full=whole(role, full),
    )


class RolePage(Page[RoleSummary]):
    pass


@register(
    name="list_user_roles", title="A user's admin roles", access="read",
    input_model=UserListInput, output_model=RolePage, okta_scopes=("okta.roles.read",),
)
async def list_user_roles(ctx: ToolContext, args: UserListInput) -> RolePage:
    """The Okta administrator roles one user (id or login) holds, directly or through a group."""
    user_id = await user_id_for(ctx, args.user)
    raw = await okta_page(
        ctx, tool="list_user_roles", path="/api/v1/users/{}/roles", ids=(user_id,),
        cursor=args.cursor, limit=args.limit, okta_paged=False, not_found=("user", args.user),
    )
    return page_of(RolePage, raw, role_summary, args.full)

