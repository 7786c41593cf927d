# Two commands on a fresh machine (Python >= 3.10 and make):
#   make demo   set up .venv, fine-tune (or load) the classifier and explain test images
#   make test   set up .venv and run the test suite
# CAMCORE_DATA points at the Intel Image Classification data; without it kagglehub downloads it.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test bench train clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,book]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) scripts/demo.py

test: setup
	$(PY) -m pytest

train: setup
	$(PY) scripts/fine_tune.py

bench: setup
	$(PY) scripts/benchmark.py

clean:
	rm -rf _build .pytest_cache
