from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.management.commands._args import parse_when
from audit.services import AuditError, RequestMeta, audit_prune


class Command(BaseCommand):
    help = (
        "Delete audit rows created before DATE, keeping the rest verifiable: a checkpoint row records the id "
        "and hash of the last row removed, and audit_verify starts from it. Refuses a future DATE, a chain "
        "that does not verify, and a DATE that would remove the newest checkpoint. Safe to run twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--before", required=True, metavar="DATE", help="ISO 8601 date or date-time (UTC if no offset)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        before = parse_when(options["before"], "--before")
        try:
            result = audit_prune(before=before, meta=RequestMeta.for_command("audit_prune"))
        except AuditError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(str(result))
