from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from oauth2_provider import views as oauth2_views

from accounts.views import login_failed
from consent.dcr import RegistrationManagementView, RegistrationView
from consent.views import ConsentView, ServerMetadataView, TokenView
from okta_mcp import views

# DOT's views under the names its metadata view reverses ("oauth2_provider:<name>").
oauth2_patterns = (
    [
        path("authorize", ConsentView.as_view(), name="authorize"),
        path("token", TokenView.as_view(), name="token"),
        path("revoke", oauth2_views.RevokeTokenView.as_view(), name="revoke-token"),
        path(
            ".well-known/oauth-authorization-server",
            ServerMetadataView.as_view(),
            name="oauth-server-metadata",
        ),
        path(
            ".well-known/oauth-protected-resource",
            oauth2_views.OAuthProtectedResourceMetadataView.as_view(),
            name="oauth-resource-metadata",
        ),
        path(
            ".well-known/oauth-protected-resource/mcp",
            oauth2_views.OAuthProtectedResourceMetadataView.as_view(),
            name="oauth-resource-metadata-path",
        ),
    ]
    # RFC 7591 registration exists only when enabled: an endpoint that is not routed cannot be
    # reached by a misconfiguration of its permission classes.
    + (
        [
            path("register", RegistrationView.as_view(), name="dcr-register"),
            path("register/<str:client_id>", RegistrationManagementView.as_view(), name="dcr-register-management"),
        ]
        if settings.OAUTH2_PROVIDER.get("DCR_ENABLED")
        else []
    ),
    "oauth2_provider",
)

admin.site.site_header = f"{settings.ORG_NAME}: MCP access administration"
admin.site.site_title = settings.ORG_NAME
admin.site.index_title = "Clients, roles, consents and the audit trail"

urlpatterns = [
    path("", views.home, name="home"),
    path("", include(oauth2_patterns)),
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("login-failed", login_failed, name="login-failed"),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
]
