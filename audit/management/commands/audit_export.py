from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.management.commands._args import parse_when
from audit.services import EXPORT_FORMATS, AuditError, RequestMeta, audit_export


class Command(BaseCommand):
    help = (
        "Export the audit trail as JSON lines or CSV, streamed (memory does not grow with the row count). "
        "Each row carries prev_hash and hash, so the export can be checked offline. --since is inclusive, "
        "--until exclusive; dates without an offset are UTC. The export itself is recorded in the trail."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", required=True, choices=EXPORT_FORMATS)
        parser.add_argument("--since", metavar="ISO", help="rows created at or after this date or date-time")
        parser.add_argument("--until", metavar="ISO", help="rows created before this date or date-time")
        parser.add_argument("--output", metavar="FILE", help="write here instead of stdout (must not exist yet)")

    def handle(self, *args: Any, **options: Any) -> None:
        since = parse_when(options["since"], "--since") if options["since"] else None
        until = parse_when(options["until"], "--until") if options["until"] else None
        if since and until and since >= until:
            raise CommandError("--since must be before --until")
        target = Path(options["output"]) if options["output"] else None
        if target is not None and (target.exists() or not target.parent.is_dir()):
            raise CommandError(f"--output {target}: the file exists or its directory does not")
        meta = RequestMeta.for_command("audit_export")
        try:
            if target is None:
                count = audit_export(out=self.stdout, fmt=options["format"], since=since, until=until, meta=meta)
            else:
                with target.open("x", encoding="utf-8", newline="") as out:
                    count = audit_export(out=out, fmt=options["format"], since=since, until=until, meta=meta)
        except AuditError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"exported {count} row(s){f' to {target}' if target else ''}")
