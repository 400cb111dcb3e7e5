# ResolutionFlow: `make run` serves the app with demo data; `make test` runs the whole suite.
SHELL := /bin/bash
PORT ?= 8000
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint format worker worker-events worker-email production-local beat install clean

$(PY):
	@base=$$(scripts/find-python) || exit 1; \
	echo "Creating $(VENV) with $$base"; \
	"$$base" -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	@echo "Installing dependencies into $(VENV) ..."
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@# Dependencies only: the project itself runs from this folder (pyproject lists no packages).
	@$(PY) -m pip install --quiet --disable-pip-version-check '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@mkdir -p var
	@DEBUG=$${DEBUG:-1} $(PY) manage.py migrate --verbosity 0
	@# The demo escalations' notification emails are not worth printing: a dummy mailer.
	@DEBUG=$${DEBUG:-1} EMAIL_URL=$${EMAIL_URL:-dummy://} $(PY) manage.py seed_demo
	@echo ""
	@echo "  ResolutionFlow on http://127.0.0.1:$(PORT)/  (Ctrl+C stops it)"
	@echo "  Sign in with password 'demo' as:"
	@echo "    Acme IT:  tess (technician)  sam, sky (engineers)  ada (admin)"
	@echo "    Globex:   gil (technician)   gwen (engineer)"
	@echo ""
	@DEBUG=$${DEBUG:-1} SITE_URL=$${SITE_URL:-http://127.0.0.1:$(PORT)} $(VENV)/bin/uvicorn resolutionflow.asgi:application \
		--host 127.0.0.1 --port $(PORT) --no-server-header --reload \
		--reload-include '*.html' --reload-include '*.toml' --reload-exclude '.venv/*' \
		--reload-exclude 'var/*' --timeout-graceful-shutdown 1 --log-level warning

# Two pytest-xdist workers (the suite waits on browsers, servers and paused services as much
# as it computes); whole files per worker, in collected order, so that browser tests still run
# after every other test of a worker (tests/conftest.py). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	@$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

lint: $(STAMP)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

format: $(STAMP)
	@$(VENV)/bin/ruff format .
	@$(VENV)/bin/ruff check --fix .

# With REDIS_URL set: the Celery worker and the beat that drains the outbox, every queue in
# one process (development). Production runs the two below apart (docs/OPERATIONS.md), so
# that a slow mail server or AI engine never stops the event path.
worker: $(STAMP)
	@$(VENV)/bin/celery -A resolutionflow worker --beat --queues events,email,outbound --loglevel INFO

# The event path: outbox drain, resyncs, sweeps; with the one beat of the deployment.
worker-events: $(STAMP)
	@$(VENV)/bin/celery -A resolutionflow worker --beat --queues events --loglevel INFO \
		--hostname events@%h

# Work that waits on other servers: escalation emails (SMTP) and AI assessments.
worker-email: $(STAMP)
	@$(VENV)/bin/celery -A resolutionflow worker --queues email,outbound --loglevel INFO \
		--hostname email@%h

# The one beat of a deployment (outbox drain every 5 s, re-alerts), when the workers run
# without --beat (the Procfile does).
beat: $(STAMP)
	@$(VENV)/bin/celery -A resolutionflow beat --loglevel INFO

# The production layout locally (Procfile): Pushpin on PUSHPIN_PORT (7999) in front of web ×2
# on 8001/8002, the events worker, the email worker, the beat. Set DATABASE_URL and
# REDIS_URL; browse http://127.0.0.1:7999/. Needs Debian's pushpin (apt-get install pushpin).
PUSHPIN_PORT ?= 7999
PUSHPIN_CONTROL_PORT ?= 5561
PUSHPIN_DIR ?= var/pushpin
production-local: $(STAMP)
	@test -n "$$DATABASE_URL" -a -n "$$REDIS_URL" || { echo "Set DATABASE_URL and REDIS_URL"; exit 1; }
	@command -v pushpin >/dev/null || { echo "pushpin is not installed: apt-get install pushpin"; exit 1; }
	@$(PY) manage.py migrate --verbosity 0
	@$(PY) manage.py collectstatic --noinput --verbosity 0
	@key=$${PUSHPIN_SIG_KEY:-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(32))')}; \
	$(PY) scripts/pushpin_config.py $(PUSHPIN_DIR) --http 127.0.0.1:$(PUSHPIN_PORT) \
		--control-port $(PUSHPIN_CONTROL_PORT) --sig-key "$$key" \
		--web 127.0.0.1:$${WEB1_PORT:-8001} --web 127.0.0.1:$${WEB2_PORT:-8002} >/dev/null; \
	echo "  ResolutionFlow behind Pushpin on http://127.0.0.1:$(PUSHPIN_PORT)/ (Ctrl+C stops it)"; \
	GRIP_URL="http://127.0.0.1:$(PUSHPIN_CONTROL_PORT)/?iss=pushpin&key=$$key" \
	SITE_URL=$${SITE_URL:-http://127.0.0.1:$(PUSHPIN_PORT)} PUSHPIN_DIR=$(PUSHPIN_DIR) \
		$(VENV)/bin/honcho start

clean:
	rm -rf $(VENV) var/*.sqlite3
