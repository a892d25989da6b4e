"""Group tools: groups, their members, their apps, and group rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from tools.catalogue.apps import AppPage, app_summary
from tools.catalogue.common import (
    Expression,
    FullField,
    GetInput,
    Keyword,
    ListInput,
    OktaId,
    Page,
    checked_identifier,
    dig,
    okta_object,
    okta_page,
    page_of,
    text,
    whole,
)
from tools.catalogue.users import GroupPage, GroupSummary, UserPage, group_summary, user_fields
from tools.context import ToolContext
from tools.registry import register

GROUPS_READ = ("okta.groups.read",)


class ListGroupsInput(ListInput):
    search: Expression | None = Field(
        default=None, description='Okta search expression, e.g. profile.name sw "Domain" or type eq "OKTA_GROUP"'
    )
    filter: Expression | None = Field(
        default=None, description='Okta filter expression (id, type, profile.name, dates), e.g. lastMembershipUpdated gt "2024-01-01T00:00:00.000Z"'
    )
    q: Keyword | None = Field(default=None, description="Starts-with match on the group name")


@register(
    name="list_groups", title="List or search Okta groups", access="read",
    input_model=ListGroupsInput, output_model=GroupPage, okta_scopes=GROUPS_READ,
)
async def list_groups(ctx: ToolContext, args: ListGroupsInput) -> GroupPage:
    """List Okta groups, or find them by name (`q`) or with an Okta `search` or `filter` expression."""
    raw = await okta_page(
        ctx, tool="list_groups", path="/api/v1/groups",
        query={"search": args.search, "filter": args.filter, "q": args.q},
        cursor=args.cursor, limit=args.limit,
    )
    return page_of(GroupPage, raw, group_summary, args.full)


class GroupInput(GetInput):
    group_id: OktaId = Field(description="Okta group id (00g...)")


@register(
    name="get_group", title="Get an Okta group", access="read",
    input_model=GroupInput, output_model=GroupSummary, okta_scopes=GROUPS_READ,
)
async def get_group(ctx: ToolContext, args: GroupInput) -> GroupSummary:
    """One Okta group by id: name, description, type and when its membership last changed."""
    ident = checked_identifier(args.group_id, "group id")
    return group_summary(await okta_object(ctx, "/api/v1/groups/{}", ident, what="group", ident=ident), args.full)


class GroupListInput(ListInput):
    group_id: OktaId = Field(description="Okta group id (00g...)")


@register(
    name="list_group_members", title="Members of a group", access="read",
    input_model=GroupListInput, output_model=UserPage, okta_scopes=("okta.groups.read", "okta.users.read"),
)
async def list_group_members(ctx: ToolContext, args: GroupListInput) -> UserPage:
    """The users who are members of one Okta group."""
    ident = checked_identifier(args.group_id, "group id")
    raw = await okta_page(
        ctx, tool="list_group_members", path="/api/v1/groups/{}/users", ids=(ident,),
        cursor=args.cursor, limit=args.limit, not_found=("group", ident),
    )
    return page_of(UserPage, raw, user_fields, args.full)


@register(
    name="list_group_apps", title="Apps assigned to a group", access="read",
    input_model=GroupListInput, output_model=AppPage, okta_scopes=("okta.groups.read", "okta.apps.read"),
)
async def list_group_apps(ctx: ToolContext, args: GroupListInput) -> AppPage:
    """The applications assigned to one Okta group (its members get these apps)."""
    ident = checked_identifier(args.group_id, "group id")
    raw = await okta_page(
        ctx, tool="list_group_apps", path="/api/v1/groups/{}/apps", ids=(ident,),
        cursor=args.cursor, limit=args.limit, not_found=("group", ident),
    )
    return page_of(AppPage, raw, app_summary, args.full)


# --- group rules ----------------------------------------------------------------------------------
class GroupRuleSummary(BaseModel):
    id: str
    name: str | None = None
    status: str | None = None
    expression: str | None = Field(default=None, description="Okta expression deciding who the rule adds")
    assigns_group_ids: list[str] = Field(default_factory=list, description="Groups the rule adds matching users to")
    created: datetime | None = None
    last_updated: datetime | None = None
    full: dict[str, Any] | None = FullField


def group_rule_summary(rule: dict[str, Any], full: bool = False) -> GroupRuleSummary:
    group_ids = dig(rule, "actions.assignUserToGroups.groupIds")
    return GroupRuleSummary(
        id=str(rule.get("id") or ""),
        name=text(rule, "name"),
        status=text(rule, "status"),
        expression=text(rule, "conditions.expression.value"),
        assigns_group_ids=[str(g) for g in group_ids] if isinstance(group_ids, list) else [],
        created=rule.get("created"),
        last_updated=rule.get("lastUpdated"),
        full=whole(rule, full),
    )


class GroupRulePage(Page[GroupRuleSummary]):
    pass


class ListGroupRulesInput(ListInput):
    search: Keyword | None = Field(default=None, description="Keyword matched against rule names")


@register(
    name="list_group_rules", title="List group rules", access="read",
    input_model=ListGroupRulesInput, output_model=GroupRulePage, okta_scopes=GROUPS_READ,
)
async def list_group_rules(ctx: ToolContext, args: ListGroupRulesInput) -> GroupRulePage:
    """Okta group rules: which expression adds users to which groups, and whether each rule is active."""
    raw = await okta_page(
        ctx, tool="list_group_rules", path="/api/v1/groups/rules", query={"search": args.search},
        cursor=args.cursor, limit=args.limit,
    )
    return page_of(GroupRulePage, raw, group_rule_summary, args.full)


class GroupRuleInput(GetInput):
    rule_id: OktaId = Field(description="Okta group rule id (0pr...)")


@register(
    name="get_group_rule", title="Get a group rule", access="read",
    input_model=GroupRuleInput, output_model=GroupRuleSummary, okta_scopes=GROUPS_READ,
)
async def get_group_rule(ctx: ToolContext, args: GroupRuleInput) -> GroupRuleSummary:
    """One Okta group rule by id: its expression, target groups and status."""
    ident = checked_identifier(args.rule_id, "rule id")
    return group_rule_summary(await okta_object(ctx, "/api/v1/groups/rules/{}", ident, what="group rule", ident=ident), args.full)
