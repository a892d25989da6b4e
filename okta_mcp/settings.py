"""The one settings module. Everything that differs between machines comes from the environment
(or an optional `.env` beside manage.py), read through django-environ; `.env.example` documents
every variable. Required secrets have no default, so a missing one stops start-up with one line."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _optional(name: str, default: str) -> str:
    """An optional string; an empty value (as in a copied .env.example) means the default."""
    return env.str(name, default="") or default


def _required(name: str) -> str:
    try:
        value = env.str(name)
    except ImproperlyConfigured:
        value = ""
    if not value:
        # One clear line, no traceback wall: the operator only needs the variable's name.
        sys.stderr.write(f"okta-mcp: required setting {name} is not set (see .env.example)\n")
        raise SystemExit(2)
    return value


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = _required("SECRET_KEY")

# PUBLIC_URL alone decides the issuer, the resource identifier and every URL in metadata; the
# Host header never does (a request with another Host cannot change what we advertise).
PUBLIC_URL = _required("PUBLIC_URL").rstrip("/")
_public = urlsplit(PUBLIC_URL)
if _public.scheme not in ("http", "https") or not _public.netloc or _public.path or _public.query:
    sys.stderr.write(f"okta-mcp: PUBLIC_URL must be an origin such as https://mcp.example.com, got {PUBLIC_URL!r}\n")
    raise SystemExit(2)
if not DEBUG and _public.scheme != "https" and _public.hostname not in ("127.0.0.1", "localhost", "::1"):
    sys.stderr.write("okta-mcp: PUBLIC_URL must use https unless it is a loopback address\n")
    raise SystemExit(2)
ISSUER = PUBLIC_URL
MCP_RESOURCE = PUBLIC_URL + "/mcp"
PUBLIC_HOST = _public.netloc
ORG_NAME = _optional("ORG_NAME", "Okta MCP")

ALLOWED_HOSTS = [_public.hostname or ""] + [h for h in env.list("EXTRA_ALLOWED_HOSTS", default=[]) if h]
# Origins a browser-based MCP client may call /mcp from; requests without Origin (native clients) pass.
MCP_ALLOWED_ORIGINS = [PUBLIC_URL] + [o for o in env.list("MCP_ALLOWED_ORIGINS", default=[]) if o]
MCP_MAX_BODY_BYTES = env.int("MCP_MAX_BODY_BYTES", default=1024 * 1024)
# Sessions of the 2025-11-25 protocol (Mcp-Session-Id) live in the memory of the process that opened
# them. "memory" suits one process; with several replicas behind a load balancer use "stateless":
# every legacy request is then served on its own, without a session id, by whichever replica gets it.
# The 2026-07-28 protocol is stateless either way.
MCP_LEGACY_SESSIONS = _optional("MCP_LEGACY_SESSIONS", "memory")
if MCP_LEGACY_SESSIONS not in ("memory", "stateless"):
    sys.stderr.write(f"okta-mcp: MCP_LEGACY_SESSIONS must be memory or stateless, got {MCP_LEGACY_SESSIONS!r}\n")
    raise SystemExit(2)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "oauth2_provider",
    "mozilla_django_oidc",
    "accounts",
    "audit",
    "tools",
    "consent",
]

MIDDLEWARE = [
    "okta_mcp.observability.RequestObservationMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's static files from the app server itself (daphne serves none), so a single
    # process needs no separate web server for them; a CDN or nginx in front may still cache them.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "okta_mcp.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "okta_mcp.urls"
ASGI_APPLICATION = "okta_mcp.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "okta_mcp.context_processors.site",
            ],
        },
    },
]

DATABASES = {"default": env.db_url_config(_optional("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The async MCP handlers and the Django views write from several threads; wait for the lock.
    # IMMEDIATE transactions queue writers on the lock instead of failing on upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
else:
    # Django's views run each request in a thread of its own under ASGI: a persistent connection
    # would stay with a finished thread until the garbage collector found it, and PostgreSQL ran out
    # of connections under load. /mcp does not need them: its audit writer keeps its own connection.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = _optional("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# How long a replica may reuse a bearer token it has verified (consent.principal_cache); every change
# that could alter the answer invalidates it on all replicas at once through Redis. Needs REDIS_URL;
# 0 verifies every request against the database.
MCP_PRINCIPAL_CACHE_SECONDS = env.int("MCP_PRINCIPAL_CACHE_SECONDS", default=60) if REDIS_URL else 0
# Read-path audit rows (tool lists, read tool calls, denials) are committed without waiting for the
# WAL flush on PostgreSQL; a write tool's decision always waits. See audit/writer.py.
AUDIT_ASYNC_COMMIT = env.bool("AUDIT_ASYNC_COMMIT", default=True)

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "accounts.backends.OktaOIDCBackend",
    # Local passwords exist only for break-glass Django admin accounts created with createsuperuser.
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "oidc_authentication_init"
LOGIN_REDIRECT_URL = "/"
LOGIN_REDIRECT_URL_FAILURE = "/login-failed"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# Files are found in the installed apps directly, so the server works without a collectstatic step;
# `manage.py collectstatic` into STATIC_ROOT still works for a proxy that serves them itself.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = _optional("STATIC_ROOT", str(BASE_DIR / "staticfiles"))

# --- Lifetimes (seconds) -------------------------------------------------------------------------
CONSENT_LIFETIME_SECONDS = env.int("CONSENT_LIFETIME_SECONDS", default=24 * 3600)
LOGIN_SESSION_SECONDS = env.int("LOGIN_SESSION_SECONDS", default=2 * 3600)
ACCESS_TOKEN_SECONDS = min(env.int("ACCESS_TOKEN_SECONDS", default=3600), 3600)
OKTA_GROUPS_CACHE_SECONDS = env.int("OKTA_GROUPS_CACHE_SECONDS", default=60)

# --- Browser session and cookies -----------------------------------------------------------------
SESSION_COOKIE_AGE = LOGIN_SESSION_SECONDS
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# DOT's W008 flags the "http" redirect scheme, which is allowed for loopback callbacks only (see
# ALLOWED_REDIRECT_URI_SCHEMES below).
SILENCED_SYSTEM_CHECKS = ["oauth2_provider.W008"]
if _public.scheme == "https":
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # __Host- cookies are only accepted by browsers when Secure, path=/ and without Domain.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    if not SECURE_HSTS_PRELOAD:
        # Asking browsers to preload HSTS binds every subdomain for good: the operator's decision.
        SILENCED_SYSTEM_CHECKS.append("security.W021")
    CSRF_TRUSTED_ORIGINS = [PUBLIC_URL]
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Authorization server (django-oauth-toolkit) ------------------------------------------------
SCOPE_READ = "mcp.read"
SCOPE_WRITE = "mcp.write"
OAUTH2_PROVIDER = {
    "SCOPES": {
        SCOPE_READ: "Read Okta data through the tools your roles allow",
        SCOPE_WRITE: "Change Okta through the tools your roles allow",
    },
    "DEFAULT_SCOPES": [SCOPE_READ],
    "OAUTH2_VALIDATOR_CLASS": "consent.oauth_validator.OktaMCPValidator",
    "OAUTH2_BACKEND_CLASS": "consent.oauth_validator.OktaMCPOAuthLibCore",
    # Only the authorization-code and refresh grants exist. With oauthlib's full Server the password
    # grant checked a local account's password before refusing the client, so /token answered
    # differently for a right and a wrong break-glass admin password.
    "OAUTH2_SERVER_CLASS": "oauthlib.oauth2.WebApplicationServer",
    "PKCE_REQUIRED": True,
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "ACCESS_TOKEN_EXPIRE_SECONDS": ACCESS_TOKEN_SECONDS,
    "REFRESH_TOKEN_EXPIRE_SECONDS": LOGIN_SESSION_SECONDS,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "REQUEST_APPROVAL_PROMPT": "force",
    "ALLOW_LOCALHOST_LOOPBACK": True,
    # http stays for native clients' loopback callbacks (RFC 8252 §7.3); every other http redirect is
    # refused by consent.oauth_validator.redirect_uri_allowed, at registration and at /authorize.
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"],
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    "OIDC_ISS_ENDPOINT": ISSUER,
    "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OAUTH2_GRANT_TYPES_SUPPORTED": ["authorization_code", "refresh_token"],
    "OAUTH2_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": ["none", "client_secret_basic", "client_secret_post"],
    "OAUTH2_PROTECTED_RESOURCE_IDENTIFIER": MCP_RESOURCE,
    "OAUTH2_PROTECTED_RESOURCE_AUTHORIZATION_SERVERS": [ISSUER],
    "OAUTH2_PROTECTED_RESOURCE_BEARER_METHODS_SUPPORTED": ["header"],
    "OAUTH2_PROTECTED_RESOURCE_NAME": ORG_NAME,
    # Client onboarding (consent.clients): both off unless enabled, and a client that registers
    # itself either way receives nothing until an administrator approves it (or, for a metadata
    # document, its host is on the allowlist).
    "CIMD_ENABLED": env.bool("CIMD_ENABLED", default=False),
    "CIMD_ALLOWED_HOSTS": [h.strip() for h in env.list("CIMD_ALLOWED_HOSTS", default=[]) if h.strip()],
    "CIMD_METADATA_FETCHER": "consent.cimd.MetadataFetcher",
    "CIMD_REGISTRATION_PERMISSION_CLASSES": ("consent.cimd.AuthorizationRequestPermission",),
    "DCR_ENABLED": env.bool("DCR_ENABLED", default=False),
    # Open registration is safe only because registered clients wait for approval (consent.dcr).
    "DCR_REGISTRATION_PERMISSION_CLASSES": ("oauth2_provider.dcr.AllowAllDCRPermission",),
    # The registration access token only reads the registration (RFC 7592 GET); DOT's default
    # lives until the year 9999.
    "DCR_REGISTRATION_TOKEN_EXPIRE_SECONDS": 24 * 3600,
}

# Self-registered clients waiting longer than this, and rejected ones, are removed by clear_expired
# (unless they were ever used); at most CLIENT_MAX_PENDING wait at once.
CLIENT_PENDING_MAX_AGE_SECONDS = env.int("CLIENT_PENDING_MAX_AGE_SECONDS", default=7 * 24 * 3600)
CLIENT_MAX_PENDING = env.int("CLIENT_MAX_PENDING", default=100)
# Whom people should ask when a client awaits approval (shown on that page), e.g. an email address.
CLIENT_APPROVAL_CONTACT = _optional("CLIENT_APPROVAL_CONTACT", "your security administrators")
if "*" in OAUTH2_PROVIDER["CIMD_ALLOWED_HOSTS"]:
    sys.stderr.write("okta-mcp: CIMD_ALLOWED_HOSTS must name hosts; \"*\" would approve every client\n")
    raise SystemExit(2)
# Admin messages can carry a client secret shown once: keep them in the server-side session, not in
# a signed (readable) cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# --- Login through Okta (mozilla-django-oidc) ---------------------------------------------------
OKTA_ISSUER = _required("OKTA_ISSUER").rstrip("/")
OIDC_RP_CLIENT_ID = _required("OKTA_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = _required("OKTA_CLIENT_SECRET")
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = _optional("OKTA_SCOPES_LOGIN", "openid profile email groups")
OIDC_OP_AUTHORIZATION_ENDPOINT = _optional("OKTA_AUTHORIZATION_ENDPOINT", OKTA_ISSUER + "/v1/authorize")
OIDC_OP_TOKEN_ENDPOINT = _optional("OKTA_TOKEN_ENDPOINT", OKTA_ISSUER + "/v1/token")
OIDC_OP_USER_ENDPOINT = _optional("OKTA_USERINFO_ENDPOINT", OKTA_ISSUER + "/v1/userinfo")
OIDC_OP_JWKS_ENDPOINT = _optional("OKTA_JWKS_ENDPOINT", OKTA_ISSUER + "/v1/keys")
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_USE_NONCE = True
OIDC_TIMEOUT = 10
OIDC_STATE_MAX_AGE_SECONDS = env.int("OKTA_LOGIN_STATE_SECONDS", default=600)
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
OIDC_CALLBACK_CLASS = "accounts.views.OktaCallbackView"
OIDC_STORE_ACCESS_TOKEN = False
OIDC_STORE_ID_TOKEN = False
OIDC_CREATE_USER = True

# --- Okta Management API for the tools (the okta SDK) ------------------------------------------
OKTA_ORG_URL = _required("OKTA_ORG_URL").rstrip("/")
OKTA_API_TOKEN = env.str("OKTA_API_TOKEN", default="")
OKTA_SERVICE_CLIENT_ID = env.str("OKTA_SERVICE_CLIENT_ID", default="")
OKTA_PRIVATE_KEY = env.str("OKTA_PRIVATE_KEY", default="")
OKTA_PRIVATE_KEY_FILE = env.str("OKTA_PRIVATE_KEY_FILE", default="")
OKTA_KEY_ID = env.str("OKTA_KEY_ID", default="")
OKTA_API_SCOPES = env.list("OKTA_API_SCOPES", default=["okta.users.read", "okta.groups.read"])
# Service app only: DPoP-bound access tokens (RFC 9449), for a service app that requires them.
OKTA_DPOP = env.bool("OKTA_DPOP", default=False)
OKTA_REQUEST_TIMEOUT_SECONDS = env.int("OKTA_REQUEST_TIMEOUT_SECONDS", default=15)
OKTA_MAX_CONCURRENT_REQUESTS = env.int("OKTA_MAX_CONCURRENT_REQUESTS", default=8)
# A 429 waits until Okta's X-Rate-Limit-Reset, at most this long and this many times, then fails.
OKTA_RATE_LIMIT_MAX_WAIT_SECONDS = env.float("OKTA_RATE_LIMIT_MAX_WAIT_SECONDS", default=10.0)
OKTA_RATE_LIMIT_MAX_RETRIES = env.int("OKTA_RATE_LIMIT_MAX_RETRIES", default=2)
# Destructive tools: how long a confirmation token (or an elicitation prompt) stays valid.
TOOL_CONFIRMATION_SECONDS = env.int("TOOL_CONFIRMATION_SECONDS", default=300)
TOOL_ELICITATION_TIMEOUT_SECONDS = env.int("TOOL_ELICITATION_TIMEOUT_SECONDS", default=120)
if not OKTA_API_TOKEN and not (OKTA_SERVICE_CLIENT_ID and (OKTA_PRIVATE_KEY or OKTA_PRIVATE_KEY_FILE)):
    sys.stderr.write(
        "okta-mcp: required setting OKTA_API_TOKEN (or OKTA_SERVICE_CLIENT_ID with OKTA_PRIVATE_KEY) is not set\n"
    )
    raise SystemExit(2)

# --- Logging: JSON audit lines on their own logger; tokens are never logged -----------------------
# json: one object per line with the request id (production); plain: for reading in a terminal.
LOG_FORMAT = _optional("LOG_FORMAT", "json")
if LOG_FORMAT not in ("json", "plain"):
    sys.stderr.write(f"okta-mcp: LOG_FORMAT must be json or plain, got {LOG_FORMAT!r}\n")
    raise SystemExit(2)

# --- Metrics (/metrics, Prometheus) ---------------------------------------------------------------
# Readable from these networks when the scraper connects directly (not through the proxy), or from
# anywhere with the bearer secret. An empty list and no secret turns /metrics off.
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])
METRICS_BEARER_TOKEN = env.str("METRICS_BEARER_TOKEN", default="")
try:
    METRICS_NETWORKS = [ipaddress.ip_network(c.strip(), strict=False) for c in METRICS_ALLOWED_NETWORKS if c.strip()]
except ValueError as exc:
    sys.stderr.write(f"okta-mcp: METRICS_ALLOWED_NETWORKS holds an invalid network: {exc}\n")
    raise SystemExit(2) from None
if METRICS_BEARER_TOKEN and len(METRICS_BEARER_TOKEN) < 32:
    sys.stderr.write("okta-mcp: METRICS_BEARER_TOKEN must be at least 32 characters\n")
    raise SystemExit(2)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "okta_mcp.observability.JsonFormatter"},
        "raw": {"format": "%(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT},
        "audit": {"class": "okta_mcp.observability.BatchedStreamHandler", "formatter": "raw", "stream": "ext://sys.stdout"},
    },
    "loggers": {
        "okta_mcp.audit": {"handlers": ["audit"], "level": "INFO", "propagate": False},
        # These propagate to the root's console handler (a handler of their own printed every line twice).
        "django": {"level": env.str("DJANGO_LOG_LEVEL", default="WARNING")},
        "okta_mcp": {"level": env.str("LOG_LEVEL", default="INFO")},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
}

# django-oauth-toolkit's models, named so that migrations can resolve its swappable references.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"
