"""Fixtures for the role-based access tests: users with Okta groups, a write tool registered for the
duration of a test, and the sandbox Okta Management API spoken to as an Okta admin would."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any

import httpx2 as httpx
import pytest
from django.conf import settings
from pydantic import BaseModel

from tests.clients import Browser
from tools.registry import REGISTRY, ToolSpec

ALICE_ID = "00u1alice00000000001"
BOB_ID = "00u1bob0000000000001"
CAROL_ID = "00u1carol00000000001"
JANE_ID = "00u1jane000000000001"
HELPDESK_ID = "00g1helpdesk000000001"
IDENTITY_ADMINS_ID = "00g1idadmins000000001"
CONTRACTORS_ID = "00g1contract000000001"


class _Nothing(BaseModel):
    pass


async def _never_runs(ctx: Any, args: Any) -> BaseModel:
    raise AssertionError("the policy tests never run a tool")


def _spec(name: str, access: str, destructive: bool = False) -> ToolSpec:
    return ToolSpec(
        name=name,
        title=name.replace("_", " "),
        purpose=f"{name} (test tool)",
        access=access,  # type: ignore[arg-type]
        destructive=destructive,
        idempotent=True,
        input_model=_Nothing,
        output_model=_Nothing,
        handler=_never_runs,
    )


@pytest.fixture
def extra_tools() -> Iterator[dict[str, str]]:
    """A read tool and a destructive write tool that exist in this test process's registry only,
    so the policy tests do not depend on what the catalogue holds today."""
    added = {
        "test_read_thing": _spec("test_read_thing", "read"),
        "test_wipe_thing": _spec("test_wipe_thing", "write", destructive=True),
    }
    assert not set(added) & set(REGISTRY)
    REGISTRY.update(added)
    yield {"read": "test_read_thing", "write": "test_wipe_thing"}
    for name in added:
        REGISTRY.pop(name, None)


@pytest.fixture
def make_role(db: None) -> Callable[..., Any]:
    """A role with mappings, written through the services (actor: none, as a seed would)."""
    from audit.services import RequestMeta
    from tools.models import GroupMapping, Role
    from tools.services import group_mapping_save, role_save

    def make(name: str, tools: list[str], *groups: str | tuple[str, str]) -> Role:
        meta = RequestMeta(user_agent="pytest")
        role = role_save(role=Role(name=name, tools=tools), actor=None, meta=meta)
        for group in groups:
            group_name, group_id = group if isinstance(group, tuple) else (group, "")
            mapping = GroupMapping(role=role, group_name=group_name, okta_group_id=group_id)
            group_mapping_save(mapping=mapping, actor=None, meta=meta)
        return role

    return make


@pytest.fixture
def make_user(db: None) -> Callable[..., Any]:
    from accounts.models import User

    def make(login: str, groups: list[str], group_ids: list[str] | None = None, **extra: Any) -> User:
        return User.objects.create(
            username=f"okta:{login}",
            okta_sub=f"sub-{login}",
            okta_login=login,
            okta_status="ACTIVE",
            okta_groups=groups,
            okta_group_ids=group_ids or [],
            **extra,
        )

    return make


class OktaAdminApi:
    """The sandbox Okta Management API through Okta's real endpoints and SSWS auth."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"SSWS {settings.OKTA_API_TOKEN}", "Accept": "application/json"},
            timeout=10,
        )

    def add_to_group(self, group_id: str, user_id: str) -> None:
        self.http.put(f"/api/v1/groups/{group_id}/users/{user_id}").raise_for_status()

    def remove_from_group(self, group_id: str, user_id: str) -> None:
        self.http.delete(f"/api/v1/groups/{group_id}/users/{user_id}").raise_for_status()

    def lifecycle(self, user_id: str, action: str) -> None:
        self.http.post(f"/api/v1/users/{user_id}/lifecycle/{action}").raise_for_status()

    def user(self, user_id: str) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/users/{user_id}")
        response.raise_for_status()
        return response.json()

    def groups_of(self, user_id: str) -> list[str]:
        response = self.http.get(f"/api/v1/users/{user_id}/groups")
        response.raise_for_status()
        return sorted(g["profile"]["name"] for g in response.json())

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def okta_admin(okta_org: str) -> Iterator[OktaAdminApi]:
    api = OktaAdminApi(okta_org)
    yield api
    api.close()


class _AdminFormParser(HTMLParser):
    """What a browser would submit from one form: text and hidden inputs, ticked checkboxes,
    selected options and textareas (the admin's inline management form included)."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.data: dict[str, list[str]] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        name = a.get("name", "")
        if tag == "input" and name and "__prefix__" not in name:
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.data.setdefault(name, []).append(a.get("value", "on"))
            elif kind not in ("submit", "button", "image", "file"):
                self.data.setdefault(name, []).append(a.get("value", ""))
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select].append(a.get("value", ""))
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = [""]

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea][0] += data


def admin_form_data(html: str, form_id: str) -> dict[str, list[str]]:
    parser = _AdminFormParser(form_id)
    parser.feed(html)
    assert parser.data, f"no form #{form_id} on the page"
    return parser.data


@pytest.fixture
def admin_user(db: None) -> Any:
    """pytest-django's superuser (used by its `admin_client`), without the password hashing cost:
    the client logs in with force_login."""
    from accounts.models import User

    user = User(username="admin", email="admin@example.com", is_staff=True, is_superuser=True)
    user.set_unusable_password()
    user.save()
    return user


def sandbox_requests(base_url: str) -> list[dict[str, Any]]:
    """Every request the sandbox Okta API received since the last reset (method and path)."""
    response = httpx.get(base_url + "/__sandbox/requests", timeout=10)
    response.raise_for_status()
    return list(response.json()["requests"])


class LoginRefused(AssertionError):
    """The sandbox Okta login page refused the person (for example: the account is suspended)."""


class StoppingBrowser(Browser):
    """A Browser that stops at the IdP's refusal instead of submitting the login form again."""

    def __init__(self, user: str) -> None:
        super().__init__(user)
        self.refusals: list[str] = []
        self.http.event_hooks = {"response": [self._stop_on_refusal]}

    def _stop_on_refusal(self, response: httpx.Response) -> None:
        if response.request.method == "POST" and "/interaction/" in response.request.url.path:
            response.read()
            if 'role="alert"' in response.text:
                self.refusals.append(response.text)
                raise LoginRefused(re.sub(r"<[^>]+>", " ", response.text.split('role="alert">', 1)[1])[:120])


MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


@pytest.fixture
def admin_client(admin_user: Any) -> Any:
    """A superuser's browser, logged in the way break-glass admin accounts log in (local password)."""
    from django.test import Client

    client = Client()
    client.force_login(admin_user, backend=MODEL_BACKEND)
    return client


def view_tools(html: str) -> dict[str, bool]:
    """Tool rows of the result table: name -> callable with the scopes asked about."""
    return {name: flag == "yes" for name, flag in re.findall(r'data-tool="([^"]+)" data-callable="(yes|no)"', html)}


def command_tools(output: str) -> dict[str, str]:
    """Tool lines of the command: name -> the rest of the line (access, destructive, step-up)."""
    lines = output.split("Tools:\n", 1)[1].splitlines() if "Tools:\n" in output else []
    return {line.split()[0]: " ".join(line.split()[1:]) for line in lines if line.startswith("  ")}
