"""Writes for consent, login sessions and tokens. The consent page, the OAuth validator, the admin
actions and the management commands all call these; each writes its audit row in its own
transaction."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, Grant, RefreshToken

from audit.models import Decision, EventType
from audit.services import RequestMeta, audit_record
from consent.models import Consent, LoginSession
from consent.principal_cache import authz_changed


class ConsentError(Exception):
    """An expected failure of a consent operation, with a message fit for the operator."""


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def consent_grant(
    *,
    user: Any,
    application: Application,
    scopes: frozenset[str],
    tools: list[str],
    redirect_uri: str,
    meta: RequestMeta,
) -> Consent:
    now = timezone.now()
    with transaction.atomic():
        consent = Consent.objects.create(
            user=user,
            application=application,
            scopes=" ".join(sorted(scopes)),
            tools=sorted(tools),
            redirect_uri=redirect_uri,
            granted_at=now,
            expires_at=now + timedelta(seconds=settings.CONSENT_LIFETIME_SECONDS),
        )
        audit_record(
            event_type=EventType.CONSENT_GRANTED,
            actor=user,
            client_id=application.client_id,
            target=f"consent:{consent.pk}",
            decision=Decision.ALLOWED,
            details={"scopes": sorted(scopes), "tools": sorted(tools), "expires_at": consent.expires_at.isoformat()},
            meta=meta,
        )
    return consent


def consent_deny(*, user: Any, application: Application, scopes: frozenset[str], meta: RequestMeta) -> None:
    audit_record(
        event_type=EventType.CONSENT_DENIED,
        actor=user,
        client_id=application.client_id,
        decision=Decision.DENIED,
        reason="user denied the consent page",
        details={"scopes": sorted(scopes)},
        meta=meta,
    )


def consent_record_reuse(*, consent: Consent, meta: RequestMeta) -> None:
    audit_record(
        event_type=EventType.CONSENT_REUSED,
        actor=consent.user,
        client_id=consent.application.client_id,
        target=f"consent:{consent.pk}",
        decision=Decision.ALLOWED,
        reason="valid consent on record",
        meta=meta,
    )


def authorization_deny(
    *, user: Any, client_id: str, error: str, description: str, meta: RequestMeta
) -> None:
    audit_record(
        event_type=EventType.AUTHORIZATION_DENIED,
        actor=user,
        client_id=client_id,
        decision=Decision.DENIED,
        reason=error,
        details={"description": description},
        meta=meta,
    )


@dataclass(frozen=True)
class RevocationSummary:
    consents: int
    access_tokens: int
    refresh_tokens: int
    sessions: int

    def __str__(self) -> str:
        return (
            f"revoked {self.consents} consent(s), {self.access_tokens} access token(s), "
            f"{self.refresh_tokens} refresh token(s), {self.sessions} login session(s)"
        )


def _revoke_tokens(*, user_id: int, application_id: int) -> tuple[int, int]:
    access = AccessToken.objects.filter(user_id=user_id, application_id=application_id)
    # Counted first: revoking a refresh token deletes its access token too.
    access_count = access.count()
    refresh = list(
        RefreshToken.objects.select_for_update().filter(
            user_id=user_id, application_id=application_id, revoked__isnull=True
        )
    )
    for rt in refresh:
        rt.revoke()
    access.delete()
    Grant.objects.filter(user_id=user_id, application_id=application_id).delete()
    return access_count, len(refresh)


def consent_revoke(
    *,
    user: Any | None = None,
    application: Application | None = None,
    everything: bool = False,
    reason: str,
    actor: Any | None,
    meta: RequestMeta,
    consent_ids: list[int] | None = None,
) -> RevocationSummary:
    """Revoke the matching active consents and cut off every access token, refresh token and login
    session of those (user, client) pairs. Safe to run twice: the second run finds nothing."""
    if not (user or application or everything or consent_ids):
        raise ConsentError("name a user, a client, consents, or everything")
    now = timezone.now()
    with transaction.atomic():
        qs = Consent.objects.select_for_update().filter(revoked_at__isnull=True)
        if user is not None:
            qs = qs.filter(user=user)
        if application is not None:
            qs = qs.filter(application=application)
        if consent_ids is not None:
            qs = qs.filter(pk__in=consent_ids)
        consents = list(qs.select_related("user", "application"))
        pairs = {(c.user_id, c.application_id) for c in consents}
        if user is not None and application is not None:
            pairs.add((user.pk, application.pk))
        elif user is not None and consent_ids is None:
            pairs |= set(
                RefreshToken.objects.filter(user=user, revoked__isnull=True).values_list("user_id", "application_id")
            ) | set(AccessToken.objects.filter(user=user).values_list("user_id", "application_id"))
        elif application is not None and consent_ids is None:
            pairs |= set(
                RefreshToken.objects.filter(application=application, revoked__isnull=True).values_list(
                    "user_id", "application_id"
                )
            ) | set(AccessToken.objects.filter(application=application).values_list("user_id", "application_id"))
        elif everything:
            pairs |= set(AccessToken.objects.exclude(user=None).values_list("user_id", "application_id")) | set(
                RefreshToken.objects.filter(revoked__isnull=True).values_list("user_id", "application_id")
            )
        access = refresh = sessions = 0
        for user_id, application_id in pairs:
            if user_id is None:
                continue
            a, r = _revoke_tokens(user_id=user_id, application_id=application_id)
            access += a
            refresh += r
            sessions += LoginSession.objects.filter(
                user_id=user_id, application_id=application_id, revoked_at__isnull=True
            ).update(revoked_at=now)
        if consents:
            authz_changed()
        for consent in consents:
            consent.revoked_at = now
            consent.revoked_reason = reason[:255]
            consent.save(update_fields=["revoked_at", "revoked_reason"])
            audit_record(
                event_type=EventType.CONSENT_REVOKED,
                actor=actor,
                client_id=consent.application.client_id,
                target=f"consent:{consent.pk}",
                reason=reason,
                details={"user": str(consent.user), "user_id": consent.user_id},
                meta=meta,
            )
        summary = RevocationSummary(len(consents), access, refresh, sessions)
        if access or refresh or sessions:
            audit_record(
                event_type=EventType.TOKEN_REVOKED,
                actor=actor,
                client_id=application.client_id if application else "",
                target=f"user:{user.pk}" if user else ("all" if everything else "consents"),
                reason=reason,
                # Keys avoid the word "token": audit.services.redact would take the counts for secrets.
                details={"revoked": {"access": access, "refresh": refresh, "login_sessions": sessions}},
                meta=meta,
            )
    return summary


def login_session_start(*, user: Any, application: Application, code: str, token_family: uuid.UUID) -> LoginSession:
    """Called when a code is redeemed: ties the new refresh-token family to the consent it rests on
    and starts the absolute login-session clock."""
    from consent.selectors import consent_get_active

    consent = consent_get_active(user=user, application=application)
    if consent is None:
        raise ConsentError("no active consent")
    now = timezone.now()
    return LoginSession.objects.create(
        token_family=token_family,
        user=user,
        application=application,
        consent=consent,
        code_hash=code_hash(code),
        started_at=now,
        ends_at=now + timedelta(seconds=settings.LOGIN_SESSION_SECONDS),
    )


def code_replay_revoke(*, code: str, client_id: str, meta: RequestMeta) -> bool:
    """A code that was already redeemed was presented again: revoke everything it issued
    (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3). Returns whether the code was a known redeemed one."""
    with transaction.atomic():
        session = (
            LoginSession.objects.select_for_update()
            .select_related("user", "application")
            .filter(code_hash=code_hash(code))
            .first()
        )
        if session is None:
            return False
        RefreshToken.revoke_family(session.token_family)
        AccessToken.objects.filter(
            source_refresh_token__token_family=session.token_family
        ).delete()
        first_access = RefreshToken.objects.filter(token_family=session.token_family).values_list(
            "access_token_id", flat=True
        )
        AccessToken.objects.filter(pk__in=[pk for pk in first_access if pk]).delete()
        if session.revoked_at is None:
            session.revoked_at = timezone.now()
            session.save(update_fields=["revoked_at"])
        audit_record(
            event_type=EventType.TOKEN_REUSE_DETECTED,
            actor=session.user,
            client_id=client_id,
            target=f"session:{session.token_family}",
            decision=Decision.DENIED,
            reason="authorization code replayed; tokens it issued revoked",
            meta=meta,
        )
    return True


def consent_mark_expired(*, meta: RequestMeta) -> int:
    """Record, once per consent, that it expired (for the audit trail and cron)."""
    now = timezone.now()
    with transaction.atomic():
        expired = list(
            Consent.objects.select_for_update()
            .select_related("user", "application")
            .filter(revoked_at__isnull=True, expires_at__lte=now, expiry_recorded=False)
        )
        for consent in expired:
            consent.expiry_recorded = True
            consent.save(update_fields=["expiry_recorded"])
            audit_record(
                event_type=EventType.CONSENT_EXPIRED,
                actor=consent.user,
                client_id=consent.application.client_id,
                target=f"consent:{consent.pk}",
                meta=meta,
            )
    return len(expired)


def client_register(
    *,
    name: str,
    client_id: str,
    redirect_uris: list[str],
    confidential: bool,
    actor: Any,
    meta: RequestMeta,
) -> tuple[Application, str | None]:
    """A static client registration. Returns the client and, for a confidential client, its secret
    in clear: the only time it exists outside its hash."""
    from oauth2_provider.generators import generate_client_secret

    from consent.oauth_validator import redirect_uri_allowed

    bad = [u for u in redirect_uris if not redirect_uri_allowed(u)]
    if bad or not redirect_uris:
        raise ConsentError(f"redirect URIs must be https or loopback http: {', '.join(bad) or '(none given)'}")
    if Application.objects.filter(client_id=client_id).exists():
        raise ConsentError(f"client {client_id} already exists")
    secret = generate_client_secret() if confidential else None
    with transaction.atomic():
        app = Application(
            name=name,
            client_id=client_id,
            client_type=Application.CLIENT_CONFIDENTIAL if confidential else Application.CLIENT_PUBLIC,
            authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=" ".join(redirect_uris),
            client_secret=secret or "",
            skip_authorization=False,
            algorithm="",
        )
        app.full_clean(exclude=["user"])
        app.save()
        audit_record(
            event_type=EventType.CLIENT_REGISTERED,
            actor=actor,
            client_id=client_id,
            target=f"client:{client_id}",
            details={"name": name, "redirect_uris": redirect_uris, "confidential": confidential},
            meta=meta,
        )
    return app, secret


def tokens_revoke(
    *,
    access_token_ids: list[int] | None = None,
    refresh_token_ids: list[int] | None = None,
    grant_ids: list[int] | None = None,
    id_token_ids: list[int] | None = None,
    reason: str,
    actor: Any,
    meta: RequestMeta,
) -> int:
    """Revoke individual credentials (the token admins' "revoke selected" actions). An access
    token goes with its refresh token (DOT's revoke_access_token, as for RFC 7009), a refresh token
    with its access token; revoked refresh tokens stay as tombstones for reuse detection; codes and
    ID tokens are deleted, which is their revocation. Returns how many were revoked."""
    from oauth2_provider.models import IDToken, revoke_access_token

    revoked = 0
    with transaction.atomic():
        for at in AccessToken.objects.filter(pk__in=access_token_ids or []):
            revoke_access_token(at)
            revoked += 1
        for rt in RefreshToken.objects.filter(pk__in=refresh_token_ids or [], revoked__isnull=True):
            rt.revoke()
            revoked += 1
        revoked += Grant.objects.filter(pk__in=grant_ids or []).delete()[1].get(Grant._meta.label, 0)
        revoked += IDToken.objects.filter(pk__in=id_token_ids or []).delete()[1].get(IDToken._meta.label, 0)
        if revoked:
            audit_record(
                event_type=EventType.TOKEN_REVOKED,
                actor=actor,
                target="tokens",
                reason=reason,
                details={
                    "access": sorted(access_token_ids or []),
                    "refresh": sorted(refresh_token_ids or []),
                    "codes": sorted(grant_ids or []),
                    "oidc": sorted(id_token_ids or []),
                    "revoked": revoked,
                },
                meta=meta,
            )
    return revoked


@dataclass(frozen=True)
class ClearSummary:
    grants: int
    access_tokens: int
    refresh_tokens: int
    id_tokens: int
    login_sessions: int
    consents_expired: int

    def __str__(self) -> str:
        return (
            f"removed {self.grants} expired code(s), {self.access_tokens} access token(s), "
            f"{self.refresh_tokens} refresh token(s), {self.id_tokens} ID token(s), "
            f"{self.login_sessions} ended login session(s); marked {self.consents_expired} consent(s) expired"
        )


def tokens_clear_expired(*, meta: RequestMeta) -> ClearSummary:
    """The cron job: DOT's clear_expired (expired codes and access tokens, revoked refresh tokens
    once past their lifetime: they are kept until then for reuse detection), login sessions past
    their end, and the expiry of consents recorded. One maintenance row sums it up.
    Safe to run twice: the second run finds nothing."""
    from oauth2_provider.models import IDToken, clear_expired

    models_counted = (Grant, AccessToken, RefreshToken, IDToken)
    with transaction.atomic():
        before = [m.objects.count() for m in models_counted]
        clear_expired()
        after = [m.objects.count() for m in models_counted]
        grants, access, refresh, id_tokens = (b - a for b, a in zip(before, after, strict=True))
        # A session past its end can never refresh again; its code is long expired, so replay
        # detection no longer needs its code hash.
        sessions, _ = LoginSession.objects.filter(ends_at__lte=timezone.now()).delete()
        consents = consent_mark_expired(meta=meta)
        summary = ClearSummary(grants, access, refresh, id_tokens, sessions, consents)
        audit_record(
            event_type=EventType.MAINTENANCE,
            target="clear_expired",
            outcome="success",
            details={
                "removed": {"codes": grants, "access": access, "refresh": refresh, "oidc": id_tokens,
                            "login_sessions": sessions},
                "consents_marked_expired": consents,
            },
            meta=meta,
        )
    return summary
