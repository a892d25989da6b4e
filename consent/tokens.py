"""The resource server's one verifier: a bearer token in, a principal (or a precise refusal) out.
Only access tokens minted here, bound to our MCP resource, for a user whose consent still holds are
accepted; Okta's tokens, registration tokens and tokens for any other resource are not."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from oauth2_provider.models import AccessToken

from audit.models import Decision, EventType
from audit.services import RequestMeta, audit_record
from consent.selectors import consent_get_active

_TOKEN68 = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")


@dataclass(frozen=True)
class Principal:
    user_id: int
    okta_sub: str
    login: str
    client_id: str
    client_name: str
    scopes: frozenset[str]
    token_expires: datetime
    consent_id: int
    consent_expires: datetime
    groups: tuple[str, ...]
    group_ids: tuple[str, ...]


@dataclass(frozen=True)
class Refusal:
    status: int
    error: str
    description: str


def principal_for_token(raw: str, meta: RequestMeta) -> Principal | Refusal:
    if not raw or len(raw) > 512 or not _TOKEN68.match(raw):
        return Refusal(401, "invalid_token", "malformed token")
    token = (
        AccessToken.objects.select_related("user", "application")
        .filter(token_checksum=hashlib.sha256(raw.encode()).hexdigest())
        .first()
    )
    if token is None:
        # Unknown tokens (garbage, Okta's own tokens, revoked ones that were deleted) are logged, not
        # written to the audit table: an attacker must not be able to grow it at request rate.
        return Refusal(401, "invalid_token", "unknown token")
    reason = ""
    user = token.user
    if token.is_expired():
        reason = "token expired"
    elif user is None or token.application is None:
        reason = "token is not a user's access token"
    elif token.resource != [settings.MCP_RESOURCE]:
        reason = "token was not issued for this resource"
    elif not user.is_active:
        reason = "user disabled"
    consent = None
    if not reason:
        consent = consent_get_active(user=user, application=token.application, scopes=token.scope.split())
        if consent is None:
            reason = "consent revoked or expired"
    if reason or consent is None or user is None or token.application is None:
        audit_record(
            event_type=EventType.TOKEN_REJECTED,
            actor=user,
            client_id=token.application.client_id if token.application else "",
            target=f"access_token:{token.pk}",
            decision=Decision.DENIED,
            reason=reason,
            meta=meta,
        )
        return Refusal(401, "invalid_token", reason)
    return Principal(
        user_id=user.pk,
        okta_sub=user.okta_sub or "",
        login=user.okta_login or user.username,
        client_id=token.application.client_id,
        client_name=token.application.name,
        scopes=frozenset(token.scope.split()),
        token_expires=token.expires,
        consent_id=consent.pk,
        consent_expires=consent.expires_at,
        groups=tuple(user.okta_groups or ()),
        group_ids=tuple(user.okta_group_ids or ()),
    )


def seconds_left(when: datetime) -> int:
    return max(0, int((when - timezone.now()).total_seconds()))
