"""RFC 7591 dynamic client registration through django-oauth-toolkit's views, routed only when
DCR_ENABLED is set. Registration is open (MCP clients register without credentials) because a
registered client gets nothing until an administrator approves it (consent.clients); what is
checked first: the MCP rules for application_type and redirect URIs, the grants this server has,
and a cap on how many clients may wait at once. The RFC 7592 management endpoint answers GET only:
a client that could rewrite its redirect URIs after approval would not be the client approved."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from oauth2_provider.models import Application
from oauth2_provider.views.dynamic_client_registration import (
    DynamicClientRegistrationManagementView,
    DynamicClientRegistrationView,
)

from audit.services import RequestMeta
from consent import clients

_GRANTS = {"authorization_code", "refresh_token"}


def _error(error: str, description: str, status: int = 400) -> JsonResponse:
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def _metadata_error(data: Any) -> JsonResponse | None:
    if not isinstance(data, dict):
        return None  # DOT answers malformed bodies itself
    grants = data.get("grant_types", ["authorization_code"])
    if isinstance(grants, list) and not set(grants) <= _GRANTS:
        return _error("invalid_client_metadata", "grant_types may only hold authorization_code and refresh_token")
    responses = data.get("response_types", ["code"])
    if isinstance(responses, list) and not set(responses) <= {"code"}:
        return _error("invalid_client_metadata", 'response_types may only hold "code"')
    return None


class RegistrationView(DynamicClientRegistrationView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            data = json.loads(request.body)
        except ValueError:
            data = None
        application_type = ""
        if isinstance(data, dict):
            refused = _metadata_error(data)
            if refused is not None:
                return refused
            try:
                application_type = clients.client_metadata_check(metadata=data)
            except clients.ClientMetadataError as exc:
                return _error(exc.error, exc.description)
            if clients.clients_pending_count() >= settings.CLIENT_MAX_PENDING:
                return _error(
                    "temporarily_unavailable", "Too many clients are awaiting approval; try again later", status=503
                )
        with transaction.atomic():
            response = super().post(request, *args, **kwargs)
            if response.status_code != 201:
                return response
            body = json.loads(response.content)
            application = Application.objects.get(client_id=body["client_id"])
            clients.client_register_dcr(
                application=application, application_type=application_type, meta=RequestMeta.from_django(request)
            )
        body["application_type"] = application_type
        answer = JsonResponse(body, status=201)
        answer["Cache-Control"] = "no-store"  # the body can hold a client secret
        return answer


class RegistrationManagementView(DynamicClientRegistrationManagementView):
    http_method_names = ["get"]
