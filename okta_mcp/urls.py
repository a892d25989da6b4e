from django.contrib import admin
from django.urls import include, path
from oauth2_provider import views as oauth2_views

from accounts.views import login_failed
from consent.views import ConsentView
from okta_mcp import views

# DOT's views under the names its metadata view reverses ("oauth2_provider:<name>").
oauth2_patterns = (
    [
        path("authorize", ConsentView.as_view(), name="authorize"),
        path("token", oauth2_views.TokenView.as_view(), name="token"),
        path("revoke", oauth2_views.RevokeTokenView.as_view(), name="revoke-token"),
        path(
            ".well-known/oauth-authorization-server",
            oauth2_views.OAuthServerMetadataView.as_view(),
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
    ],
    "oauth2_provider",
)

urlpatterns = [
    path("", views.home, name="home"),
    path("", include(oauth2_patterns)),
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("login-failed", login_failed, name="login-failed"),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
]
