# imkd_ros developer entry points. Everything installs into a project-local virtual environment at .venv.
#   make demo   - the main job on the embedded synthetic default
#   make test   - lint + the whole test suite
#   make setup  - only the environment (idempotent; a second run takes seconds)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.imkd-setup-stamp
DEMO_OUT ?= demo_out
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export AMENT_PREFIX_PATH := $(abspath $(VENV))

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): requirements.txt setup.py package.xml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/imkd demo --out $(DEMO_OUT)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q test

clean:
	rm -rf $(VENV) build *.egg-info $(DEMO_OUT)
