# The one entry point people and CI share.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT
# The local demo's webhook receivers listen on this machine: let deliveries reach private addresses here
# (the settings' default, for any other way of running, refuses them; docs/webhooks.md).
WEBHOOKS_ALLOW_PRIVATE ?= 1

.PHONY: up test conformance lint fmt bench bench-quick resilience install clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py collectstatic --no-input --verbosity 0
	$(BIN)/python manage.py ensure_operator
	$(BIN)/python manage.py sync_schedules
	@echo "velocity: dashboard http://$(HOST):$(PORT)/dashboard/  admin http://$(HOST):$(PORT)/admin/  health http://$(HOST):$(PORT)/health"
	WEBHOOKS_ALLOW_PRIVATE=$(WEBHOOKS_ALLOW_PRIVATE) $(BIN)/python -m velocity.run

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# realtime-js 2.119.1 for the realtime endpoint's tests, from the committed lockfile.
JS_HARNESS := realtime_bridge/tests/js
$(JS_HARNESS)/node_modules/.package-lock.json: $(JS_HARNESS)/package-lock.json
	npm ci --prefix $(JS_HARNESS) --no-audit --no-fund

# @asyncapi/parser 3.6.6 validates docs/asyncapi.yaml (preview_agent/tests/test_asyncapi.py); no install scripts.
ASYNCAPI_HARNESS := preview_agent/tests/asyncapi
$(ASYNCAPI_HARNESS)/node_modules/.package-lock.json: $(ASYNCAPI_HARNESS)/package-lock.json
	npm ci --prefix $(ASYNCAPI_HARNESS) --no-audit --no-fund --ignore-scripts

# The official JavaScript client (its tests run in pytest: velocity/tests/test_js_client.py).
JS_CLIENT := clients/js
$(JS_CLIENT)/node_modules/.package-lock.json: $(JS_CLIENT)/package-lock.json
	npm ci --prefix $(JS_CLIENT) --no-audit --no-fund

test: lint $(JS_HARNESS)/node_modules/.package-lock.json $(ASYNCAPI_HARNESS)/node_modules/.package-lock.json $(JS_CLIENT)/node_modules/.package-lock.json
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest

# The realtime conformance suite alone (docs/realtime.md, "Conformance with Supabase"): against the embedded
# endpoint, or against a hosted project when CONFORMANCE_SUPABASE_URL and CONFORMANCE_SUPABASE_KEYS are set.
conformance: $(STAMP) $(JS_HARNESS)/node_modules/.package-lock.json
	$(BIN)/pytest realtime_bridge/tests/conformance

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .mypy_cache .ruff_cache

# Benchmarks and resilience (bench/, resilience/): each starts its own orchestrator in a temp var dir.
bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

resilience: $(STAMP)
	$(BIN)/python -m resilience
