"""Requirement 13, registration side: a client can only be registered with redirect URIs that are
https, or plain http to a loopback address; anything else is refused before it is stored, by the
registration service, which the admin's add form calls."""

from __future__ import annotations

import pytest
from django.test import Client
from oauth2_provider.models import Application

from audit.models import AuditEvent
from audit.services import RequestMeta
from consent import services
from tests.clients import LOOPBACK_REDIRECT

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:No directory at")]

BAD_REDIRECTS = [
    "http://app.example/callback",  # plain http to a real host
    "http://127.0.0.1.nip.io/callback",  # looks like loopback, is a DNS name
    "ftp://app.example/callback",
    "javascript:alert(1)",
    "com.example.app:/callback",
    "https://app.example/callback#fragment",
    "https:///callback",
    "/callback",
]


def _register(redirect_uris: list[str], client_id: str = "new-client") -> tuple[Application, str | None]:
    return services.client_register(
        name="New client",
        client_id=client_id,
        redirect_uris=redirect_uris,
        confidential=False,
        actor=None,
        meta=RequestMeta(user_agent="pytest"),
    )


@pytest.mark.parametrize("bad", BAD_REDIRECTS)
def test_service_refuses_unsafe_redirect_uris(bad: str) -> None:
    with pytest.raises(services.ConsentError, match="redirect URIs"):
        _register(["https://app.example/callback", bad])
    assert not Application.objects.exists()
    assert not AuditEvent.objects.filter(event_type="client.registered").exists()


def test_service_refuses_no_redirect_uri() -> None:
    with pytest.raises(services.ConsentError):
        _register([])
    assert not Application.objects.exists()


def test_service_accepts_https_and_loopback() -> None:
    uris = ["https://app.example/callback", LOOPBACK_REDIRECT, "http://localhost:8765/cb", "http://[::1]:8765/cb"]
    app, secret = _register(uris)
    assert secret is None and app.redirect_uris.split() == uris
    assert app.client_type == Application.CLIENT_PUBLIC and not app.skip_authorization
    assert AuditEvent.objects.get(event_type="client.registered").client_id == "new-client"
    with pytest.raises(services.ConsentError, match="already exists"):
        _register(uris)
    assert Application.objects.count() == 1


@pytest.fixture
def superuser_client(django_user_model) -> Client:
    """A break-glass superuser signed in with a local password (the ModelBackend)."""
    client = Client()
    user = django_user_model.objects.create_superuser("breakglass", "root@acme.example", None)
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def _admin_add(client: Client, redirect_uris: str) -> object:
    return client.post(
        "/admin/oauth2_provider/application/add/",
        {
            "client_id": "admin-client",
            "name": "Admin client",
            "redirect_uris": redirect_uris,
            "post_logout_redirect_uris": "",
            "allowed_origins": "",
            "client_type": Application.CLIENT_PUBLIC,
            "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
            "client_secret": "",
            "algorithm": "",
        },
        HTTP_HOST="127.0.0.1",
    )


@pytest.mark.parametrize("bad", ["http://app.example/cb", "http://127.0.0.1.nip.io/cb", "javascript:alert(1)"])
def test_admin_refuses_unsafe_redirect_uris(superuser_client: Client, bad: str) -> None:
    before = AuditEvent.objects.count()
    response = _admin_add(superuser_client, f"https://app.example/callback {bad}")
    assert response.status_code == 200  # the form again, with its error
    form = response.context["adminform"].form
    # DOT's own URI validation speaks first for what is no URL at all; the service for the rest.
    assert form.errors.get("redirect_uris") or bad in " ".join(form.non_field_errors()), form.errors
    assert not Application.objects.exists() and AuditEvent.objects.count() == before


def test_admin_accepts_https_and_loopback(superuser_client: Client) -> None:
    response = _admin_add(superuser_client, f"https://app.example/callback {LOOPBACK_REDIRECT}")
    assert response.status_code == 302, getattr(response, "context", None) and response.context["adminform"].form.errors
    assert Application.objects.get().redirect_uris == f"https://app.example/callback {LOOPBACK_REDIRECT}"
