from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from oauth2_provider.models import Application

from audit.services import RequestMeta
from consent.services import client_register
from tools.services import policy_seed_demo

DEMO_CLIENT_ID = "demo-mcp-client"
DEMO_REDIRECTS = [
    "http://127.0.0.1/callback",
    "http://localhost/callback",
    "http://localhost:6274/oauth/callback",
    "http://localhost:6274/oauth/callback/debug",
]


class Command(BaseCommand):
    help = "Seed the demo: the public client demo-mcp-client and the viewer/admin roles. Safe to run twice."

    def handle(self, *args: Any, **options: Any) -> None:
        if not Application.objects.filter(client_id=DEMO_CLIENT_ID).exists():
            client_register(
                name="Demo MCP client",
                client_id=DEMO_CLIENT_ID,
                redirect_uris=DEMO_REDIRECTS,
                confidential=False,
                actor=None,
                meta=RequestMeta.for_command("seed_demo"),
            )
        roles = policy_seed_demo()
        self.stdout.write(f"demo client {DEMO_CLIENT_ID}; roles: {', '.join(r.name for r in roles)}")
