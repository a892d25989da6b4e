"""A stateful stand-in for Okta's Management API, for tests and `make demo`.

Run it with `python -m sandbox.okta_api --port 9500`; see README.md beside this file.
"""

from .app import SandboxConfig, create_app

__all__ = ["SandboxConfig", "create_app"]
