# One command sets up everything: `make venv`. Then `make test`.
PYTHON ?= python3.10
VENV ?= .venv
PIP := $(VENV)/bin/pip
export TF_USE_LEGACY_KERAS := 1

.PHONY: venv test clean-venv

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip wheel setuptools
	$(PIP) install --quiet -r requirements.lock
	$(PIP) install --quiet --no-deps -e .
	touch $@

test: venv
	$(VENV)/bin/pytest -q tests

clean-venv:
	rm -rf $(VENV)
