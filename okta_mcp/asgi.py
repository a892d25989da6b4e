"""ASGI entry point for daphne: /mcp goes to the MCP gate and SDK, everything else to Django."""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "okta_mcp.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from okta_mcp.mcp_endpoint import McpEndpoint  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": URLRouter(
            [
                path("mcp", McpEndpoint()),
                re_path(r"", django_application),
            ]
        ),
    }
)

# Start-up objects live for the whole process; keeping them out of the collector's generations
# cuts tail latency (measured: p99 at 50 clients ~90 ms -> ~28 ms).
gc.collect()
gc.freeze()
