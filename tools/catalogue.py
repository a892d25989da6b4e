"""The tools. Each is a typed function: validated input model in, Pydantic result out; Okta calls go
through `tools.okta.okta_call` with the server's own credential."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, Field

from consent.tokens import seconds_left
from tools.context import ToolContext, ToolFailure
from tools.okta import OktaError, okta_call
from tools.registry import register

# Okta ids are [0-9A-Za-z]; logins are emails or simple names. Nothing that could change the API
# path (/, .., %2f, ?, #, whitespace) gets through to a URL.
OKTA_ID_OR_LOGIN = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._@+\-]{0,99}$")


def checked_identifier(value: str, what: str) -> str:
    if not OKTA_ID_OR_LOGIN.match(value):
        raise ToolFailure(f"invalid {what}: use an Okta id or login (letters, digits, . _ @ + -)", code="invalid_id")
    return value


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


@register(name="whoami", title="Who am I", access="read", input_model=NoInput, output_model=WhoAmI)
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


class GetUserInput(BaseModel):
    model_config = {"extra": "forbid"}
    user: str = Field(description="Okta user id (00u...) or login (e.g. jane.doe@example.com)", min_length=1, max_length=100)
    full: bool = Field(default=False, description="Return the whole Okta user object instead of the compact summary")


class UserSummary(BaseModel):
    id: str
    status: str
    login: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    last_login: datetime | None = None
    created: datetime | None = None
    full: dict | None = Field(default=None, description="The whole Okta object when full=true")


def user_summary(user: object, full: bool = False) -> UserSummary:
    profile = getattr(user, "profile", None)
    status = getattr(user, "status", "")
    return UserSummary(
        id=str(getattr(user, "id", "")),
        status=str(getattr(status, "value", status) or ""),
        login=str(getattr(profile, "login", "") or ""),
        email=getattr(profile, "email", None),
        first_name=getattr(profile, "first_name", None),
        last_name=getattr(profile, "last_name", None),
        last_login=getattr(user, "last_login", None),
        created=getattr(user, "created", None),
        full=user.to_dict() if full and hasattr(user, "to_dict") else None,
    )


@register(name="get_user", title="Get an Okta user", access="read", input_model=GetUserInput, output_model=UserSummary)
async def get_user(ctx: ToolContext, args: GetUserInput) -> UserSummary:
    """Look up one Okta user by id or login: status, login, name, email, last login."""
    ident = checked_identifier(args.user, "user")
    try:
        user, _ = await okta_call("get_user", ident, info=ctx.okta)
    except OktaError as exc:
        if exc.status == 404:
            raise ToolFailure(f"no Okta user {ident!r}", code=exc.code or "not_found") from None
        raise ToolFailure(str(exc), code=exc.code) from None
    return user_summary(user, args.full)
