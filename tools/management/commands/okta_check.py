from __future__ import annotations

import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tools.catalogue.check import OktaCheckFailed, okta_check


class Command(BaseCommand):
    help = (
        "Connect to Okta with the configured credential and report, per tool, the Okta scopes it needs and "
        "whether they work: with an SSWS token one read per scope is tried (writes never are); with an OAuth "
        "service app the configured OKTA_API_SCOPES are compared. Exits non-zero when the credential does not "
        "work or a tool cannot. Changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-connect", action="store_true", help="Only compare configured scopes; make no Okta call"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = asyncio.run(okta_check(connect=not options["no_connect"]))
        except OktaCheckFailed as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Okta org: {report.org_url} ({report.mode})")
        self.stdout.write(f"Connection: {report.connection}")
        self.stdout.write("Tools:")
        width = max(len(t.name) for t in report.tools)
        for tool in report.tools:
            scopes = " ".join(tool.okta_scopes) or "-"
            detail = f" ({tool.detail})" if tool.detail else ""
            self.stdout.write(f"  {tool.name:<{width}}  {tool.access:<5}  {tool.status}  [{scopes}]{detail}")
        counts = {s: sum(1 for t in report.tools if t.status == s) for s in ("ok", "not probed", "missing scope", "failing")}
        self.stdout.write(f"{len(report.tools)} tools: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
        if report.failing:
            raise CommandError(
                f"{len(report.failing)} tool(s) cannot work with this credential: "
                + ", ".join(t.name for t in report.failing)
            )
