from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView

from accounts.services import user_login_failed
from audit.services import RequestMeta


class OktaCallbackView(OIDCAuthenticationCallbackView):
    """The library's callback, with the login state also bounded in time and every failure audited
    and answered with a page instead of a stack trace."""

    def get(self, request: HttpRequest) -> HttpResponse:
        state = request.GET.get("state", "")
        states: dict[str, Any] = request.session.get("oidc_states", {}) or {}
        entry = states.get(state)
        if entry is not None and time.time() - float(entry.get("added_on", 0)) > settings.OIDC_STATE_MAX_AGE_SECONDS:
            del states[state]
            request.session["oidc_states"] = states
            return self._failed(request, "login took too long; start again", status=400)
        if "code" in request.GET and entry is None:
            return self._failed(request, "unknown or already used login state", status=400)
        try:
            return super().get(request)
        except SuspiciousOperation as exc:
            return self._failed(request, str(exc) or "login rejected", status=400)

    def login_failure(self) -> HttpResponse:
        error = self.request.GET.get("error", "")
        return self._failed(self.request, f"Okta returned {error}" if error else "login rejected", status=403)

    def _failed(self, request: HttpRequest, reason: str, *, status: int) -> HttpResponse:
        user_login_failed(reason=reason[:255], meta=RequestMeta.from_django(request))
        return render(request, "accounts/login_failed.html", {"reason": reason}, status=status)


def login_failed(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/login_failed.html", {"reason": "login was not completed"}, status=403)
