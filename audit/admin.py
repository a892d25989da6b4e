from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from oauth2_provider.models import Application

from audit.admin_readonly import ReadOnlyModelAdmin
from audit.models import AuditEvent, EventType
from audit.services import RequestMeta, audit_export
from tools.registry import REGISTRY

TOOL_EVENTS = (EventType.TOOL_CALL, EventType.TOOL_CALL_COMPLETED, EventType.STEP_UP_REQUIRED)


class UserFilter(admin.SimpleListFilter):
    """By Okta login. The choices come from the users table, not from a DISTINCT over the audit
    table, which can hold millions of rows."""

    title = "user"
    parameter_name = "actor_login"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        logins = get_user_model().objects.exclude(okta_login="").order_by("okta_login")
        return [(login, login) for login in logins.values_list("okta_login", flat=True)[:200]]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        return queryset.filter(actor_login=self.value()) if self.value() else queryset


class ClientFilter(admin.SimpleListFilter):
    title = "client"
    parameter_name = "client_id"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        apps = Application.objects.order_by("name").values_list("client_id", "name")[:200]
        return [(client_id, f"{name} ({client_id})") for client_id, name in apps]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        return queryset.filter(client_id=self.value()) if self.value() else queryset


class ToolFilter(admin.SimpleListFilter):
    title = "tool"
    parameter_name = "tool"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in sorted(REGISTRY)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        if not self.value():
            return queryset
        return queryset.filter(event_type__in=TOOL_EVENTS, target=self.value())


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyModelAdmin):
    """Read-only for everyone, superusers included: the audit trail is evidence. An admin that could
    add, edit or delete rows would make it worthless, and every such change would break the hash
    chain anyway. Rows are written only by audit.services.audit_record and removed only by
    `manage.py audit_prune`, which leaves a checkpoint."""

    list_display = (
        "id",
        "created",
        "event_type",
        "actor_login",
        "client_id",
        "target",
        "decision",
        "reason",
        "outcome",
        "error_code",
        "duration_ms",
    )
    list_filter = ("event_type", "decision", "outcome", UserFilter, ClientFilter, ToolFilter, "created")
    search_fields = ("actor_login", "client_id", "request_id", "target")
    date_hierarchy = "created"
    actions = ["export_csv"]
    fields = [f.name for f in AuditEvent._meta.fields if f.name != "details"] + ["details_pretty"]
    readonly_fields = fields
    list_per_page = 100
    show_full_result_count = False  # COUNT(*) over the whole trail on every page is not worth it

    @admin.display(description="details")
    def details_pretty(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.details, indent=2, sort_keys=True))

    @admin.action(description="Export selected rows as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit.csv"'
        audit_export(
            out=response,
            fmt="csv",
            ids=list(queryset.values_list("pk", flat=True)),
            actor=request.user,
            meta=RequestMeta.from_django(request),
        )
        return response
