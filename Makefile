# The two set-up commands of the README: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export HF_HUB_OFFLINE := 1

.PHONY: install demo test test-fast lint bench

install:
	AMELI_VENV=$(VENV) bash scripts/install.sh

demo: install
	$(VENV)/bin/ameli-ray demo --workdir demo-run

# Lint (pyflakes, isort, Ray only in the runners' shells), then every test, the slow / ray /
# integration markers included (what CI runs).
test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -m "" -q

lint: install
	$(VENV)/bin/ruff check .

# The fast tests only (pytest's default selection).
test-fast: install
	$(PY) -m pytest -q

bench: install
	$(PY) bench/retrieval_em.py
