"""The one settings module. Everything that differs between machines comes from the environment
(or an optional `.env` beside manage.py), read through django-environ; `.env.example` documents
every variable. Required secrets have no default, so a missing one stops start-up with one line."""

from __future__ import annotations

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
    "django.middleware.security.SecurityMiddleware",
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
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = _optional("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

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
    CSRF_TRUSTED_ORIGINS = [PUBLIC_URL]
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
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
    "PKCE_REQUIRED": True,
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "ACCESS_TOKEN_EXPIRE_SECONDS": ACCESS_TOKEN_SECONDS,
    "REFRESH_TOKEN_EXPIRE_SECONDS": LOGIN_SESSION_SECONDS,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "REQUEST_APPROVAL_PROMPT": "force",
    "ALLOW_LOCALHOST_LOOPBACK": True,
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
    "DCR_ENABLED": False,
    "CIMD_ENABLED": False,
}

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
OKTA_REQUEST_TIMEOUT_SECONDS = env.int("OKTA_REQUEST_TIMEOUT_SECONDS", default=15)
OKTA_MAX_CONCURRENT_REQUESTS = env.int("OKTA_MAX_CONCURRENT_REQUESTS", default=8)
if not OKTA_API_TOKEN and not (OKTA_SERVICE_CLIENT_ID and (OKTA_PRIVATE_KEY or OKTA_PRIVATE_KEY_FILE)):
    sys.stderr.write(
        "okta-mcp: required setting OKTA_API_TOKEN (or OKTA_SERVICE_CLIENT_ID with OKTA_PRIVATE_KEY) is not set\n"
    )
    raise SystemExit(2)

# --- Logging: JSON audit lines on their own logger; tokens are never logged -----------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "raw": {"format": "%(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "audit": {"class": "logging.StreamHandler", "formatter": "raw", "stream": "ext://sys.stdout"},
    },
    "loggers": {
        "okta_mcp.audit": {"handlers": ["audit"], "level": "INFO", "propagate": False},
        "django": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="WARNING")},
        "okta_mcp": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
}

# django-oauth-toolkit's models, named so that migrations can resolve its swappable references.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"
