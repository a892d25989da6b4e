from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from oauth2_provider.models import Application

from consent.models import Consent, LoginSession


def consent_get_active(
    *, user: Any, application: Application, scopes: Iterable[str] | None = None
) -> Consent | None:
    """The newest unexpired, unrevoked consent of `user` for `application` covering `scopes`."""
    wanted = frozenset(scopes or ())
    for consent in Consent.objects.active().filter(user=user, application=application).order_by("-granted_at"):
        if wanted <= consent.scope_set:
            return consent
    return None


def consent_list(*, user: Any | None = None, application: Application | None = None, active: bool = False):
    qs = Consent.objects.select_related("user", "application").order_by("-granted_at")
    if user is not None:
        qs = qs.filter(user=user)
    if application is not None:
        qs = qs.filter(application=application)
    if active:
        qs = qs.active()
    return qs


def login_session_for_family(token_family: Any) -> LoginSession | None:
    return LoginSession.objects.select_related("consent", "user").filter(token_family=token_family).first()
