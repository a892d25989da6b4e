"""The authorization endpoint: django-oauth-toolkit's AuthorizationView with our consent rules.

Consent is per (user, client, scopes) and checked on every request. Nothing the client sends can
skip it: `approval_prompt`, DOT's `skip_authorization` flag and earlier tokens are ignored; only a
consent record that is unexpired and unrevoked lets a code be issued without the page."""

from __future__ import annotations

import ipaddress
import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.clickjacking import xframe_options_deny
from oauth2_provider import views as oauth2_views
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.forms import AllowForm
from oauth2_provider.models import get_application_model
from oauth2_provider.scopes import get_scopes_backend
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import AuthorizationView
from oauthlib.oauth2.rfc6749.errors import CustomOAuth2Error, InvalidClientIdError, InvalidRequestError

from audit.services import RequestMeta
from consent import clients, services
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
        return super().error_response(error, application, **kwargs)

    def redirect(self, redirect_to: str, application: Any) -> HttpResponse:
        # Every redirect back to the client goes through here: codes, errors, and DOT's own
        # login_required answer to prompt=none.
        return super().redirect(_with_iss(redirect_to), application)

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
            return self._awaiting_approval(error) or self.error_response(error, application=None)
        application = get_application_model().objects.get(client_id=credentials["client_id"])
        if credentials.get("code_challenge_method") != "S256":
            # oauthlib accepts "plain" (and defaults to it); DOT refuses it only when the code is
            # created, i.e. after the user approved. Refuse it before the consent page.
            error = OAuthToolkitError(
                error=InvalidRequestError(
                    description="PKCE with code_challenge_method=S256 is required", state=credentials.get("state")
                ),
                redirect_uri=credentials["redirect_uri"],
            )
            return self.error_response(error, application)
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

    def _awaiting_approval(self, error: OAuthToolkitError) -> HttpResponse | None:
        # The validator treats a self-registered client that is not approved as unknown; the person
        # is told why (which client, from which domain, whom to ask), and nothing is issued.
        if not isinstance(error.oauthlib_error, InvalidClientIdError):
            return None
        approval = clients.client_approval_get(client_id=str(self.request.GET.get("client_id", ""))[:255])
        if approval is None or approval.approved:
            return None
        services.authorization_deny(
            user=self.request.user,
            client_id=approval.application.client_id,
            error="client_not_approved",
            description=f"client is {approval.status}",
            meta=RequestMeta.from_django(self.request),
        )
        context = {"application": approval.application, "approval": approval,
                   "contact": settings.CLIENT_APPROVAL_CONTACT}
        return render(self.request, "consent/awaiting_approval.html", context, status=403)

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
            "client_standing": clients.client_standing(application),
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
            if "code" not in dict(parse_qsl(urlsplit(self.success_url).query)):
                # No code issued: DOT raised, or oauthlib answered a request it re-validated (a
                # tampered form) with an error redirect. Either way no consent is recorded.
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


class TokenView(oauth2_views.TokenView):
    """DOT's token endpoint without its device-flow branch: there is no device grant here, and that
    branch answered a device_code grant_type without a device_code with a 500. oauthlib's
    WebApplicationServer answers it unsupported_grant_type like any other grant."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.authorization_flow_token_response(request)


class ServerMetadataView(oauth2_views.OAuthServerMetadataView):
    """RFC 8414 metadata naming client ID metadata document support only when it is enabled
    (DOT always sends the field, as false when off); the registration endpoint is DOT's own
    decision, made on DCR_ENABLED."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().get(request, *args, **kwargs)
        if oauth2_settings.CIMD_ENABLED:
            return response
        data = json.loads(response.content)
        data.pop("client_id_metadata_document_supported", None)
        trimmed = JsonResponse(data)
        trimmed["Access-Control-Allow-Origin"] = response["Access-Control-Allow-Origin"]
        return trimmed
