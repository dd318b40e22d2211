# make run  — set everything up, migrate, serve on 127.0.0.1:8000 (SQLite + ./var)
# make test — set everything up, lint, type-check, run the whole suite (SQLite and PostgreSQL)

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: install run test lint typecheck pytest clean system-deps

install: $(STAMP)

# Re-installs only when the dependency list changes. torch stays pinned to the local CPU
# build when a later issue adds it (never let pip resolve a CUDA build).
$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# espeak-ng renders the synthetic speech the tests, demos and benchmarks use; WordNet's example
# sentences, fortunes and the wamerican word list are its general English text corpus.
SYSTEM_PACKAGES := espeak-ng wordnet-base fortunes wamerican
system-deps:
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON))"; exit 1; }
	@missing=$$(for p in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	test -z "$$missing" || { \
		echo "Installing $$missing (apt-get)"; \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; }

run: install
	$(BIN)/mip migrate
	$(BIN)/mip serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
