"""ASGI entry point for daphne: /mcp goes to the MCP gate and SDK, everything else to Django."""

import gc
import os

GC_THRESHOLD_GEN0 = 50_000

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
# cuts tail latency (measured: p99 at 50 clients ~90 ms -> ~28 ms). Serving one MCP request
# allocates thousands of short-lived objects (pydantic models, dicts): with the default young-
# generation threshold (700) the collector ran two to three times per tools/list, each pass also
# walking whatever the process built after start-up. At 50,000 it runs every dozen or so requests;
# cyclic garbage waits a little longer (a few MB at most). docs/benchmarks.md has the measurements.
gc.collect()
gc.freeze()
gc.set_threshold(GC_THRESHOLD_GEN0, 20, 20)
