from __future__ import annotations

import pytest
from django.test import Client


@pytest.fixture
def superuser_client(db: None, django_user_model: type) -> Client:
    """A break-glass superuser (local password, the model backend) logged in to Django admin."""
    user = django_user_model.objects.create_superuser(username="admin", email="admin@example.com", password="x")
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client
