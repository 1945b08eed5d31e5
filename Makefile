# Two entry points set up a fresh Debian/Ubuntu machine (Python 3.11, no GPU):
#   make quickstart   install, then collect → train → evaluate on the default task
#   make test         install, then lint and run the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Headless MuJoCo rendering through EGL (Mesa's llvmpipe on CPU machines).
export MUJOCO_GL ?= egl
# Debian packages MuJoCo's EGL/OSMesa renderers load at run time, and the venv module that stock
# Debian/Ubuntu Pythons leave out.
DEB_PACKAGES := libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 libosmesa6 python3-venv
# Exact versions CI tested (see the file's header); pip takes them as constraints.
CONSTRAINTS := constraints.txt
PIP_INSTALL := $(BIN)/pip install -q -c $(CONSTRAINTS)

.PHONY: install install-dev system-deps check-python quickstart test lint format clean constraints libero-client

system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "robopolicy needs Python >= 3.11; '$(PYTHON)' is $$($(PYTHON) --version 2>&1)." \
	       "Run with PYTHON=python3.11 (or newer)."; exit 1; }

$(BIN)/python: | check-python
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(PIP_INSTALL) -e .
	touch $@

# The tests also need the dev tools and the optional Ray backend (tested against a local ray.init).
# openpi's client, which the protocol tests use, goes in without its dependencies (see pyproject.toml).
$(VENV)/.installed-dev: pyproject.toml $(CONSTRAINTS) $(VENV)/.installed
	$(PIP_INSTALL) -e '.[dev,ray]'
	$(PIP_INSTALL) --no-deps openpi-client typing_extensions
	touch $@

install: check-python system-deps $(VENV)/.installed

install-dev: check-python system-deps $(VENV)/.installed-dev

# Pin what the dev venv holds now (after changing dependencies in pyproject.toml).
constraints: install-dev
	{ sed -n '1,3p' $(CONSTRAINTS); $(BIN)/pip freeze --exclude-editable | grep -v '^robopolicy'; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

quickstart: install
	$(BIN)/robopolicy quickstart

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# One pytest worker per core (pytest-xdist): many tests wait on subprocesses, compiles and renders
# that leave a core idle. The slowest 15 tests are listed at the end, to keep the suite's time in view.
test: lint
	$(BIN)/python -m pytest -q -n auto --durations=15

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf runs .pytest_cache .ruff_cache

# The LIBERO client (docs/libero.md): its own venv, clients/libero/.venv (LIBERO needs robosuite 1.4 and
# MuJoCo 3, robopolicy MuJoCo 4), with robopolicy's client package and the pinned LIBERO packages.
LIBERO_VENV := clients/libero/.venv
libero-client: check-python system-deps
	test -x $(LIBERO_VENV)/bin/python || $(PYTHON) -m venv $(LIBERO_VENV)
	$(LIBERO_VENV)/bin/pip install -q --upgrade pip
	$(LIBERO_VENV)/bin/pip install -q -c clients/libero/constraints.txt ./clients/python -e ./clients/libero
