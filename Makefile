# Lucid: `make run` installs everything (first time) and opens the app; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lucid-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup models run test test-fast bench lint format browser-deps clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-assets.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-assets.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Trains the defaults that Lucid's own recipes produce (once; later runs find them in the store).
models: setup
	$(BIN)/python -m lucid.build_defaults

run: models
	$(BIN)/streamlit run app.py

# Debian's Chromium drives the browser tests; installed here when we may (root), else those tests skip.
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "Could not install chromium; browser tests will be skipped."; \
	else echo "chromium is not installed and this user cannot install it; browser tests will be skipped."; fi

test: setup browser-deps
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not browser"

bench: setup
	@for b in bench/bench_*.py; do m=$$(basename $$b .py); echo "== bench.$$m"; $(BIN)/python -m bench.$$m || exit 1; done

# Style, the layer contracts (import-linter, pyproject.toml) and the type checker on lucid/.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
