# The two set-up commands of the README: `make demo` and `make test`.
# Both build .venv from the project's own files (pyproject.toml, pinned by
# .ci/constraints.txt) the first time, and reuse it afterwards.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= all,dev,docs

.PHONY: install demo test test-slow lint typing docs bench clean

$(VENV)/.installed: pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c .ci/constraints.txt -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m logdensity demo

test: install
	$(PY) -m pytest -m "not slow" -n 2

test-slow: install
	$(PY) -m pytest -m slow -n 2

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typing: install
	$(VENV)/bin/mypy

docs: install
	$(VENV)/bin/mkdocs build --strict

bench: install
	$(PY) -m benchmarks --quick

clean:
	rm -rf $(VENV) site logdensity-demo
