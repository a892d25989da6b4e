from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from accounts.models import User
from tools.forms import OKTA_GROUP_ID, split_list
from tools.selectors import effective_access_report


class Command(BaseCommand):
    help = (
        "Show the roles and tools the policy gives a user (by Okta login or username), or a list of Okta "
        "groups. A user is judged on the groups stored at their last login or token refresh. Changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--user", metavar="LOGIN", help="Okta login (for example alice@acme.example) or username")
        who.add_argument("--groups", metavar="A,B", help="Comma-separated Okta group names")
        parser.add_argument(
            "--group-ids", metavar="ID,ID", default="", help="Comma-separated Okta group ids (with --groups)"
        )
        parser.add_argument(
            "--scopes",
            metavar='"mcp.read mcp.write"',
            help="The token's scopes, space- or comma-separated (default: the client's default scopes)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        scopes = None
        if options["scopes"] is not None:
            scopes = sorted(set(options["scopes"].replace(",", " ").split()))
            unknown = [s for s in scopes if s not in settings.OAUTH2_PROVIDER["SCOPES"]]
            if unknown or not scopes:
                known = " ".join(settings.OAUTH2_PROVIDER["SCOPES"])
                raise CommandError(f"unknown scope {' '.join(unknown) or '(empty)'}; known scopes: {known}")
        user = None
        groups: list[str] = []
        group_ids = split_list(options["group_ids"])
        if options["user"] is not None:
            login = options["user"].strip()
            if group_ids:
                raise CommandError("--group-ids goes with --groups, not with --user")
            matches = list(User.objects.filter(Q(okta_login__iexact=login) | Q(username=login))[:2]) if login else []
            if not matches:
                raise CommandError(f"no user with Okta login or username {login!r} (users appear at their first login)")
            if len(matches) > 1:
                raise CommandError(f"{login!r} matches more than one user; give the exact username")
            user = matches[0]
        else:
            groups = split_list(options["groups"])
            if not groups and not group_ids:
                raise CommandError("--groups needs at least one Okta group name")
            bad = [i for i in group_ids if not OKTA_GROUP_ID.match(i)]
            if bad:
                raise CommandError(f"not an Okta group id: {', '.join(bad)}")

        report = effective_access_report(user=user, groups=groups, group_ids=group_ids, scopes=scopes)

        if user is not None:
            synced = user.groups_synced_at.isoformat(timespec="seconds") if user.groups_synced_at else "never"
            self.stdout.write(f"User: {user} (Okta status {user.okta_status or '-'}, groups synced {synced})")
        self.stdout.write(f"Groups: {', '.join(report.groups) or 'none'}")
        if report.group_ids:
            self.stdout.write(f"Group ids: {', '.join(report.group_ids)}")
        self.stdout.write(f"Roles: {', '.join(report.access.roles) or 'none (no mapped group: default deny)'}")
        self.stdout.write(f"Scopes: {' '.join(report.scopes)}")
        if not report.rows:
            self.stdout.write("Tools: none")
            return
        self.stdout.write("Tools:")
        width = max(len(r.name) for r in report.rows)
        for row in report.rows:
            marks = [row.access] + (["destructive"] if row.destructive else [])
            line = f"  {row.name:<{width}}  {' '.join(marks)}"
            if row.needs_step_up:
                line += f"  (needs step-up: {' '.join(row.required_scopes)})"
            self.stdout.write(line)
