"""Writes for users: created and updated from verified Okta claims, their groups re-read from Okta."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.models import Decision, EventType
from audit.services import RequestMeta, audit_record
from consent.principal_cache import authz_changed
from tools.okta import OktaError, OktaUserState, okta_user_state

logger = logging.getLogger("okta_mcp.accounts")


def _fetch_state(okta_sub: str) -> OktaUserState | None:
    try:
        return async_to_sync(okta_user_state)(okta_sub)
    except OktaError as exc:
        logger.warning("could not read user %s from Okta: %s", okta_sub, exc)
        return None
    except Exception:  # noqa: BLE001 - an unreadable answer is "could not ask Okta", never a 500
        logger.exception("unexpected failure reading user %s from Okta", okta_sub)
        return None


def user_login_from_claims(*, claims: dict[str, Any], meta: RequestMeta) -> User:
    """Create or update the user whose verified ID token carried `claims` (keyed by `sub`), with the
    groups Okta has for them now; the `groups` claim is only the fallback when the API cannot be read."""
    sub = str(claims["sub"])
    state = _fetch_state(sub)
    if state is not None:
        groups, group_ids, status = state.groups, state.group_ids, state.status
    else:
        groups, group_ids, status = sorted(str(g) for g in claims.get("groups") or []), [], "ACTIVE"
    login = str(claims.get("preferred_username") or claims.get("email") or sub)
    with transaction.atomic():
        user, created = User.objects.select_for_update().get_or_create(
            okta_sub=sub, defaults={"username": f"okta:{sub}"[:150]}
        )
        user.okta_login = login
        user.email = str(claims.get("email") or "")
        user.first_name = str(claims.get("given_name") or "")[:150]
        user.last_name = str(claims.get("family_name") or "")[:150]
        user.okta_groups = groups
        user.okta_group_ids = group_ids
        user.okta_status = status
        user.groups_synced_at = timezone.now()
        user.set_unusable_password() if created else None
        user.save()
        authz_changed()
        audit_record(
            event_type=EventType.LOGIN_SUCCESS,
            actor=user,
            target=f"user:{user.pk}",
            decision=Decision.ALLOWED,
            details={"groups": groups, "groups_source": "okta_api" if state else "id_token", "new_user": created},
            meta=meta,
        )
    cache.delete(_cache_key(user.pk))
    return user


def user_login_failed(*, reason: str, meta: RequestMeta, login: str = "") -> None:
    audit_record(
        event_type=EventType.LOGIN_FAILURE,
        decision=Decision.DENIED,
        reason=reason,
        details={"login": login} if login else {},
        meta=meta,
    )


def _cache_key(user_pk: int) -> str:
    return f"okta-user-state:{user_pk}"


def user_refresh_from_okta(*, user: User) -> str | None:
    """Re-read status and groups from Okta (cached briefly) and store them on the user. Returns the
    Okta status, or None when Okta could not be asked."""
    key = _cache_key(user.pk)
    cached = cache.get(key)
    if cached is not None:
        return str(cached)
    state = _fetch_state(user.okta_sub or "")
    if state is None:
        return None
    with transaction.atomic():
        changed = (user.okta_groups, user.okta_group_ids, user.okta_status) != (
            state.groups,
            state.group_ids,
            state.status,
        )
        User.objects.filter(pk=user.pk).update(
            okta_groups=state.groups,
            okta_group_ids=state.group_ids,
            okta_status=state.status,
            groups_synced_at=timezone.now(),
        )
        user.okta_groups, user.okta_group_ids, user.okta_status = state.groups, state.group_ids, state.status
        if changed:
            authz_changed()
            logger.info("user %s: Okta status/groups changed", user.pk)
    cache.set(key, state.status, settings.OKTA_GROUPS_CACHE_SECONDS)
    return state.status
