# Two entry points for a fresh machine: `make plan` and `make test`.
# Everything is installed into .venv; nothing is cached in the repository.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp
STACK  ?= dev

.PHONY: setup plan plans test lint promtool bench mutate clean

# Not quiet: a fresh install takes about a minute, and a silent minute looks like a hang.
$(STAMP): pyproject.toml
	@echo "==> [1/3] creating the virtualenv $(VENV) with $$($(PYTHON) --version)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] upgrading pip"
	$(BIN)/python -m pip install --upgrade pip
	@echo "==> [3/3] installing llmops and its test tools into $(VENV) (about a minute when fresh)"
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)
	@echo "==> ready: $(BIN)/llmops --help"

setup: $(STAMP)

## The main job: the offline plan of one stack (default: dev).
plan: setup
	$(BIN)/llmops plan --stack $(STACK)

## Offline plans of the bootstrap program and every shipped environment.
plans: setup
	for s in bootstrap dev staging prod; do $(BIN)/llmops plan --stack $$s --quiet || exit 1; done

## promtool checks the alert rules; tests fail (not skip) without it.
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing promtool (Debian package prometheus)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y -q prometheus >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q prometheus >/dev/null; }; }

lint: setup
	$(BIN)/ruff check .

## Every core plus one worker: tests are independent of order and of each other; about a
## quarter of the run waits on real servers (Prometheus scrapes, loopback gateways), which the
## extra worker fills (2 cores: -n 3 113 s, -n 2 141 s, -n 4 118 s; docs/testing.md).
## Worksteal evens out the long ones. Serial, for a debugger: `.venv/bin/python -m pytest -q -p no:xdist`.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: setup promtool lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

## Mutation testing per area (a development tool, not part of `make test` or CI):
## every area (hours), or `make mutate AREAS="config alerts"`; `python -m mutation.run --help`
## lists them; reports in .mutation/<area>/report.txt.
AREAS ?=
mutate: setup promtool
	nice -n 10 $(BIN)/python -m mutation.run $(AREAS)

bench: setup
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info .mutation
