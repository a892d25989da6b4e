"""The authorization endpoint: django-oauth-toolkit's AuthorizationView with our consent rules.

Consent is per (user, client, scopes) and checked on every request. Nothing the client sends can
skip it: `approval_prompt`, DOT's `skip_authorization` flag and earlier tokens are ignored; only a
consent record that is unexpired and unrevoked lets a code be issued without the page."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.clickjacking import xframe_options_deny
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.forms import AllowForm
from oauth2_provider.models import get_application_model
from oauth2_provider.scopes import get_scopes_backend
from oauth2_provider.views import AuthorizationView
from oauthlib.oauth2.rfc6749.errors import CustomOAuth2Error

from audit.services import RequestMeta
from consent import services
from consent.selectors import consent_get_active
from tools.selectors import tools_allowed_for_user


def _with_iss(uri: str) -> str:
    """RFC 9207: every authorization response names its issuer, error responses included."""
    parts = urlsplit(uri)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "iss"]
    query.append(("iss", settings.ISSUER))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@method_decorator(xframe_options_deny, name="dispatch")
class ConsentView(AuthorizationView):
    template_name = "consent/authorize.html"
    form_class = AllowForm

    def error_response(self, error: OAuthToolkitError, application: Any, **kwargs: Any) -> HttpResponse:
        oauthlib_error = error.oauthlib_error
        user = self.request.user if self.request.user.is_authenticated else None
        if oauthlib_error.error != "access_denied":  # a denial is already audited as consent.denied
            services.authorization_deny(
            user=user,
                client_id=str(self.request.GET.get("client_id", "") or self.request.POST.get("client_id", ""))[:255],
                error=oauthlib_error.error,
                description=str(oauthlib_error.description or "")[:500],
                meta=RequestMeta.from_django(self.request),
            )
        response = super().error_response(error, application, **kwargs)
        if response.status_code in (301, 302, 303) and response.get("Location"):
            response["Location"] = _with_iss(response["Location"])
        return response

    def _resource_error(self, credentials: dict[str, Any], application: Any) -> HttpResponse:
        error = OAuthToolkitError(
            error=CustomOAuth2Error(
                error="invalid_target",
                description=f"The only resource served here is {settings.MCP_RESOURCE}",
                state=credentials.get("state"),
            ),
            redirect_uri=credentials["redirect_uri"],
        )
        return self.error_response(error, application)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            scopes, credentials = self.validate_authorization_request(request)
        except OAuthToolkitError as error:
            return self.error_response(error, application=None)
        application = get_application_model().objects.get(client_id=credentials["client_id"])
        resources = request.GET.getlist("resource") or [settings.MCP_RESOURCE]
        if resources != [settings.MCP_RESOURCE]:
            return self._resource_error(credentials, application)
        credentials["resource"] = resources

        consent = consent_get_active(user=request.user, application=application, scopes=scopes)
        if consent is not None:
            try:
                uri, _headers, _body, _status = self.create_authorization_response(
                    request=request, scopes=" ".join(scopes), credentials=credentials, allow=True
                )
            except OAuthToolkitError as error:
                return self.error_response(error, application)
            services.consent_record_reuse(consent=consent, meta=RequestMeta.from_django(request))
            return self.redirect(uri, application)
        if "none" in request.GET.get("prompt", "").split():
            error = OAuthToolkitError(
                error=CustomOAuth2Error(error="consent_required", state=credentials.get("state")),
                redirect_uri=credentials["redirect_uri"],
            )
            return self.error_response(error, application)

        self.oauth2_data = {
            "redirect_uri": credentials["redirect_uri"],
            "scope": scopes,
            "client_id": credentials["client_id"],
            "state": credentials.get("state"),
            "response_type": credentials.get("response_type"),
            "code_challenge": credentials.get("code_challenge"),
            "code_challenge_method": credentials.get("code_challenge_method"),
            "nonce": credentials.get("nonce"),
            "claims": None,
            "resource": settings.MCP_RESOURCE,
        }
        form = self.get_form(self.get_form_class())
        context = self._page_context(application, scopes, credentials["redirect_uri"])
        return self.render_to_response(self.get_context_data(form=form, **context))

    def _page_context(self, application: Any, scopes: list[str], redirect_uri: str) -> dict[str, Any]:
        all_scopes = get_scopes_backend().get_all_scopes()
        access = tools_allowed_for_user(self.request.user, scopes=scopes)
        host = urlsplit(redirect_uri).hostname or ""
        return {
            "application": application,
            "scopes": scopes,
            "scope_descriptions": [(s, all_scopes.get(s, s)) for s in scopes],
            "tools": access.specs(),
            "roles": access.roles,
            "redirect_host": host,
            "redirect_is_loopback": _is_loopback(host),
            "expires_at": timezone.now() + timedelta(seconds=settings.CONSENT_LIFETIME_SECONDS),
            "consent_hours": settings.CONSENT_LIFETIME_SECONDS // 3600,
        }

    def form_valid(self, form: AllowForm) -> HttpResponse:
        data = form.cleaned_data
        application = get_application_model().objects.filter(client_id=data.get("client_id")).first()
        if application is None:
            return self.form_invalid(form)
        if data.get("resource") not in ("", None, settings.MCP_RESOURCE):
            return self._resource_error({"state": data.get("state"), "redirect_uri": data.get("redirect_uri")}, application)
        data["resource"] = settings.MCP_RESOURCE
        meta = RequestMeta.from_django(self.request)
        scopes = frozenset((data.get("scope") or "").split())
        if not data.get("allow"):
            services.consent_deny(user=self.request.user, application=application, scopes=scopes, meta=meta)
            return super().form_valid(form)
        # The code and the consent record commit together, or neither does.
        with transaction.atomic():
            self.success_url = ""
            response = super().form_valid(form)
            if not self.success_url:
                transaction.set_rollback(True)
                return response
            access = tools_allowed_for_user(self.request.user, scopes=scopes)
            services.consent_grant(
                user=self.request.user,
                application=application,
                scopes=scopes,
                tools=sorted(access.usable),
                redirect_uri=data.get("redirect_uri", ""),
                meta=meta,
            )
        return response
