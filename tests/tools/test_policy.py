"""The one policy function, tools_allowed_for: union over roles, default deny, unknown names never
granted, id-based mappings matched by id only, and the scope rule for write tools."""

from __future__ import annotations

import pytest

from tools.models import Role
from tools.registry import REGISTRY
from tools.selectors import tools_allowed_for, tools_allowed_for_user

READ, WRITE = "mcp.read", "mcp.write"


def test_union_over_every_role_of_every_group(make_role, extra_tools) -> None:
    make_role("viewer", ["whoami"], "Helpdesk")
    make_role("lookup", ["get_user"], "Helpdesk")
    make_role("wiper", [extra_tools["write"]], "Identity Admins")
    make_role("unrelated", [extra_tools["read"]], "Contractors")

    access = tools_allowed_for(groups=["Everyone", "Helpdesk", "Identity Admins"])

    assert access.roles == ("lookup", "viewer", "wiper")
    assert access.granted == {"whoami", "get_user", extra_tools["write"]}
    # One group alone gets only its own roles' tools.
    assert tools_allowed_for(groups=["Helpdesk"]).granted == {"whoami", "get_user"}


@pytest.mark.parametrize("groups", [[], ["Everyone"], ["Contractors"], ["helpdesk"], ["Helpdesk "]])
def test_default_deny_without_a_mapped_group(make_role, groups) -> None:
    make_role("viewer", ["whoami", "get_user"], "Helpdesk")

    access = tools_allowed_for(groups=groups, scopes=[READ, WRITE])

    assert access.roles == ()
    assert access.granted == frozenset() and access.usable == frozenset()
    assert not access.can_call("whoami")


def test_no_roles_at_all_grants_nothing(db) -> None:
    assert not Role.objects.exists()
    assert tools_allowed_for(groups=["Identity Admins"], group_ids=["00g1idadmins000000001"]).granted == frozenset()


def test_a_role_without_tools_grants_nothing(make_role) -> None:
    make_role("empty", [], "Helpdesk")
    access = tools_allowed_for(groups=["Helpdesk"])
    assert access.roles == ("empty",) and access.granted == frozenset()


def test_unknown_tool_names_stored_on_a_role_are_never_granted(make_role, extra_tools) -> None:
    role = make_role("viewer", ["whoami"], "Helpdesk")
    # A row written before a tool was removed or renamed in code (bypassing the service, which refuses it).
    Role.objects.filter(pk=role.pk).update(tools=["whoami", "delete_everything", "WHOAMI", "whoami ", 7, {"x": 1}])

    access = tools_allowed_for(groups=["Helpdesk"], scopes=[READ, WRITE])

    assert access.granted == {"whoami"}
    assert not access.can_call("delete_everything")
    assert "delete_everything" not in REGISTRY


def test_a_tool_added_to_the_registry_later_is_granted_only_once_named_by_a_role(make_role, extra_tools) -> None:
    make_role("viewer", ["whoami"], "Helpdesk")
    assert extra_tools["read"] not in tools_allowed_for(groups=["Helpdesk"]).granted


def test_a_non_list_tools_column_grants_nothing(make_role) -> None:
    role = make_role("viewer", ["whoami"], "Helpdesk")
    Role.objects.filter(pk=role.pk).update(tools="whoami")
    assert tools_allowed_for(groups=["Helpdesk"]).granted == frozenset()


def test_id_mapping_matches_by_id_only(make_role) -> None:
    make_role("admin", ["whoami", "get_user"], ("Identity Admins", "00g1idadmins000000001"))

    # Same name, another id (a new group that took the old name): no match.
    impostor = tools_allowed_for(groups=["Identity Admins"], group_ids=["00g9other0000000009"])
    # Same name and no id known for the user (groups from the ID token only): no match either.
    name_only = tools_allowed_for(groups=["Identity Admins"], group_ids=[])
    # The group was renamed in Okta, its id is unchanged: still matches.
    renamed = tools_allowed_for(groups=["IAM Team"], group_ids=["00g1idadmins000000001"])

    assert impostor.granted == frozenset() and impostor.roles == ()
    assert name_only.granted == frozenset()
    assert renamed.roles == ("admin",) and renamed.granted == {"whoami", "get_user"}


def test_name_mapping_matches_the_exact_name(make_role) -> None:
    make_role("viewer", ["whoami"], "Helpdesk")
    assert tools_allowed_for(groups=["Helpdesk"], group_ids=["00g1helpdesk000000001"]).roles == ("viewer",)
    assert tools_allowed_for(groups=["Help"]).roles == ()


def test_write_tool_needs_the_role_and_the_write_scope(make_role, extra_tools) -> None:
    wipe, read = extra_tools["write"], extra_tools["read"]
    make_role("admin", [wipe, read], "Identity Admins")
    make_role("viewer", [read], "Helpdesk")

    read_only_token = tools_allowed_for(groups=["Identity Admins"], scopes=[READ])
    write_token = tools_allowed_for(groups=["Identity Admins"], scopes=[READ, WRITE])
    no_role = tools_allowed_for(groups=["Helpdesk"], scopes=[READ, WRITE])

    assert read_only_token.usable == {read}
    assert not read_only_token.can_call(wipe) and read_only_token.needs_step_up(wipe)
    assert write_token.can_call(wipe) and not write_token.needs_step_up(wipe)
    assert write_token.usable == {read, wipe}
    # The scope alone is not enough: without the role, no step-up is offered either.
    assert not no_role.can_call(wipe) and not no_role.needs_step_up(wipe)
    assert no_role.usable == {read}
    assert [s.name for s in write_token.specs()] == sorted([read, wipe])


def test_write_scope_without_read_scope_calls_nothing(make_role, extra_tools) -> None:
    make_role("admin", [extra_tools["write"], extra_tools["read"]], "Identity Admins")
    access = tools_allowed_for(groups=["Identity Admins"], scopes=[WRITE])
    assert access.usable == frozenset()


def test_no_scopes_given_returns_what_the_roles_grant(make_role, extra_tools) -> None:
    make_role("admin", [extra_tools["write"], "whoami"], "Identity Admins")

    access = tools_allowed_for(groups=["Identity Admins"], scopes=None)

    assert access.scopes is None
    assert access.usable == access.granted == {extra_tools["write"], "whoami"}
    assert not access.needs_step_up(extra_tools["write"])


def test_empty_scopes_call_nothing(make_role) -> None:
    make_role("viewer", ["whoami"], "Helpdesk")
    access = tools_allowed_for(groups=["Helpdesk"], scopes=[])
    assert access.granted == {"whoami"} and access.usable == frozenset()


def test_policy_for_a_user_reads_their_stored_groups(make_role, make_user) -> None:
    make_role("viewer", ["whoami"], "Helpdesk")
    make_role("admin", ["get_user"], ("Identity Admins", "00g1idadmins000000001"))
    bob = make_user("bob@acme.example", ["Everyone", "Helpdesk"])
    alice = make_user("alice@acme.example", ["Identity Admins"], ["00g1idadmins000000001"])

    assert tools_allowed_for_user(bob, scopes=[READ]).usable == {"whoami"}
    assert tools_allowed_for_user(alice, scopes=[READ]).usable == {"get_user"}


def test_policy_changes_apply_to_the_next_question(make_role) -> None:
    role = make_role("viewer", ["whoami"], "Helpdesk")
    assert tools_allowed_for(groups=["Helpdesk"]).granted == {"whoami"}
    role.group_mappings.all().delete()
    assert tools_allowed_for(groups=["Helpdesk"]).granted == frozenset()
