# Two entry points set up a fresh Debian/Ubuntu machine (Python 3.11, no GPU):
#   make quickstart   install, then collect → train → evaluate on the default task
#   make test         install, then lint and run the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Headless MuJoCo rendering through EGL (Mesa's llvmpipe on CPU machines).
export MUJOCO_GL ?= egl
# Debian packages MuJoCo's EGL/OSMesa renderers load at run time.
DEB_PACKAGES := libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 libosmesa6

.PHONY: install install-dev system-deps quickstart test lint format clean

system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

# The tests also need the dev tools and the optional Ray backend (tested against a local ray.init).
$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev,ray]'
	touch $@

install: system-deps $(VENV)/.installed

install-dev: system-deps $(VENV)/.installed-dev

quickstart: install
	$(BIN)/robopolicy quickstart

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf runs .pytest_cache .ruff_cache
