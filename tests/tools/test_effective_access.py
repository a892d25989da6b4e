"""The admin's effective-access view and the `effective_access` command: both show what the policy
function decides for a user or a typed list of Okta groups, and refuse bad input clearly."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from tests.conftest import _server_database_url
from tests.tools.conftest import command_tools, view_tools
from tools.models import Role
from tools.selectors import tools_allowed_for_user

VIEW = "/admin/tools/role/effective-access/"
ROOT = Path(__file__).resolve().parents[2]


def command_output(*args: str) -> str:
    out = io.StringIO()
    call_command("effective_access", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def policy(make_role, extra_tools) -> dict[str, str]:
    make_role("viewer", ["whoami", "get_user"], "Helpdesk")
    make_role("admin", ["whoami", extra_tools["write"]], ("Identity Admins", "00g1idadmins000000001"))
    return extra_tools


# ----------------------------------------------------------------------------- the admin view


def test_view_for_a_user_shows_roles_tools_and_step_up(admin_client, make_user, policy) -> None:
    alice = make_user("alice@acme.example", ["Everyone", "Identity Admins", "Helpdesk"], ["00g1idadmins000000001"])

    html = admin_client.get(VIEW, {"user": alice.pk}).content.decode()

    assert re.search(r'id="roles">admin, viewer<', html)
    assert 'id="scopes">mcp.read<' in html  # no scopes ticked: the client's default
    assert view_tools(html) == {"get_user": True, "whoami": True, policy["write"]: False}
    assert "<strong>needs step-up</strong>: the client must re-authorize with mcp.read mcp.write" in html
    assert "<strong>destructive</strong>" in html
    assert view_tools(html) == {
        n: tools_allowed_for_user(alice, scopes=["mcp.read"]).can_call(n)
        for n in tools_allowed_for_user(alice).granted
    }


def test_view_with_the_write_scope_has_nothing_to_step_up(admin_client, make_user, policy) -> None:
    alice = make_user("alice@acme.example", ["Identity Admins"], ["00g1idadmins000000001"])

    html = admin_client.get(VIEW, {"user": alice.pk, "scopes": ["mcp.read", "mcp.write"]}).content.decode()

    assert view_tools(html) == {"whoami": True, policy["write"]: True}
    assert "needs step-up" not in html


def test_view_for_typed_groups_and_ids(admin_client, policy) -> None:
    by_name = admin_client.get(VIEW, {"groups": "Helpdesk, Identity Admins"}).content.decode()
    by_id = admin_client.get(
        VIEW, {"groups": "Identity Admins", "group_ids": "00g1idadmins000000001", "scopes": "mcp.read"}
    ).content.decode()

    # The admin role matches by id only: the name alone does not bring it.
    assert re.search(r'id="roles">viewer<', by_name)
    assert view_tools(by_name) == {"get_user": True, "whoami": True}
    assert re.search(r'id="roles">admin<', by_id)
    assert view_tools(by_id) == {"whoami": True, policy["write"]: False}


def test_view_for_a_group_without_roles_says_default_deny(admin_client, policy) -> None:
    html = admin_client.get(VIEW, {"groups": "Contractors"}).content.decode()
    assert "none: no mapped group, so no tools (default deny)" in html and 'id="no-tools"' in html


def test_view_shows_a_blank_form_first(admin_client) -> None:
    html = admin_client.get(VIEW).content.decode()
    assert 'id="effective-access-form"' in html and 'id="effective-access-result"' not in html
    assert "errornote" not in html


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"scopes": "mcp.read"}, "Pick a user or type at least one Okta group."),
        ({"user": "999999"}, "Select a valid choice."),
        ({"user": "not-a-number"}, "Select a valid choice."),
        ({"groups": "Helpdesk", "group_ids": "00g1/../x"}, "Not an Okta group id: 00g1/../x"),
        ({"groups": "Helpdesk", "scopes": "mcp.admin"}, "Select a valid choice. mcp.admin is not one of"),
    ],
)
def test_view_refuses_bad_input_and_changes_nothing(admin_client, policy, query, error) -> None:
    roles_before, events_before = list(Role.objects.values_list("name", "tools")), AuditEvent.objects.count()

    response = admin_client.get(VIEW, query)

    assert response.status_code == 200
    html = response.content.decode()
    assert error in html and 'id="effective-access-result"' not in html
    assert list(Role.objects.values_list("name", "tools")) == roles_before
    assert AuditEvent.objects.count() == events_before


def test_view_refuses_a_user_and_groups_together(admin_client, make_user, policy) -> None:
    bob = make_user("bob@acme.example", ["Helpdesk"])
    html = admin_client.get(VIEW, {"user": bob.pk, "groups": "Identity Admins"}).content.decode()
    assert "Pick a user or type groups, not both." in html and 'id="effective-access-result"' not in html


# ----------------------------------------------------------------------------- the command


def test_command_for_a_user_by_okta_login(make_user, policy) -> None:
    make_user("bob@acme.example", ["Everyone", "Helpdesk"])

    output = command_output("--user", "BOB@acme.example")

    assert output.startswith("User: bob@acme.example (Okta status ACTIVE, groups synced never)\n")
    assert "Groups: Everyone, Helpdesk\n" in output
    assert "Roles: viewer\n" in output and "Scopes: mcp.read\n" in output
    assert command_tools(output) == {"get_user": "read", "whoami": "read"}


def test_command_by_username_marks_write_tools_and_step_up(make_user, policy) -> None:
    alice = make_user("alice@acme.example", ["Identity Admins"], ["00g1idadmins000000001"])

    default = command_tools(command_output("--user", alice.username))
    stepped_up = command_tools(command_output("--user", alice.username, "--scopes", "mcp.read mcp.write"))

    assert default == {"whoami": "read", policy["write"]: "write destructive (needs step-up: mcp.read mcp.write)"}
    assert stepped_up == {"whoami": "read", policy["write"]: "write destructive"}


def test_command_for_groups_and_ids(policy) -> None:
    by_name = command_output("--groups", "Helpdesk,Identity Admins")
    by_id = command_output(
        "--groups", "Identity Admins", "--group-ids", "00g1idadmins000000001", "--scopes", "mcp.read,mcp.write"
    )

    assert "Roles: viewer\n" in by_name and command_tools(by_name) == {"get_user": "read", "whoami": "read"}
    assert "Roles: admin\n" in by_id and "Group ids: 00g1idadmins000000001\n" in by_id
    assert command_tools(by_id) == {"whoami": "read", policy["write"]: "write destructive"}


def test_command_for_a_user_without_roles(make_user, policy) -> None:
    make_user("carol@acme.example", ["Everyone", "Contractors"])
    output = command_output("--user", "carol@acme.example")
    assert "Roles: none (no mapped group: default deny)\n" in output and output.endswith("Tools: none\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "nobody@acme.example"], "no user with Okta login or username 'nobody@acme.example'"),
        (["--user", ""], "no user with Okta login or username ''"),
        (
            ["--user", "bob@acme.example", "--scopes", "mcp.admin"],
            "unknown scope mcp.admin; known scopes: mcp.read mcp.write",
        ),
        (["--user", "bob@acme.example", "--scopes", " "], "unknown scope (empty)"),
        (["--user", "bob@acme.example", "--group-ids", "00g1helpdesk000000001"], "--group-ids goes with --groups"),
        (["--groups", " , "], "--groups needs at least one Okta group name"),
        (["--groups", "Helpdesk", "--group-ids", "00g/../x"], "not an Okta group id: 00g/../x"),
        (["--user", "bob@acme.example", "--groups", "Helpdesk"], "not allowed with argument"),
        ([], "one of the arguments --user --groups is required"),
    ],
)
def test_command_refuses_bad_input(make_user, policy, args, message) -> None:
    make_user("bob@acme.example", ["Helpdesk"])
    events_before = AuditEvent.objects.count()

    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("effective_access", *args, stdout=io.StringIO(), stderr=io.StringIO())

    assert AuditEvent.objects.count() == events_before


def test_command_ambiguous_login_is_an_error(make_user, policy) -> None:
    make_user("bob@acme.example", ["Helpdesk"])
    make_user("BOB@ACME.EXAMPLE", ["Identity Admins"])
    with pytest.raises(CommandError, match="matches more than one user"):
        call_command("effective_access", "--user", "bob@acme.example", stdout=io.StringIO())


@pytest.mark.django_db(transaction=True)
def test_command_exits_non_zero_for_an_unknown_user() -> None:
    """As an operator runs it: manage.py in its own process, against the test database."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": _server_database_url()}

    result = subprocess.run(
        [sys.executable, "manage.py", "effective_access", "--user", "nobody@acme.example"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "CommandError: no user with Okta login or username 'nobody@acme.example'" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
