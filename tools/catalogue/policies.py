"""Policy tools: policies by type, and their rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from tools.catalogue.common import (
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

POLICIES_READ = ("okta.policies.read",)
PolicyType = Literal[
    "OKTA_SIGN_ON",
    "PASSWORD",
    "MFA_ENROLL",
    "IDP_DISCOVERY",
    "ACCESS_POLICY",
    "PROFILE_ENROLLMENT",
    "POST_AUTH_SESSION",
    "ENTITY_RISK",
    "DEVICE_SIGNAL_COLLECTION",
]


class PolicySummary(BaseModel):
    id: str
    name: str | None = None
    type: str | None = None
    status: str | None = None
    priority: int | None = Field(default=None, description="Lower numbers are evaluated first")
    system: bool | None = Field(default=None, description="A default policy Okta created")
    description: str | None = None
    created: datetime | None = None
    last_updated: datetime | None = None
    full: dict[str, Any] | None = FullField


def policy_summary(policy: dict[str, Any], full: bool = False) -> PolicySummary:
    return PolicySummary(
        id=str(policy.get("id") or ""),
        name=text(policy, "name"),
        type=text(policy, "type"),
        status=text(policy, "status"),
        priority=policy.get("priority"),
        system=policy.get("system"),
        description=text(policy, "description"),
        created=policy.get("created"),
        last_updated=policy.get("lastUpdated"),
        full=whole(policy, full),
    )


class PolicyPage(Page[PolicySummary]):
    pass


class ListPoliciesInput(ListInput):
    type: PolicyType = Field(description="Which kind of policy to list")
    status: Literal["ACTIVE", "INACTIVE"] | None = None
    q: Keyword | None = Field(default=None, description="Match on the policy name")


@register(
    name="list_policies", title="List policies of a type", access="read",
    input_model=ListPoliciesInput, output_model=PolicyPage, okta_scopes=POLICIES_READ,
)
async def list_policies(ctx: ToolContext, args: ListPoliciesInput) -> PolicyPage:
    """Okta policies of one type (sign-on, password, MFA enrollment, app access, ...), in priority order."""
    raw = await okta_page(
        ctx, tool="list_policies", path="/api/v1/policies",
        query={"type": args.type, "status": args.status, "q": args.q},
        cursor=args.cursor, limit=args.limit,
    )
    return page_of(PolicyPage, raw, policy_summary, args.full)


class PolicyInput(GetInput):
    policy_id: OktaId = Field(description="Okta policy id (00p... or rst...)")


@register(
    name="get_policy", title="Get a policy", access="read",
    input_model=PolicyInput, output_model=PolicySummary, okta_scopes=POLICIES_READ,
)
async def get_policy(ctx: ToolContext, args: PolicyInput) -> PolicySummary:
    """One Okta policy by id: name, type, status and priority (full=true for its settings)."""
    ident = checked_identifier(args.policy_id, "policy id")
    return policy_summary(await okta_object(ctx, "/api/v1/policies/{}", ident, what="policy", ident=ident), args.full)


class PolicyRuleSummary(BaseModel):
    id: str
    name: str | None = None
    type: str | None = None
    status: str | None = None
    priority: int | None = None
    system: bool | None = None
    access: str | None = Field(default=None, description="ALLOW or DENY, where the rule says")
    created: datetime | None = None
    last_updated: datetime | None = None
    full: dict[str, Any] | None = FullField


def policy_rule_summary(rule: dict[str, Any], full: bool = False) -> PolicyRuleSummary:
    return PolicyRuleSummary(
        id=str(rule.get("id") or ""),
        name=text(rule, "name"),
        type=text(rule, "type"),
        status=text(rule, "status"),
        priority=rule.get("priority"),
        system=rule.get("system"),
        access=text(rule, "actions.signon.access") or text(rule, "actions.appSignOn.access"),
        created=rule.get("created"),
        last_updated=rule.get("lastUpdated"),
        full=whole(rule, full),
    )


class PolicyRulePage(Page[PolicyRuleSummary]):
    pass


class PolicyListInput(ListInput):
    policy_id: OktaId = Field(description="Okta policy id (00p... or rst...)")


@register(
    name="list_policy_rules", title="Rules of a policy", access="read",
    input_model=PolicyListInput, output_model=PolicyRulePage, okta_scopes=POLICIES_READ,
)
async def list_policy_rules(ctx: ToolContext, args: PolicyListInput) -> PolicyRulePage:
    """The rules of one Okta policy, in priority order (full=true for conditions and actions)."""
    ident = checked_identifier(args.policy_id, "policy id")
    raw = await okta_page(
        ctx, tool="list_policy_rules", path="/api/v1/policies/{}/rules", ids=(ident,),
        cursor=args.cursor, limit=args.limit, okta_paged=False, not_found=("policy", ident),
    )
    return page_of(PolicyRulePage, raw, policy_rule_summary, args.full)


class PolicyRuleInput(GetInput):
    policy_id: OktaId = Field(description="Okta policy id (00p... or rst...)")
    rule_id: OktaId = Field(description="Okta policy rule id (0pr... or rul...)")


@register(
    name="get_policy_rule", title="Get a policy rule", access="read",
    input_model=PolicyRuleInput, output_model=PolicyRuleSummary, okta_scopes=POLICIES_READ,
)
async def get_policy_rule(ctx: ToolContext, args: PolicyRuleInput) -> PolicyRuleSummary:
    """One rule of one Okta policy: status, priority, and (full=true) its conditions and actions."""
    policy_id = checked_identifier(args.policy_id, "policy id")
    rule_id = checked_identifier(args.rule_id, "rule id")
    rule = await okta_object(ctx, "/api/v1/policies/{}/rules/{}", policy_id, rule_id, what="policy rule", ident=f"{policy_id}/{rule_id}")
    return policy_rule_summary(rule, args.full)
