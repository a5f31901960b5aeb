# The README's two commands are `make demo` and `make test`; each does its own set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
INFRA_VENV ?= .venv-infra
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: chromium setup demo dev test test-fast lint bench soak clean

setup: $(VENV)/.installed $(INFRA_VENV)/.installed node_modules/.installed bubblewrap chromium

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# checkov pins many packages of its own: it gets its own virtualenv, used by the offline infra checks.
$(INFRA_VENV)/.installed: requirements-infra.txt
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(INFRA_VENV)/bin/python -m pip install --quiet -r requirements-infra.txt
	touch $@

# Azurite (Table and Blob storage) comes from npm, pinned in package-lock.json.
node_modules/.installed: $(wildcard package.json package-lock.json)
	@if [ -f package.json ]; then npm ci --no-audit --no-fund --loglevel=error; fi
	@mkdir -p node_modules && touch $@

# The dashboard's browser tests drive Debian's Chromium through Playwright (no browser download).
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	@command -v chromium >/dev/null || { echo "chromium is required: apt-get install chromium" >&2; exit 1; }

# The ACI emulator runs each container in a bubblewrap sandbox.
bubblewrap:
	@command -v bwrap >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq bubblewrap >/dev/null; }
	@command -v bwrap >/dev/null || { echo "bubblewrap is required: apt-get install bubblewrap" >&2; exit 1; }

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo

test: lint
	$(VENV)/bin/pytest

# The inner loop: the unit tests with a small Hypothesis profile, in well under 30 s; `make test` stays the full run.
test-fast: $(VENV)/.installed
	HYPOTHESIS_PROFILE=fast $(VENV)/bin/pytest -q -p no:cacheprovider tests/unit tests/reliability

# The main job end to end on the local stack: the examples submitted through the CLI over HTTP.
demo: setup
	$(PY) -m devstack.demo

# The whole local stack, left running for interactive use; Ctrl-C stops it.
dev: setup
	$(PY) -m devstack

# Throughput against the ACI quota bound, ARM economy, slot turnover and overhead, in simulated time.
bench: setup
	$(PY) -m bench --parallel 2

# Reliability: 10,000 jobs with 1 % injected faults of every kind on the fakes in simulated time, then 1,000 through
# the emulators; prints the invariants' counts and fails unless lost, duplicate, orphaned, misreported and
# over-commit are all 0.
soak: setup
	$(PY) -m tests.reliability.soak

clean:
	rm -rf $(VENV) $(INFRA_VENV) node_modules .devstack .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache
