"""Application tools: apps, and who is assigned to them (users directly or through groups)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from tools.catalogue.common import (
    Expression,
    FullField,
    GetInput,
    Keyword,
    ListInput,
    OktaId,
    Page,
    checked_identifier,
    okta_object,
    okta_page,
    page_of,
    text,
    whole,
)
from tools.context import ToolContext
from tools.registry import register

APPS_READ = ("okta.apps.read",)


class AppSummary(BaseModel):
    id: str
    label: str | None = Field(default=None, description="The name people see")
    name: str | None = Field(default=None, description="The app's integration key, e.g. oidc_client, bookmark, zoomus")
    status: str | None = None
    sign_on_mode: str | None = Field(default=None, description="e.g. SAML_2_0, OPENID_CONNECT, BOOKMARK")
    created: datetime | None = None
    last_updated: datetime | None = None
    full: dict[str, Any] | None = FullField


def app_summary(app: dict[str, Any], full: bool = False) -> AppSummary:
    return AppSummary(
        id=str(app.get("id") or ""),
        label=text(app, "label"),
        name=text(app, "name"),
        status=text(app, "status"),
        sign_on_mode=text(app, "signOnMode"),
        created=app.get("created"),
        last_updated=app.get("lastUpdated"),
        full=whole(app, full),
    )


class AppPage(Page[AppSummary]):
    pass


class ListAppsInput(ListInput):
    q: Keyword | None = Field(default=None, description="Starts-with match on the app's label or name")
    filter: Expression | None = Field(
        default=None,
        description='Okta filter: status, name, user.id or group.id with eq, e.g. status eq "ACTIVE" or user.id eq "00u..."',
    )


@register(
    name="list_apps", title="List or search applications", access="read",
    input_model=ListAppsInput, output_model=AppPage, okta_scopes=APPS_READ,
)
async def list_apps(ctx: ToolContext, args: ListAppsInput) -> AppPage:
    """List Okta applications, or find them by label (`q`) or an Okta filter (status, name, user.id, group.id)."""
    raw = await okta_page(
        ctx, tool="list_apps", path="/api/v1/apps", query={"q": args.q, "filter": args.filter},
        cursor=args.cursor, limit=args.limit,
    )
    return page_of(AppPage, raw, app_summary, args.full)


class AppInput(GetInput):
    app_id: OktaId = Field(description="Okta application id (0oa...)")


@register(
    name="get_app", title="Get an application", access="read",
    input_model=AppInput, output_model=AppSummary, okta_scopes=APPS_READ,
)
async def get_app(ctx: ToolContext, args: AppInput) -> AppSummary:
    """One Okta application by id: label, integration, status and sign-on mode."""
    ident = checked_identifier(args.app_id, "app id")
    return app_summary(await okta_object(ctx, "/api/v1/apps/{}", ident, what="application", ident=ident), args.full)


class AppListInput(ListInput):
    app_id: OktaId = Field(description="Okta application id (0oa...)")


class AppUserSummary(BaseModel):
    id: str = Field(description="The Okta user id")
    user_name: str | None = Field(default=None, description="The user's name in the app (often the login)")
    scope: str | None = Field(default=None, description="USER (assigned directly) or GROUP (through a group)")
    status: str | None = None
    sync_state: str | None = None
    last_updated: datetime | None = None
    full: dict[str, Any] | None = FullField


def app_user_summary(assignment: dict[str, Any], full: bool = False) -> AppUserSummary:
    return AppUserSummary(
        id=str(assignment.get("id") or ""),
        user_name=text(assignment, "credentials.userName"),
        scope=text(assignment, "scope"),
        status=text(assignment, "status"),
        sync_state=text(assignment, "syncState"),
        last_updated=assignment.get("lastUpdated"),
        full=whole(assignment, full),
    )


class AppUserPage(Page[AppUserSummary]):
    pass


@register(
    name="list_app_users", title="Users assigned to an app", access="read",
    input_model=AppListInput, output_model=AppUserPage, okta_scopes=APPS_READ,
)
async def list_app_users(ctx: ToolContext, args: AppListInput) -> AppUserPage:
    """The users assigned to one application, directly (USER) or through a group (GROUP)."""
    ident = checked_identifier(args.app_id, "app id")
    raw = await okta_page(
        ctx, tool="list_app_users", path="/api/v1/apps/{}/users", ids=(ident,),
        cursor=args.cursor, limit=args.limit, not_found=("application", ident),
    )
    return page_of(AppUserPage, raw, app_user_summary, args.full)


class AppGroupSummary(BaseModel):
    id: str = Field(description="The Okta group id")
    priority: int | None = None
    last_updated: datetime | None = None
    full: dict[str, Any] | None = FullField


def app_group_summary(assignment: dict[str, Any], full: bool = False) -> AppGroupSummary:
    return AppGroupSummary(
        id=str(assignment.get("id") or ""),
        priority=assignment.get("priority"),
        last_updated=assignment.get("lastUpdated"),
        full=whole(assignment, full),
    )


class AppGroupPage(Page[AppGroupSummary]):
    pass


@register(
    name="list_app_groups", title="Groups assigned to an app", access="read",
    input_model=AppListInput, output_model=AppGroupPage, okta_scopes=APPS_READ,
)
async def list_app_groups(ctx: ToolContext, args: AppListInput) -> AppGroupPage:
    """The groups assigned to one application (their members get the app)."""
    ident = checked_identifier(args.app_id, "app id")
    raw = await okta_page(
        ctx, tool="list_app_groups", path="/api/v1/apps/{}/groups", ids=(ident,),
        cursor=args.cursor, limit=args.limit, not_found=("application", ident),
    )
    return page_of(AppGroupPage, raw, app_group_summary, args.full)
