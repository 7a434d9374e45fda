# litemirror — the two commands are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: venv tools demo test test-all check bench faults clean

venv: $(STAMP)

# System tools some tests need (ip/arping, Chromium, HAProxy). As root the
# installers run (once; each says what it installs); otherwise the script says
# which tests will skip and why.
TOOLS_STAMP := $(VENV)/.tools
tools: $(TOOLS_STAMP)

$(TOOLS_STAMP): scripts/setup-test-tools.sh $(wildcard scripts/install-*.sh) | $(STAMP)
	bash scripts/setup-test-tools.sh
	@if [ "$$(id -u)" -eq 0 ]; then touch $(TOOLS_STAMP); fi

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $(STAMP)

demo: venv
	$(BIN)/litemirror demo $(ARGS)

test: venv tools
	$(BIN)/pytest -m "not slow" $(ARGS)

test-all: venv tools
	$(BIN)/pytest $(ARGS)

check: venv
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: venv
	$(BIN)/python -m bench.run $(ARGS)

faults: venv
	$(BIN)/python -m litemirror.testing.trials $(if $(SEED),--seed $(SEED)) $(if $(TRIALS),--trials $(TRIALS)) $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
