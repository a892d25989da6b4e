# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: venv node demo test check clean

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

node: sandbox/idp/node_modules/.installed sandbox/okta_api/prism/node_modules/.installed

# The server with an embedded default: SQLite and local stand-ins for Okta's login and API.
demo: venv node
	./sandbox/demo.sh

# Installs what the tests need and runs them; pytest exiting 5 (no tests ran) fails the target.
test: venv node
	$(PY) -m pytest $(PYTEST_ARGS)

check: venv
	$(PY) manage.py check

clean:
	rm -rf $(VENV) sandbox/idp/node_modules sandbox/okta_api/prism/node_modules var test-artifacts
