#!/usr/bin/env bash
# Runs the demo: the sandbox Okta API, the sandbox Okta login, and this server on 127.0.0.1:8000,
# with SQLite under var/. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var
PORT="${DEMO_PORT:-8000}"
if [ ! -f var/demo.env ]; then
  {
    echo "SECRET_KEY=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(50))')"
    echo "DEMO_ADMIN_PASSWORD=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))')"
  } > var/demo.env
fi
set -a
. var/demo.env
PUBLIC_URL="http://127.0.0.1:${PORT}"
DATABASE_URL="sqlite:///$(pwd)/var/demo.sqlite3"
OKTA_ISSUER="http://127.0.0.1:9400/oauth2/default"
OKTA_CLIENT_ID="okta-mcp-sandbox"
OKTA_CLIENT_SECRET="sandbox-secret-change-me"
OKTA_ORG_URL="http://127.0.0.1:9500"
OKTA_API_TOKEN="sandbox-api-token"
ORG_NAME="Acme Corp (sandbox)"
DEBUG=false
set +a

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

.venv/bin/python -m sandbox.okta_api --port 9500 > var/okta-api.log 2>&1 &
pids+=($!)
(cd sandbox/idp && IDP_PORT=9400 IDP_REDIRECT_URIS="${PUBLIC_URL}/oidc/callback/" \
  OKTA_API_URL="$OKTA_ORG_URL" OKTA_API_TOKEN="$OKTA_API_TOKEN" node server.mjs > ../../var/idp.log 2>&1) &
pids+=($!)

.venv/bin/python manage.py migrate --no-input > var/migrate.log
# The audit trail also goes to stdout as JSON lines (for a SIEM); keep the demo terminal readable.
.venv/bin/python manage.py seed_demo > var/seed.log
if ! .venv/bin/python manage.py shell -c "from accounts.models import User; raise SystemExit(0 if User.objects.filter(username='admin').exists() else 1)" > /dev/null 2>&1; then
  DJANGO_SUPERUSER_PASSWORD="$DEMO_ADMIN_PASSWORD" .venv/bin/python manage.py createsuperuser --no-input --username admin --email admin@acme.example > /dev/null
fi

cat <<INFO

  okta-mcp demo is running.

  MCP server URL:   ${PUBLIC_URL}/mcp
  client_id:        demo-mcp-client   (public client, PKCE; redirects http://127.0.0.1:<any port>/callback,
                                       http://localhost:6274/oauth/callback for the MCP Inspector)
  Demo users (sandbox Okta login):
    alice@acme.example / alice-pass   Identity Admins -> role "admin" (every tool)
    bob@acme.example   / bob-pass     Helpdesk        -> role "viewer" (read tools)
    carol@acme.example / carol-pass   Contractors     -> no role, no tools
  Admin:            ${PUBLIC_URL}/admin/   user admin / ${DEMO_ADMIN_PASSWORD}

  Connect with the bundled MCP SDK client (opens your browser for the Okta login and consent):
    .venv/bin/python sandbox/connect.py --url ${PUBLIC_URL}/mcp
  or point any MCP client at ${PUBLIC_URL}/mcp with client_id demo-mcp-client, e.g. VS Code (.vscode/mcp.json):
    { "servers": { "okta": { "type": "http", "url": "${PUBLIC_URL}/mcp" } } }

  Logs are in var/. Press Ctrl-C to stop.

INFO
exec .venv/bin/python -m daphne -b 127.0.0.1 -p "$PORT" okta_mcp.asgi:application
