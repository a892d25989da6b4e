"""Policy admin: roles, the Okta groups they are granted to, and the tools they grant. Every write
goes through tools.services, which records who changed what; the effective-access view asks the
policy function. Confirmations of destructive tool calls are shown read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from audit.admin_readonly import ReadOnlyModelAdmin
from audit.services import RequestMeta
from tools import services, views
from tools.forms import GroupMappingForm, RoleForm
from tools.models import GroupMapping, Role, ToolConfirmation
from tools.registry import REGISTRY
from tools.selectors import role_unknown_tools, stored_tool_names


class GroupMappingInline(admin.TabularInline):
    model = GroupMapping
    form = GroupMappingForm
    extra = 1
    fields = ("group_name", "okta_group_id")
    verbose_name = "Okta group"
    verbose_name_plural = "Granted to these Okta groups"


class ToolAccessFilter(admin.SimpleListFilter):
    title = "grants"
    parameter_name = "grants"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("write", "write tools"),
            ("destructive", "destructive tools"),
            ("read_only", "read tools only"),
            ("unknown", "names not in the registry"),
            ("nothing", "no registered tools"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Role]) -> QuerySet[Role]:
        value = self.value()
        if not value:
            return queryset
        def specs(role: Role) -> list[Any]:
            return [REGISTRY[t] for t in stored_tool_names(role.tools) if t in REGISTRY]

        tests = {
            "write": lambda r: any(s.access == "write" for s in specs(r)),
            "destructive": lambda r: any(s.destructive for s in specs(r)),
            "read_only": lambda r: bool(specs(r)) and all(s.access == "read" for s in specs(r)),
            "unknown": lambda r: bool(role_unknown_tools(r)),
            "nothing": lambda r: not specs(r),
        }
        test = tests.get(value)
        if test is None:
            return queryset
        # Tools live in a JSON list, and roles are few: filter in Python, answer with a queryset.
        return queryset.filter(pk__in=[r.pk for r in Role.objects.only("pk", "tools") if test(r)])


class MappedFilter(admin.SimpleListFilter):
    title = "granted to"
    parameter_name = "mapped"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "at least one Okta group"), ("no", "no Okta group")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Role]) -> QuerySet[Role]:
        if self.value() == "yes":
            return queryset.filter(group_mappings__isnull=False).distinct()
        if self.value() == "no":
            return queryset.filter(group_mappings__isnull=True)
        return queryset


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    form = RoleForm
    inlines = [GroupMappingInline]
    list_display = ("name", "description", "groups", "tool_count", "write_tools", "unknown_tools", "updated")
    search_fields = ("name", "description", "group_mappings__group_name", "group_mappings__okta_group_id")
    list_filter = (ToolAccessFilter, MappedFilter, "group_mappings__group_name")
    readonly_fields = ("unknown_tools_warning",)
    fields = ("name", "description", "unknown_tools_warning", "tools")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Role]:
        return super().get_queryset(request).prefetch_related("group_mappings")

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.effective_access_view)
        return [path("effective-access/", view, name="tools_role_effective_access"), *super().get_urls()]

    def effective_access_view(self, request: HttpRequest) -> HttpResponse:
        return views.effective_access(request, model_admin=self)

    @admin.display(description="tools")
    def tool_count(self, obj: Role) -> int:
        return len([t for t in stored_tool_names(obj.tools) if t in REGISTRY])

    @admin.display(description="write tools")
    def write_tools(self, obj: Role) -> str:
        names = sorted(t for t in stored_tool_names(obj.tools) if t in REGISTRY and REGISTRY[t].access == "write")
        return ", ".join(f"{n} (destructive)" if REGISTRY[n].destructive else n for n in names)

    @admin.display(description="Okta groups")
    def groups(self, obj: Role) -> str:
        return ", ".join(
            f"{m.group_name} [{m.okta_group_id}]" if m.okta_group_id else m.group_name for m in obj.group_mappings.all()
        )

    @admin.display(description="not in registry")
    def unknown_tools(self, obj: Role) -> str:
        unknown = role_unknown_tools(obj)
        return format_html('<strong class="unknown-tools">⚠ {}</strong>', ", ".join(unknown)) if unknown else ""

    @admin.display(description="Not in the tool registry")
    def unknown_tools_warning(self, obj: Role | None) -> str:
        unknown = role_unknown_tools(obj) if obj is not None and obj.pk else []
        if not unknown:
            return "-"
        return format_html(
            '<p class="errornote" id="unknown-tools-warning">This role names tools that no longer exist: {}. '
            "They grant nothing, and saving this form removes them.</p>",
            format_html_join(", ", "<code>{}</code>", ((n,) for n in unknown)),
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        stale = [r.name for r in Role.objects.only("name", "tools") if role_unknown_tools(r)]
        if stale and request.method == "GET":
            self.message_user(
                request,
                f"Roles naming tools that are not in the registry (they grant nothing): {', '.join(stale)}",
                messages.WARNING,
            )
        return super().changelist_view(request, extra_context)

    def save_model(self, request: HttpRequest, obj: Role, form: Any, change: bool) -> None:
        services.role_save(role=obj, actor=request.user, meta=RequestMeta.from_django(request))

    def delete_model(self, request: HttpRequest, obj: Role) -> None:
        services.role_delete(role=obj, actor=request.user, meta=RequestMeta.from_django(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Role]) -> None:
        # The bulk "delete selected" action would bypass delete_model; each role is recorded.
        meta = RequestMeta.from_django(request)
        for role in queryset:
            services.role_delete(role=role, actor=request.user, meta=meta)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        meta = RequestMeta.from_django(request)
        instances = formset.save(commit=False)
        for mapping in formset.deleted_objects:
            services.group_mapping_delete(mapping=mapping, actor=request.user, meta=meta)
        for mapping in instances:
            services.group_mapping_save(mapping=mapping, actor=request.user, meta=meta)


class ConfirmationStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("pending", "Pending"), ("used", "Used"), ("expired", "Expired unused")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ToolConfirmation]) -> QuerySet[ToolConfirmation]:
        now = timezone.now()
        if self.value() == "pending":
            return queryset.filter(used_at__isnull=True, expires_at__gt=now)
        if self.value() == "used":
            return queryset.filter(used_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(used_at__isnull=True, expires_at__lte=now)
        return queryset


@admin.register(ToolConfirmation)
class ToolConfirmationAdmin(ReadOnlyModelAdmin):
    """Read-only for everyone, superusers included: a confirmation is issued and redeemed only by
    tools.confirmations, on behalf of the user it is bound to. An admin that could add or edit one
    could confirm a destructive call for someone else (or mark a pending one used); deleting one
    would hide that it was asked for. The token itself is never stored; its SHA-256 (the lookup key)
    and the digest of the arguments are neither shown nor searchable. Rows are removed an hour after
    they expire, by the service that issues new ones."""

    list_display = ("created", "user", "client_id", "tool", "summary_line", "expires_at", "used_at", "status")
    list_filter = (
        ConfirmationStatusFilter,
        "tool",
        ("user", admin.RelatedOnlyFieldListFilter),
        "client_id",
        "created",
    )
    search_fields = ("user__okta_login", "tool")
    list_select_related = ("user",)
    date_hierarchy = "created"
    fields = ("user", "client_id", "tool", "summary", "created", "expires_at", "used_at", "status")
    readonly_fields = fields

    @admin.display(description="summary")
    def summary_line(self, obj: ToolConfirmation) -> str:
        return Truncator(obj.summary).chars(120)

    @admin.display(description="status")
    def status(self, obj: ToolConfirmation) -> str:
        if obj.used_at is not None:
            return "used"
        return "pending" if obj.expires_at > timezone.now() else "expired unused"
