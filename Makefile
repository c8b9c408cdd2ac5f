# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format bench manage

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

# Web + Celery workers (one per queue) + Celery beat on SQLite and a file-based broker; one Ctrl-C stops all.
# Public address of the site for absolute links (tracking, landing, email and API links).
run: export SITE_URL ?= http://$(HOST):$(PORT)
run: export DEBUG ?= true
# Outgoing mail (deliveries to buyers' inboxes, nurture emails) goes to files in var/mail/ (the path is
# relative to the project), not to the terminal.
run: export EMAIL_URL ?= filemail:///var/mail
run: $(VENV)/.runtime
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py seed_nurture_demo
	# The seed back-dates its leads behind the rollups' back; recompute them (a few seconds).
	$(BIN)/python manage.py rebuild_rollups
	@echo "Starting web on http://$(HOST):$(PORT)/admin/ with Celery workers and beat (logins above; Ctrl-C stops all)."
	PATH="$(abspath $(BIN)):$$PATH" WEB_PORT=$(PORT) WEB_HOST=$(HOST) $(BIN)/honcho start --no-prefix -f Procfile.dev

# Any management command on the development set-up (SQLite, DEBUG, migrated first), e.g.
# make manage CMD="create_api_key 'Acme Leads' --scopes leads:write --campaign push-solar-us"
manage: export DEBUG ?= true
manage: export SITE_URL ?= http://$(HOST):$(PORT)
manage: $(VENV)/.runtime
	$(BIN)/python manage.py migrate --no-input -v 0
	$(BIN)/python manage.py $(CMD)

# The whole test suite (SQLite by default; set DATABASE_URL for PostgreSQL), one pytest-xdist worker
# per core: the migrations run once and each worker tests on its own copy of the database. Tests are
# handed out in collection order, where pytest-django puts transactional tests last: a transactional
# test empties the database (the migrations' groups and content types come back only for the next
# such test), so no worker may take an ordinary test after one, as work stealing would. They go out
# one at a time (--dist loadgroup, where each test is its own group): --dist load queues many tests
# ahead on a worker, and the long browser tests ended up behind one another on one of them.
# TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= auto
# Bytecode and pytest's rewritten test modules are cached (__pycache__) even where the shell says not
# to (PYTHONDONTWRITEBYTECODE, emptied here): otherwise every worker compiles them all again each run.
test: export PYTHONDONTWRITEBYTECODE :=
test: $(VENV)/.dev
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The throughput benchmarks (clicks, landing forms, API, deliveries, nurture) against floors measured
# in the same run, ending with one table of every ratio (bench/RESULTS.md keeps the latest). SQLite by
# default; set DATABASE_URL for PostgreSQL. BENCH names modules instead, e.g. BENCH="bench_reports".
bench: export BENCH_NURTURE_DUE ?= 100000
bench: $(VENV)/.dev
	$(BIN)/python bench/run.py $(BENCH)
