"""Settings for the test suite: the real settings module, pointed at the sandbox services that the
suite starts on loopback. Ports are chosen once and passed to the servers through the environment,
so the daphne process under test reads exactly the same configuration as the test process."""

import atexit
import os
import shutil
import socket
import tempfile
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if "OKTA_MCP_TEST_PORTS" not in os.environ:
    os.environ["OKTA_MCP_TEST_PORTS"] = ",".join(str(_free_port()) for _ in range(3))
SERVER_PORT, IDP_PORT, OKTA_API_PORT = (int(p) for p in os.environ["OKTA_MCP_TEST_PORTS"].split(","))

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ["PUBLIC_URL"] = f"http://127.0.0.1:{SERVER_PORT}"
os.environ["OKTA_ISSUER"] = f"http://127.0.0.1:{IDP_PORT}/oauth2/default"
os.environ["OKTA_CLIENT_ID"] = "okta-mcp-sandbox"
os.environ["OKTA_CLIENT_SECRET"] = "sandbox-secret-change-me"
os.environ.setdefault("OKTA_API_TOKEN", "sandbox-api-token")
os.environ.setdefault("OKTA_ORG_URL", f"http://127.0.0.1:{OKTA_API_PORT}")
os.environ.setdefault("OKTA_GROUPS_CACHE_SECONDS", "0")
os.environ.setdefault("OKTA_REQUEST_TIMEOUT_SECONDS", "5")
if "OKTA_MCP_TEST_DB" not in os.environ:
    # One directory per run, made by the process that runs the tests (the servers under test inherit
    # the path) and removed when it exits. Under test-artifacts/ (git-ignored), not /tmp: a run
    # killed before it could clean up leaves its database in the project, where `make clean` finds it.
    _RUN_PARENT = Path(__file__).resolve().parents[1] / "test-artifacts" / "tmp"
    _RUN_PARENT.mkdir(parents=True, exist_ok=True)
    _RUN_DIR = tempfile.mkdtemp(prefix="okta-mcp-test-", dir=_RUN_PARENT)
    atexit.register(shutil.rmtree, _RUN_DIR, ignore_errors=True)
    os.environ["OKTA_MCP_TEST_DB"] = os.path.join(_RUN_DIR, "test.sqlite3")
os.environ.setdefault("DATABASE_URL", "sqlite:///" + os.environ["OKTA_MCP_TEST_DB"].replace("test.sqlite3", "unused.sqlite3"))

from okta_mcp.settings import *  # noqa: E402,F403
from okta_mcp.settings import DATABASES  # noqa: E402

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not pytest-django's in-memory default: the daphne process under test shares it.
    DATABASES["default"]["TEST"] = {"NAME": os.environ["OKTA_MCP_TEST_DB"]}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
