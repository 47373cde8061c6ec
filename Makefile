# Confide: `make run` (the demo, embedded SQLite, no external service) and `make test` (the whole suite).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTHON ?= python3
export CONFIDE_DATA_DIR ?= var

.PHONY: run install install-dev test lint system-deps services axe bench clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip uv

$(VENV)/.installed: pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet -p $(PY) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet -p $(PY) -e ".[dev]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## run: install, migrate the embedded database, create the demo, serve at http://127.0.0.1:$${CONFIDE_PORT:-8000}
run: install
	$(BIN)/confide migrate
	$(BIN)/confide demo
	$(BIN)/confide serve

## Debian packages the tests need (Chromium; the fonts the PDF documents embed: DejaVu Sans and a CJK font;
## slapd for the directory tests), installed only when missing.
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] \
		|| ! [ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-dejavu-core fonts-wqy-microhei >/dev/null; \
	fi
	@if ! command -v slapd >/dev/null 2>&1 && ! [ -x /usr/sbin/slapd ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		echo "slapd slapd/no_configuration boolean true" | $$SUDO debconf-set-selections; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends slapd ldap-utils >/dev/null; \
	fi

## axe-core (npm) for the accessibility checks of the browser tests, installed only when missing.
AXE := $(VENV)/axe/node_modules/axe-core/axe.min.js
$(AXE):
	@if ! command -v npm >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq npm >/dev/null; \
	fi
	npm install --silent --no-audit --no-fund --prefix $(VENV)/axe axe-core@4
axe: $(AXE)

## PostgreSQL and Redis on loopback: started when they are not answering.
services:
	@bash scripts/ensure-services.sh

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src
	$(BIN)/lint-imports

## test: lint, types, architecture contracts, then every test on SQLite and PostgreSQL (browser tests included)
test: install-dev system-deps services axe lint
	$(BIN)/pytest

bench: install-dev
	$(PY) -m bench.run
	$(PY) -m bench.redaction
	$(PY) -m bench.subject_render
	$(PY) -m bench.erasure
	$(PY) -m bench.subject_export --formats json,csv,xlsx,pdf
	$(PY) -m bench.find

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
