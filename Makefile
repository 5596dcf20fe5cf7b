# Two commands from a fresh clone: `make dev` runs the whole stack on this machine,
# `make test` installs what the tests need and runs every check CI runs.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# Stamp files: reinstall only when the dependency lists change.
PY_DEPS   := $(VENV)/.installed
NODE_DEPS := node_modules/.bin/prism
# Extra arguments for `loyalloop dev`, e.g. `make dev ARGS="--day-seconds 2"`.
ARGS ?=

.PHONY: dev test lint typecheck templates-check compose-check pytest system-deps venv clean mutation

dev: $(PY_DEPS)
	$(BIN)/loyalloop dev $(ARGS)

test: $(PY_DEPS) $(NODE_DEPS) system-deps lint typecheck templates-check compose-check pytest

venv: $(PY_DEPS)

# Installs exactly what uv.lock pins (the dev group included, the project editable) and fails if
# pyproject.toml changed without `uv lock`. uv itself comes from PyPI at the version uv.lock pins
# for it, so the lock stays the one list of versions.
UV_VERSION = $(shell sed -n '/^name = "uv"$$/{n;s/^version = "\(.*\)"$$/\1/p;}' uv.lock)
$(PY_DEPS): pyproject.toml uv.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/uv --version 2>/dev/null | grep -qx 'uv $(UV_VERSION)' \
	  || $(BIN)/python -m pip install --quiet 'uv==$(UV_VERSION)'
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --locked --quiet --python $(BIN)/python
	touch $@

# Prism serves SendGrid's Mail Send contract for the sender tests (pinned in package-lock.json).
$(NODE_DEPS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian packages some tests use: chromium (headless rendering of templates) and docker-compose
# (validating docker-compose.yml). Installed when missing and this user can; otherwise the tests
# that need them skip and say why.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	  || missing="$$missing chromium"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian packages:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing \
	    >/dev/null 2>&1 \
	  || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive \
	       apt-get install -y -q --no-install-recommends $$missing >/dev/null 2>&1; } \
	  || echo "note: could not install$$missing; the tests that need them will skip"; \
	else \
	  echo "note:$$missing missing and not installable here (needs root and apt-get);" \
	       "the tests that need them will skip"; \
	fi

lint: $(PY_DEPS)
	$(BIN)/ruff check --output-format concise .

typecheck: $(PY_DEPS)
	$(BIN)/mypy workflows/ activities/ ledger/ database/

templates-check: $(PY_DEPS)
	$(BIN)/loyalloop templates check

compose-check:
	@if command -v docker-compose >/dev/null 2>&1; then \
	  export LOYALLOOP_SHOP_KEYS=ci:ci-key POSTGRES_PASSWORD=ci LOYALLOOP_LINK_SECRET=ci \
	    LOYALLOOP_PUBLIC_URL=https://loyalloop.example \
	    TEMPORAL_ADDRESS=ns.acct.tmprl.cloud:7233 TEMPORAL_NAMESPACE=ns.acct && \
	  docker-compose -f docker-compose.yml config -q && echo "docker-compose.yml is valid" && \
	  docker-compose -f deploy/compose.cloud.yml config -q && \
	    echo "deploy/compose.cloud.yml is valid"; \
	else \
	  echo "note: docker-compose missing: the compose files are not validated"; \
	fi

pytest: $(PY_DEPS) $(NODE_DEPS)
	$(BIN)/pytest -q -rs

# Mutation testing (docs/testing.md, "Mutation testing"): not part of `make test` (an hour or more
# on two shared cores). Mutants are written to ./mutants/ (gitignored), never to the sources.
# `make mutation MUTANTS="ledger.* intake.store.*"` runs only those; a second run resumes.
MUTANTS ?=
mutation: $(PY_DEPS)
	nice -n 19 $(BIN)/mutmut run --max-children 2 $(MUTANTS)
	$(BIN)/python -m tests.mutation.scores mutants
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache
