# The few verbs people type. Everything installs itself from the lock files in this repo.
#   make demo   set up, start PostgreSQL + Airflow + Superset, run the pipeline, wait for Ctrl-C
#   make run    set up, run the pipeline once headless (cron/scripts), exit 0 when done
#   make test   set up, run the test suite (real PostgreSQL, Airflow, dbt, GX, Superset, Chromium)
#   make test-fast  the tests that need no service, while you work
SHELL := /bin/bash
PYTHON ?= python3
TOOLS := .local/tools
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup demo run test test-fast bench lint clean stop chromium poppler chromium-driver \
	redis tesseract

setup: .venv/.synced infra/superset/.venv/.synced chromium poppler chromium-driver redis tesseract

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv>=0.5,<1"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	@touch $@

infra/superset/.venv/.synced: infra/superset/pyproject.toml infra/superset/uv.lock | $(UV)
	cd infra/superset && $(abspath $(UV)) sync --frozen --compile-bytecode
	@touch $@

# Headless Chromium for the dashboard tests (Debian's package; nothing downloaded elsewhere).
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

# Superset's report screenshots drive Chromium through Selenium with Debian's matching driver.
chromium-driver: chromium
	@command -v chromedriver >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium-driver; }

# Redis for the reports' Celery queue; the project starts its own on a free loopback port
# (src/safeguard/superset/workers.py). The package's own service is not needed: stop it if
# you like (`systemctl disable --now redis-server`).
redis:
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server; }

# pdftotext and pdftoppm (Debian's poppler-utils): the fact sheet's test reads its PDF with them.
poppler:
	@command -v pdftotext >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq poppler-utils; }

# OCR: the report test reads the weekly PDF (screenshots, no text layer) as a reader sees it.
tesseract:
	@command -v tesseract >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq tesseract-ocr; }

demo: setup
	.venv/bin/safeguard demo

run: setup
	.venv/bin/safeguard run

test: setup
	.venv/bin/pytest

# The tests that need no service (no database, Airflow, Superset or browser): under a minute.
test-fast: .venv/.synced
	.venv/bin/pytest -m unit

bench: setup
	.venv/bin/python -m safeguard.bench

lint: setup
	.venv/bin/ruff check src dags tests

stop:
	-.venv/bin/safeguard cluster down
	-.venv/bin/safeguard superset stop
	-.venv/bin/safeguard db stop

clean: stop
	@# embedded servers kept outside the checkout (see src/safeguard/db/embedded.py): the
	@# demo's, and the test homes'
	@find .local \( -path '*/postgres/relocated' -o -path '*/postgres/binaries' \) -type f \
		2>/dev/null | while read -r f; do \
		rm -rf "$$(cat "$$f")"; done
	rm -rf .local .venv infra/superset/.venv expectations/gx/uncommitted
