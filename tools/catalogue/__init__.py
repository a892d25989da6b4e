"""The tools. Each is a typed function: a validated input model in, a Pydantic result out, Okta
called through `tools.okta` (`okta_read` for reads, `okta_call` for changes) with the server's own
credential. Importing this package fills the registry (tools.apps does it at start-up).

users, groups, apps, policies, logs, security: the reads (scope mcp.read); writes: the guarded
changes (scopes mcp.read mcp.write); common: what they share; check: `manage.py okta_check`."""

from tools.catalogue import apps, groups, logs, policies, security, users, writes
from tools.catalogue.common import checked_identifier

__all__ = ["apps", "checked_identifier", "groups", "logs", "policies", "security", "users", "writes"]
