"""The admin's effective-access view: pick a user or type Okta groups, see the roles and tools the
policy function gives them. It asks `effective_access_report` (which asks `tools_allowed_for`) and
decides nothing itself."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from tools.forms import EffectiveAccessForm
from tools.models import Role
from tools.selectors import effective_access_report


def effective_access(request: HttpRequest, *, model_admin: Any) -> HttpResponse:
    """Staff only (the admin site's `admin_view` wraps it) and only for those who may view roles.
    A read-only GET form: it changes nothing, so it needs no CSRF token."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    form = EffectiveAccessForm(request.GET if request.GET else None)
    report = None
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        report = effective_access_report(
            user=data["user"],
            groups=data["groups"],
            group_ids=data["group_ids"],
            scopes=data["scopes"] or None,
        )
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Role._meta,
        "title": "Effective access",
        "form": form,
        "report": report,
    }
    return TemplateResponse(request, "admin/tools/role/effective_access.html", context)
