from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from consent.management.commands.revoke_consent import client_by_id, user_by_login
from consent.selectors import consent_list

COLUMNS = ("id", "user", "client", "scopes", "granted", "expires", "status")


class Command(BaseCommand):
    help = "List consents and their expiry, newest first, optionally for one user and/or client, or only active ones."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", metavar="LOGIN", help="only this user's consents (Okta login)")
        parser.add_argument("--client", metavar="CLIENT_ID", help="only consents for this client")
        parser.add_argument("--active", action="store_true", help="only consents that are neither expired nor revoked")

    def handle(self, *args: Any, **options: Any) -> None:
        user = user_by_login(options["user"]) if options["user"] else None
        application = client_by_id(options["client"]) if options["client"] else None
        rows = [
            (
                str(c.pk),
                str(c.user),
                c.application.client_id,
                c.scopes,
                c.granted_at.strftime("%Y-%m-%d %H:%M:%SZ"),
                c.expires_at.strftime("%Y-%m-%d %H:%M:%SZ"),
                c.status,
            )
            for c in consent_list(user=user, application=application, active=options["active"])
        ]
        widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(COLUMNS)]
        for row in [COLUMNS, *rows]:
            self.stdout.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        self.stdout.write(f"{len(rows)} consent(s)")
