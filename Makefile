# Two commands on a fresh machine (Python >= 3.11 and make):
#   make book   set up .venv and build the book (HTML, from the committed notebooks, offline)
#   make test   set up .venv; ruff, unit tests, every chapter under nbval in quick mode, the book
#               build with warnings as errors, and the rendered pages in headless Chromium
# CAMCORE_DATA points at the Intel Image Classification data; without it kagglehub downloads it.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup book test unit lint execute demo bench peers train clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,book]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" > /dev/null
	touch $@

setup: $(VENV)/.installed

book: setup
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "The book is in _build/html/index.html"

test: setup lint
	$(PY) -m pytest

# The unit tests alone (no notebooks, no book build, no training: the tests marked slow, which
# train or convert weights, run in make test): within 2 minutes on 2 CPUs
unit: setup
	$(PY) -m pytest tests --ignore=tests/test_rendered_book.py -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .

# Re-execute every page in place, in full mode, on the real data (about an hour on 2 cores:
# the chapters' full minutes are in camcore/book/minutes.json).
execute: setup
	$(PY) scripts/execute_book.py

demo: setup
	$(PY) scripts/demo.py

train: setup
	$(PY) scripts/fine_tune.py

bench: setup
	$(PY) scripts/benchmark.py

# camcore against tf-keras-vis and the Keras Grad-CAM example: map agreement, time, memory
# (about 6 minutes on 2 idle cores; writes chapters/data/peers.json)
$(VENV)/.peers-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[peers]"
	touch $@

peers: $(VENV)/.peers-installed
	$(PY) scripts/peers.py

clean:
	rm -rf _build .pytest_cache

# --- Publishing helpers (not part of `make book` / `make test`) ---
.PHONY: student wheelhouse slides explorer

# The chapters for students: outputs cleared, gated solutions removed (_build/student/)
student: setup
	$(PY) scripts/student_copy.py chapters _build/student

# Every package of .[test,book,workshop] for this platform and Python, for a machine without internet
# (under a gigabyte for Linux x86_64 and Python 3.11; prints its size and the install command)
WHEELHOUSE ?= wheelhouse
wheelhouse: setup
	$(PY) scripts/wheelhouse.py $(WHEELHOUSE)

# The workshop's slides: the cells the chapters tag `slide`, as an offline reveal.js deck
slides: setup
	$(PY) scripts/slides.py

# The explorer page's maps (chapters/data/explorer/explorer.json): about 5 minutes on 2 cores
explorer: setup
	$(PY) scripts/explorer.py
