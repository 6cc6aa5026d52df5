# Two commands set everything up on a fresh machine:
#   make demo   installs robostore into .venv and records a demo dataset (robostore demo)
#   make test   installs robostore with its test extras into .venv and runs the tests
#   make lint   ruff (lint and format check) and mypy, configured in pyproject.toml
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check

.PHONY: setup demo test lint

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	# The CPU build of torch first: a looser spec with no torch installed pulls a multi-GB CUDA build.
	$(PIP) install torch==2.13.0
	$(PIP) install -c constraints.txt -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

# The main job: record a synthetic dataset (2 cameras, state, action, 3 episodes) and show it.
DEMO_URL ?= demo_dataset
demo: setup
	rm -rf $(DEMO_URL)
	$(VENV)/bin/robostore demo $(DEMO_URL)
	$(VENV)/bin/robostore validate $(DEMO_URL)

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
