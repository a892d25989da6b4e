# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: conformance sandbox-node venv node demo test test-pg test-sqlite services services-stop check clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet ".[test]"
	touch $@

venv: $(VENV)/.installed

sandbox/idp/node_modules/.installed: sandbox/idp/package-lock.json
	cd sandbox/idp && npm ci --silent --no-audit --no-fund
	touch $@

sandbox/okta_api/prism/node_modules/.installed: sandbox/okta_api/prism/package-lock.json
	cd sandbox/okta_api/prism && npm ci --silent --no-audit --no-fund
	touch $@

conformance/node_modules/.installed: conformance/package-lock.json
	cd conformance && npm ci --silent --no-audit --no-fund
	touch $@

sandbox-node: sandbox/idp/node_modules/.installed

node: sandbox/idp/node_modules/.installed sandbox/okta_api/prism/node_modules/.installed conformance/node_modules/.installed

# The server with an embedded default: SQLite and local stand-ins for Okta's login and API.
demo: venv sandbox-node
	./sandbox/demo.sh

# Installs what the tests need and runs them; pytest exiting 5 (no tests ran) fails the target.
# On PostgreSQL and Redis started for the run (scripts/services.sh) when this machine has them, and
# always under CI=true; on SQLite otherwise (the replica tests then skip).
test: venv node
	@if [ "$${CI:-}" = "true" ] || scripts/services.sh available; then \
		scripts/services.sh run $(PY) -m pytest $(PYTEST_ARGS); \
	else \
		echo "make test: no PostgreSQL/Redis here, running on SQLite (make test-pg insists)"; \
		$(PY) -m pytest $(PYTEST_ARGS); \
	fi

test-pg: venv node
	scripts/services.sh run $(PY) -m pytest $(PYTEST_ARGS)

test-sqlite: venv node
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest $(PYTEST_ARGS)

# PostgreSQL and Redis for manual runs (the benchmark, a demo on PostgreSQL): `. var/services/env`.
services:
	scripts/services.sh start var/services

services-stop:
	scripts/services.sh stop var/services

# The MCP conformance suite and the MCP Inspector CLI (Node 22, pinned in conformance/) against the real server.
conformance: venv node
	$(PY) -m pytest tests/conformance $(PYTEST_ARGS)

check: venv
	$(PY) manage.py check

clean:
	rm -rf $(VENV) sandbox/idp/node_modules sandbox/okta_api/prism/node_modules conformance/node_modules var test-artifacts
