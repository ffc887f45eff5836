# Two commands from a fresh clone:  make demo  (sample drivers end to end)  |  make test
# Quicker while developing:  make test-fast  (the unit layer)  |  make test-one  (this Python)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The oldest supported Python: requires-python's floor in pyproject.toml.
OLDEST_PYTHON := $(shell sed -n 's/^requires-python *= *">=\([0-9.]*\)"/\1/p' pyproject.toml)
# ./adjust and ./measure are run the way servo runs them: as an executable, with the venv's python3 first on PATH.
RUN    := PATH="$(CURDIR)/$(BIN):$$PATH" ./adjust
MEASURE := PATH="$(CURDIR)/$(BIN):$$PATH" ./measure

.PHONY: demo test test-all test-oldest-newest test-one test-fast lint ruff typecheck venvs wheel-check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip > /dev/null 2>&1 || true

$(VENV)/.installed: $(BIN)/python pyproject.toml
	@echo "installing servo-agg and its test tools into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/python -m pip install -e '.[dev]' > $(VENV)/install.log 2>&1 \
		|| { tail -n 30 $(VENV)/install.log; exit 1; }
	@touch $@

demo: $(VENV)/.installed
	@rm -rf .state
	@echo '$$ ./adjust --version'; $(RUN) --version
	@echo '$$ ./measure --version'; $(MEASURE) --version
	@echo; echo '$$ ./adjust --query demo'; $(RUN) --query demo
	@echo; echo '$$ ./measure --describe demo'; $(MEASURE) --describe demo
	@echo; echo '$$ ./measure demo < examples/measure-request.json      # before'
	@$(MEASURE) demo < examples/measure-request.json
	@echo; echo '$$ ./adjust demo < examples/adjust-request.json'; $(RUN) demo < examples/adjust-request.json
	@echo; echo '$$ ./measure demo < examples/measure-request.json      # after: the new metrics'
	@$(MEASURE) demo < examples/measure-request.json

lint: ruff typecheck

ruff: $(VENV)/.installed
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy

# The venvs of the suites make test runs (noxfile.py's make-test tag), each in .nox/, made
# once and installed into again only when the requirements change, side by side; nothing
# runs in them yet (nox's install step alone). Quiet unless one fails (noxfile.py venvs).
venvs: $(VENV)/.installed
	$(BIN)/nox --session venvs

# Which supported Pythons are here (a line for each, found or not; it fails without the
# oldest), ruff, then mypy beside the venvs (each mostly one core's work: on a fresh clone
# both take seconds), then the whole suite once on every Python found, one after another:
# each suite keeps the cores busy (tests/README.md). Each newer Python runs with the newest
# trio, PyYAML and prometheus-client; then the oldest with the lowest ones allowed (nox
# session lowest). Each suite ends with a line per test layer: its tests, time and CPU.
test: $(VENV)/.installed
	$(BIN)/nox --session pythons
	@$(MAKE) --no-print-directory ruff
	@$(MAKE) --no-print-directory --jobs=2 --output-sync=target typecheck venvs
	$(BIN)/nox --reuse-existing-virtualenvs --tags make-test

# The one combination make test leaves out: the oldest Python with the newest versions.
test-oldest-newest: $(VENV)/.installed
	$(BIN)/nox --reuse-existing-virtualenvs -s "tests($(OLDEST_PYTHON))"

# make test and that combination: every combination (CI runs both, .ci/run).
test-all: test test-oldest-newest

# Lint, then the whole suite on the venv's Python only, every layer over the machine's cores.
test-one: lint
	$(BIN)/python -m pytest -n auto

# The unit layer only: pure logic, in seconds; no lint.
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -m unit

# The sdist and wheel built, the wheel installed into a fresh venv, a servo root run through
# `adjust` and `measure` symlinked to its servo-agg and through a copy (.ci/wheel_check.py;
# it installs what it needs and removes what it made).
wheel-check:
	$(PYTHON) .ci/wheel_check.py

bench: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .nox .state .pytest_cache .mypy_cache .ruff_cache .hypothesis
