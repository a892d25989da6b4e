"""The role admin through the Django test client, posting the real change form (inline management
form included): every change goes through tools.services and leaves a policy.changed row naming
who made it; bad input is refused and changes nothing."""

from __future__ import annotations

import hashlib
import re

import pytest

from audit.models import AuditEvent
from tests.tools.conftest import MODEL_BACKEND, admin_form_data
from tools.models import GroupMapping, Role, ToolConfirmation
from tools.registry import REGISTRY
from tools.selectors import tools_allowed_for

CHANGELIST = "/admin/tools/role/"


def change_url(role: Role) -> str:
    return f"/admin/tools/role/{role.pk}/change/"


def policy_rows() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_type="policy.changed").order_by("id"))


def snapshot() -> tuple:
    roles = list(Role.objects.order_by("pk").values_list("pk", "name", "description", "tools"))
    mappings = list(GroupMapping.objects.order_by("pk").values_list("pk", "role_id", "group_name", "okta_group_id"))
    return roles, mappings, AuditEvent.objects.count()


def post_change(client, role: Role, **changes):
    """GET the change page, apply `changes` (field name -> list of values, or None to drop), POST it."""
    page = client.get(change_url(role))
    assert page.status_code == 200
    data = admin_form_data(page.content.decode(), "role_form")
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return client.post(change_url(role), data)


def test_changelist_has_search_filters_warning_and_effective_access_link(admin_client, make_role) -> None:
    make_role("viewer", ["whoami"], "Helpdesk")
    stale = make_role("legacy", ["whoami"], "Contractors")
    Role.objects.filter(pk=stale.pk).update(tools=["whoami", "removed_tool"])

    page = admin_client.get(CHANGELIST).content.decode()

    assert 'href="/admin/tools/role/effective-access/"' in page
    assert 'id="searchbar"' in page and 'id="changelist-filter"' in page
    for choice in ("write tools", "destructive tools", "names not in the registry", "no Okta group"):
        assert choice in page
    assert "Roles naming tools that are not in the registry (they grant nothing): legacy" in page
    assert '<strong class="unknown-tools">⚠ removed_tool</strong>' in page

    found = admin_client.get(CHANGELIST, {"q": "Contractors"}).content.decode()
    assert ">legacy</a>" in found and ">viewer</a>" not in found
    unknown = admin_client.get(CHANGELIST, {"grants": "unknown"}).content.decode()
    assert ">legacy</a>" in unknown and ">viewer</a>" not in unknown


def test_filters_by_write_and_destructive_tools(admin_client, make_role, extra_tools) -> None:
    make_role("viewer", ["whoami"], "Helpdesk")
    make_role("admin", ["whoami", extra_tools["write"]], "Identity Admins")
    make_role("unmapped", [])

    def listed(**query: str) -> set[str]:
        html = admin_client.get(CHANGELIST, query).content.decode()
        return set(re.findall(r'/admin/tools/role/\d+/change/[^"]*">([\w-]+)</a>', html))

    assert listed(grants="write") == {"admin"}
    assert listed(grants="destructive") == {"admin"}
    assert listed(grants="read_only") == {"viewer"}
    assert listed(grants="nothing") == {"unmapped"}
    assert listed(mapped="no") == {"unmapped"}
    assert listed(mapped="yes") == {"viewer", "admin"}


def test_change_form_lists_tools_grouped_read_write_with_destructive_marked(
    admin_client, make_role, extra_tools
) -> None:
    role = make_role("admin", ["whoami"], "Identity Admins")

    page = admin_client.get(change_url(role)).content.decode()

    read_block = page.index("<label>Read</label>")
    write_block = page.index("<label>Write</label>")
    read_box = page.index(f'value="{extra_tools["read"]}"')
    write_box = page.index(f'value="{extra_tools["write"]}"')
    assert read_block < read_box < write_block < write_box
    assert re.search(rf'value="{extra_tools["write"]}"[^>]*>\s*{extra_tools["write"]} — [^<]*\(destructive\)', page)
    assert re.search(r'value="whoami"[^>]*checked', page)
    assert 'name="group_mappings-TOTAL_FORMS"' in page and 'id="unknown-tools-warning"' not in page


def test_add_role_with_mapping_is_recorded_with_its_author(admin_client, extra_tools) -> None:
    page = admin_client.get("/admin/tools/role/add/").content.decode()
    data = admin_form_data(page, "role_form")
    data.update(
        {
            "name": ["auditors"],
            "description": ["Read-only for the audit team"],
            "tools": ["whoami", extra_tools["read"]],
            "group_mappings-0-group_name": ["Auditors"],
            "group_mappings-0-okta_group_id": ["00g1auditors00000001"],
        }
    )

    response = admin_client.post("/admin/tools/role/add/", data)

    assert response.status_code == 302, response.content.decode()[:2000]
    role = Role.objects.get(name="auditors")
    assert role.tools == sorted(["whoami", extra_tools["read"]])
    mappings = list(role.group_mappings.values_list("group_name", "okta_group_id"))
    assert mappings == [("Auditors", "00g1auditors00000001")]
    rows = policy_rows()
    assert [r.reason for r in rows] == ["role created", "mapping created"]
    assert all(r.actor_login == "admin" and r.actor_user_id is not None for r in rows)
    assert rows[0].target == "role:auditors" and rows[0].details["tools_added"] == role.tools
    assert rows[1].details == {"group_name": "Auditors", "okta_group_id": "00g1auditors00000001"}
    assert tools_allowed_for(groups=["Auditors"], group_ids=["00g1auditors00000001"]).granted == set(role.tools)


def test_changing_tools_records_what_was_added_and_removed(admin_client, make_role, extra_tools) -> None:
    role = make_role("viewer", ["whoami", "get_user"], "Helpdesk")
    before = len(policy_rows())

    response = post_change(admin_client, role, tools=["whoami", extra_tools["write"]])

    assert response.status_code == 302
    role.refresh_from_db()
    assert role.tools == sorted(["whoami", extra_tools["write"]])
    rows = policy_rows()[before:]
    assert [r.reason for r in rows] == ["role changed"]
    assert rows[0].actor_login == "admin"
    assert rows[0].details["tools_added"] == [extra_tools["write"]]
    assert rows[0].details["tools_removed"] == ["get_user"]
    assert rows[0].details["changed"] == ["tools"]
    assert tools_allowed_for(groups=["Helpdesk"]).granted == {"whoami", extra_tools["write"]}


def test_inline_change_addition_and_deletion_are_each_recorded(admin_client, make_role) -> None:
    role = make_role("viewer", ["whoami"], "Helpdesk", "Contractors")
    helpdesk = role.group_mappings.get(group_name="Helpdesk")
    contractors = role.group_mappings.get(group_name="Contractors")
    index = {m.pk: i for i, m in enumerate(role.group_mappings.all())}  # the inline's order
    before = len(policy_rows())

    response = post_change(
        admin_client,
        role,
        **{
            f"group_mappings-{index[helpdesk.pk]}-okta_group_id": ["00g1helpdesk000000001"],
            f"group_mappings-{index[contractors.pk]}-DELETE": ["on"],
            "group_mappings-2-group_name": ["Identity Admins"],
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    assert set(role.group_mappings.values_list("group_name", "okta_group_id")) == {
        ("Helpdesk", "00g1helpdesk000000001"),
        ("Identity Admins", ""),
    }
    rows = policy_rows()[before:]
    assert sorted(r.reason for r in rows) == ["mapping changed", "mapping created", "mapping deleted"]
    assert all(r.actor_login == "admin" and r.target == "role:viewer" for r in rows)
    by_reason = {r.reason: r.details for r in rows}
    assert by_reason["mapping deleted"] == {"group_name": "Contractors", "okta_group_id": ""}
    assert by_reason["mapping changed"]["before"] == {"group_name": "Helpdesk", "okta_group_id": ""}
    assert by_reason["mapping changed"]["okta_group_id"] == "00g1helpdesk000000001"
    assert tools_allowed_for(groups=["Contractors"]).granted == frozenset()
    # The Helpdesk mapping now matches by id only.
    assert tools_allowed_for(groups=["Helpdesk"]).granted == frozenset()
    assert tools_allowed_for(groups=["Helpdesk"], group_ids=["00g1helpdesk000000001"]).granted == {"whoami"}


def test_saving_unchanged_records_nothing(admin_client, make_role) -> None:
    role = make_role("viewer", ["whoami"], "Helpdesk")
    before = snapshot()

    response = post_change(admin_client, role)

    assert response.status_code == 302
    assert snapshot()[:2] == before[:2]
    assert len(policy_rows()) == 2  # the fixture's create rows only


def test_stale_tool_names_are_flagged_and_dropped_on_save(admin_client, make_role) -> None:
    role = make_role("viewer", ["whoami"], "Helpdesk")
    Role.objects.filter(pk=role.pk).update(tools=["whoami", "removed_tool"])

    page = admin_client.get(change_url(role)).content.decode()
    assert 'id="unknown-tools-warning"' in page and "<code>removed_tool</code>" in page

    response = post_change(admin_client, role)

    assert response.status_code == 302
    role.refresh_from_db()
    assert role.tools == ["whoami"]
    assert policy_rows()[-1].details["tools_removed"] == ["removed_tool"]


def test_deleting_a_role_is_recorded_with_its_grants(admin_client, make_role) -> None:
    role = make_role("viewer", ["whoami"], "Helpdesk")

    response = admin_client.post(f"/admin/tools/role/{role.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Role.objects.exists() and not GroupMapping.objects.exists()
    row = policy_rows()[-1]
    assert row.reason == "role deleted" and row.actor_login == "admin" and row.target == "role:viewer"
    assert row.details == {"tools": ["whoami"], "groups": [{"group_name": "Helpdesk", "okta_group_id": ""}]}


def test_bulk_delete_action_records_every_role(admin_client, make_role) -> None:
    a = make_role("viewer", ["whoami"], "Helpdesk")
    b = make_role("admin", ["get_user"], "Identity Admins")

    response = admin_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [a.pk, b.pk], "post": "yes"}
    )

    assert response.status_code == 302
    assert not Role.objects.exists()
    deleted = [r for r in policy_rows() if r.reason == "role deleted"]
    assert sorted(r.target for r in deleted) == ["role:admin", "role:viewer"]
    assert all(r.actor_login == "admin" for r in deleted)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"tools": ["whoami", "delete_everything"]}, "Select a valid choice. delete_everything is not one of"),
        ({"name": ["not a slug!"]}, "Enter a valid “slug”"),
        ({"group_mappings-0-okta_group_id": ["../00g1"]}, "An Okta group id has letters and digits only"),
        ({"group_mappings-1-group_name": ["Helpdesk"]}, "Please correct the duplicate data for group_name"),
        ({"group_mappings-0-group_name": [""]}, "This field is required"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(admin_client, make_role, changes, error) -> None:
    role = make_role("viewer", ["whoami"], "Helpdesk")
    before = snapshot()

    response = post_change(admin_client, role, **changes)

    assert response.status_code == 200
    assert error in response.content.decode()
    assert snapshot() == before


def test_name_clash_with_another_role_is_refused(admin_client, make_role) -> None:
    make_role("admin", ["whoami"])
    role = make_role("viewer", ["whoami"], "Helpdesk")
    before = snapshot()

    response = post_change(admin_client, role, name=["admin"])

    assert response.status_code == 200 and "Role with this Name already exists." in response.content.decode()
    assert snapshot() == before


def test_people_without_staff_rights_cannot_reach_the_policy(client, make_user, make_role) -> None:
    role = make_role("viewer", ["whoami"], "Helpdesk")
    client.force_login(make_user("bob@acme.example", ["Helpdesk"]), backend=MODEL_BACKEND)
    before = snapshot()

    for url in (CHANGELIST, change_url(role), "/admin/tools/role/effective-access/?groups=Helpdesk"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    response = client.post(change_url(role), {"name": "viewer", "tools": ["whoami", "get_user"]})
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert snapshot() == before


def test_staff_without_role_permissions_gets_403(client, make_user, make_role) -> None:
    make_role("viewer", ["whoami"], "Helpdesk")
    staff = make_user("helpdesk-lead@acme.example", ["Helpdesk"], is_staff=True)
    client.force_login(staff, backend=MODEL_BACKEND)

    assert client.get(CHANGELIST).status_code == 403
    assert client.get("/admin/tools/role/effective-access/", {"groups": "Helpdesk"}).status_code == 403


# The services are the backstop behind the admin forms: whatever calls them, bad policy is refused.


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        (["whoami", "delete_everything"], "not in the tool registry: delete_everything"),
        ("whoami", "tools must be a list of tool names"),
        (["whoami", 7], "tools must be a list of tool names"),
    ],
)
def test_role_save_refuses_unregistered_tools_and_changes_nothing(make_role, tools, message) -> None:
    from audit.services import RequestMeta
    from tools.services import PolicyError, role_save

    role = make_role("viewer", ["whoami"], "Helpdesk")
    before = snapshot()
    role.tools = tools

    with pytest.raises(PolicyError, match=re.escape(message)):
        role_save(role=role, actor=None, meta=RequestMeta())

    assert snapshot() == before


@pytest.mark.parametrize(
    ("group_name", "group_id", "message"),
    [
        ("Auditors", "00g/../x", "an Okta group id has letters and digits only"),
        ("Helpdesk", "", "Group mapping with this Role and Group name already exists."),
        ("   ", "", "group_name: This field cannot be blank."),
    ],
)
def test_group_mapping_save_refuses_bad_mappings_and_changes_nothing(make_role, group_name, group_id, message) -> None:
    from audit.services import RequestMeta
    from tools.services import PolicyError, group_mapping_save

    role = make_role("viewer", ["whoami"], "Helpdesk")
    before = snapshot()

    with pytest.raises(PolicyError, match=re.escape(message)):
        mapping = GroupMapping(role=role, group_name=group_name, okta_group_id=group_id)
        group_mapping_save(mapping=mapping, actor=None, meta=RequestMeta())

    assert snapshot() == before


def test_seeding_the_demo_twice_changes_and_records_nothing_the_second_time(db) -> None:
    from tools.services import policy_seed_demo

    policy_seed_demo()
    before = snapshot()
    policy_seed_demo()
    assert snapshot() == before
    assert {r.name: set(r.tools) for r in Role.objects.all()}["admin"] == set(REGISTRY)


# Confirmations of destructive tool calls: security data, shown read-only, the token never.

CONFIRMATIONS = "/admin/tools/toolconfirmation/"


def _principal(user, client_id: str = "vscode"):
    from django.utils import timezone

    from consent.tokens import Principal

    now = timezone.now()
    return Principal(
        user_id=user.pk, okta_sub=user.okta_sub, login=user.okta_login, client_id=client_id, client_name=client_id,
        scopes=frozenset({"mcp.read", "mcp.write"}), token_expires=now, consent_id=1, consent_expires=now,
        groups=(), group_ids=(),
    )  # fmt: skip


@pytest.fixture
def confirmations(make_user, settings) -> dict:
    """One pending, one used and one expired confirmation, issued and redeemed by the real service;
    the raw tokens are kept to prove they never reach the admin."""
    from tools.confirmations import confirmation_issue, confirmation_redeem

    alice = make_user("alice@acme.example", ["Identity Admins"])
    bob = make_user("bob@acme.example", ["Helpdesk"])
    args = {"user_id": "00u1carol00000000001"}
    pending = confirmation_issue(
        principal=_principal(alice), tool="suspend_user", arguments=args, summary="Suspend carol"
    )
    used = confirmation_issue(
        principal=_principal(bob), tool="deactivate_user", arguments=args, summary="Deactivate carol"
    )
    confirmation_redeem(principal=_principal(bob), tool="deactivate_user", arguments=args, token=used.token)
    settings.TOOL_CONFIRMATION_SECONDS = -1
    expired = confirmation_issue(
        principal=_principal(alice, "claude"), tool="clear_user_sessions", arguments=args, summary="Sign carol out"
    )
    tokens = {"pending": pending.token, "used": used.token, "expired": expired.token}
    rows = {
        name: ToolConfirmation.objects.get(token_hash=hashlib.sha256(token.encode()).hexdigest())
        for name, token in tokens.items()
    }
    return {"tokens": tokens, "rows": rows}


def _confirmation_rows() -> list[tuple]:
    return list(ToolConfirmation.objects.order_by("pk").values_list())


def _listed(client, query: str = "") -> set[int]:
    response = client.get(CONFIRMATIONS + query)
    assert response.status_code == 200, query
    return {row.pk for row in response.context["cl"].result_list}


def test_confirmations_are_listed_with_who_tool_and_status_never_the_token(admin_client, confirmations) -> None:
    rows = confirmations["rows"]
    page = admin_client.get(CONFIRMATIONS).content.decode()
    for login, tool in (("alice@acme.example", "suspend_user"), ("bob@acme.example", "deactivate_user")):
        assert login in page and tool in page
    assert "Sign carol out" in page and "expired unused" in page and ">used<" in page and ">pending<" in page
    assert 'id="changelist-filter"' in page and 'id="searchbar"' in page

    detail = admin_client.get(f"{CONFIRMATIONS}{rows['pending'].pk}/change/")
    assert detail.status_code == 200 and "Suspend carol" in detail.content.decode()
    for response in (page, detail.content.decode()):
        for name, token in confirmations["tokens"].items():
            assert token not in response
            assert rows[name].token_hash not in response and rows[name].arguments_hash not in response


def test_confirmations_filter_by_status_tool_and_user_and_search_by_login_or_tool(admin_client, confirmations) -> None:
    rows = {name: row.pk for name, row in confirmations["rows"].items()}
    alice = confirmations["rows"]["pending"].user

    assert _listed(admin_client) == set(rows.values())
    assert _listed(admin_client, "?status=pending") == {rows["pending"]}
    assert _listed(admin_client, "?status=used") == {rows["used"]}
    assert _listed(admin_client, "?status=expired") == {rows["expired"]}
    assert _listed(admin_client, "?tool=deactivate_user") == {rows["used"]}
    assert _listed(admin_client, f"?user__id__exact={alice.pk}") == {rows["pending"], rows["expired"]}
    assert _listed(admin_client, "?client_id=claude") == {rows["expired"]}
    assert _listed(admin_client, "?q=bob@acme") == {rows["used"]}
    assert _listed(admin_client, "?q=suspend_user") == {rows["pending"]}
    # Neither the token nor its digest finds anything: the admin is no oracle for them.
    for name, token in confirmations["tokens"].items():
        assert _listed(admin_client, f"?q={token}") == set()
        assert _listed(admin_client, f"?q={confirmations['rows'][name].token_hash}") == set()


def test_confirmations_cannot_be_added_changed_or_deleted_even_by_a_superuser(admin_client, confirmations) -> None:
    row = confirmations["rows"]["pending"]
    before = _confirmation_rows()

    assert admin_client.get(CONFIRMATIONS + "add/").status_code == 403
    assert admin_client.post(CONFIRMATIONS + "add/", {"tool": "suspend_user", "user": row.user_id}).status_code == 403
    assert admin_client.post(f"{CONFIRMATIONS}{row.pk}/change/", {"used_at_0": "2030-01-01"}).status_code == 403
    assert admin_client.get(f"{CONFIRMATIONS}{row.pk}/delete/").status_code == 403
    assert admin_client.post(f"{CONFIRMATIONS}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get(CONFIRMATIONS).context["action_form"] is None  # no actions, "delete selected" included
    bulk = {"action": "delete_selected", "_selected_action": [str(row.pk)], "post": "yes"}
    assert admin_client.post(CONFIRMATIONS, bulk).status_code in (200, 302)
    detail = admin_client.get(f"{CONFIRMATIONS}{row.pk}/change/").content.decode()
    assert 'name="_save"' not in detail
    assert not re.search(r'<(input|select|textarea)[^>]* name="(?!csrfmiddlewaretoken)', detail)

    assert _confirmation_rows() == before


def test_staff_see_confirmations_only_with_the_view_permission(client, make_user, confirmations) -> None:
    from django.contrib.auth.models import Permission

    staff = make_user("helpdesk-lead@acme.example", ["Helpdesk"], is_staff=True)
    client.force_login(staff, backend=MODEL_BACKEND)
    assert client.get(CONFIRMATIONS).status_code == 403

    staff.user_permissions.add(Permission.objects.get(codename="view_toolconfirmation"))
    client.force_login(staff, backend=MODEL_BACKEND)
    assert _listed(client) == {row.pk for row in confirmations["rows"].values()}
    assert client.post(f"{CONFIRMATIONS}{confirmations['rows']['pending'].pk}/change/", {}).status_code == 403
