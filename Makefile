# The two set-up commands of the README: `make demo` and `make test`.
# Both build .venv from the project's own files (pyproject.toml, pinned by
# .ci/constraints.txt) the first time, and reuse it afterwards.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= all,dev,docs

.PHONY: install demo test test-slow test-pytensor3 lint typing docs docs-figures bench mutation clean

# The example adapter plugin (plugins/logdensity-distribution) is installed too: its
# entry point is what the registry tests find.
PLUGIN := plugins/logdensity-distribution
$(VENV)/.installed: pyproject.toml .ci/constraints.txt $(PLUGIN)/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c .ci/constraints.txt -e ".[$(EXTRAS)]" -e $(PLUGIN)
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m logdensity demo

test: install
	$(PY) -m pytest -m "not slow" -n 2

test-slow: install
	$(PY) -m pytest -m slow -n 2

# The PyTensor adapter on pytensor 3.0 (PyMC 5.28 pins 2.38, the main environment's).
PT3_VENV ?= .venv-pytensor3
$(PT3_VENV)/.installed: pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(PT3_VENV)
	$(PT3_VENV)/bin/python -m pip install -q --upgrade pip
	grep -v -E '^(pytensor|pymc)==' .ci/constraints.txt > $(PT3_VENV)/constraints.txt
	$(PT3_VENV)/bin/python -m pip install -q -c $(PT3_VENV)/constraints.txt \
		-e ".[pytensor,test]" "pytensor==3.0.7"
	touch $@

test-pytensor3: $(PT3_VENV)/.installed
	$(PT3_VENV)/bin/python -c "import pytensor; print('pytensor', pytensor.__version__)"
	$(PT3_VENV)/bin/python -m pytest tests/test_pytensor.py -n 2

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typing: install
	$(VENV)/bin/mypy

docs: install
	$(VENV)/bin/mkdocs build --strict

# the figures of docs/img, from the docs' example scripts (a few minutes on 2 cores)
docs-figures: install
	MPLBACKEND=Agg $(PY) docs/examples/numpyro_linear_regression.py
	MPLBACKEND=Agg $(PY) docs/examples/equinox_tutorials.py

bench: install
	$(PY) -m benchmarks --quick

# Mutation testing (cosmic-ray) of the loop, the adapters and the test kit, on a scratch
# worktree of HEAD: hours, so not in CI. MUTATION_ARGS="--targets kit --sample 60" runs
# a seeded sample of one target; the scores and survivors are in docs/testing.md.
MUTATION_ARGS ?=
mutation: install
	$(PY) -m pip install -q -c .ci/constraints.txt -e ".[mutation]"
	$(PY) tools/mutation.py $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) site logdensity-demo .mutation
