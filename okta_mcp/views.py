from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from okta_mcp import metrics as metrics_module


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


_migrations_applied = False


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when the database answers and every migration this code knows is applied. Loading the
    migration graph costs ~15 ms, so once it has been found complete this process only pings the
    database (migrations are not unapplied under a running release)."""
    global _migrations_applied
    try:
        if _migrations_applied:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            pending = []
        else:
            executor = MigrationExecutor(connection)
            pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception:  # noqa: BLE001 - any database failure means not ready
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    if pending:
        return JsonResponse({"status": "unavailable", "migrations": "pending"}, status=503)
    _migrations_applied = True
    return JsonResponse({"status": "ready"})


def home(request: HttpRequest):
    return render(request, "home.html")


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition of this process, for allowed networks or the bearer secret only."""
    allowed = metrics_module.metrics_access_allowed(
        meta=request.META, networks=settings.METRICS_NETWORKS, bearer_token=settings.METRICS_BEARER_TOKEN
    )
    if not allowed:
        return JsonResponse({"error": "forbidden"}, status=403)
    body, content_type = metrics_module.exposition()
    return HttpResponse(body, content_type=content_type)
