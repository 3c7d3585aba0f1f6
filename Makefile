# One entry point for running, testing, linting, benchmarking and packaging AnonChat.
# `make run` and `make test` work on a fresh Debian machine that has only Python 3.11.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APP_STAMP := $(VENV)/.app-installed
# What the app needs (Qt's libraries: widgets, QtMultimedia for the camera), and what the
# tests, benchmarks and packaging add (Xvfb for screenshots, network namespaces, Redis).
APP_DEB_PACKAGES := libpulse0 libegl1 libgl1 libfontconfig1 libdbus-1-3 libxkbcommon0 \
	libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 \
	libxcb-image0 libxcb-render-util0
DEB_PACKAGES := $(APP_DEB_PACKAGES) xvfb xauth strace binutils curl openssl redis-server \
	iproute2
# Only `make bench` needs these: bench/backplane.py compares the backplane on Redis with NATS;
# bench/relay.py compares the relay with a forwarder on Node's ws (npm's ws, into bench/node).
BENCH_DEB_PACKAGES := nats-server
NODE_DEB_PACKAGES := nodejs npm
BENCH_STAMP := $(VENV)/.bench-installed
PYTEST_ARGS ?=

.PHONY: run test soak lint format bench package package-check sysdeps app-sysdeps venv \
	app-venv clean mutate node-sysdeps

# `make run` installs the app alone; the test, lint and packaging tools come with `venv`.
$(APP_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(APP_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(APP_STAMP)

venv: $(STAMP)

app-venv: $(APP_STAMP)

# Debian packages, installed only when missing and only when we are root, otherwise listed so
# the user can install them.
define install_missing
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else \
			echo "please install: $$missing" >&2; \
		fi; \
	fi
endef

sysdeps:
	$(call install_missing,$(DEB_PACKAGES))

app-sysdeps:
	$(call install_missing,$(APP_DEB_PACKAGES))

run: app-sysdeps app-venv
	$(VENV)/bin/anonchat $(ARGS)

# The tests start the CLI and the relay as processes hundreds of times: compiled once here,
# each start reads the bytecode instead of compiling every module again (a third of a CLI
# start), also where PYTHONDONTWRITEBYTECODE keeps Python from caching it by itself.
test: sysdeps venv
	$(PY) -m compileall -q app relay tests
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -m "not soak" --durations=30 $(PYTEST_ARGS)

soak: sysdeps venv
	$(PY) -m compileall -q app relay tests
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -m soak $(PYTEST_ARGS)

# Mutation score of app/crypto, app/core/payload and relay/state against their own test
# folders (tests/mutation/targets.py). Not part of `make test`: it takes tens of minutes.
# E.g. MUTATE_ARGS='--only app/crypto/padding.py' or MUTATE_ARGS=--list.
MUTATE_ARGS ?=

mutate: venv
	$(PY) -m tests.mutation $(MUTATE_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: sysdeps venv $(BENCH_STAMP)
	$(call install_missing,$(BENCH_DEB_PACKAGES))
	@command -v npm >/dev/null 2>&1 || $(MAKE) --no-print-directory node-sysdeps
	cd bench/node && npm install --no-audit --no-fund --no-package-lock --loglevel=error
	@set -e; for f in bench/*.py; do echo "== $$f"; QT_QPA_PLATFORM=offscreen $(PY) $$f; done

# Node and npm for bench/relay.py's ws baseline, unless some node with npm is installed already.
node-sysdeps:
	$(call install_missing,$(NODE_DEB_PACKAGES))

# Desktop app (folder and one file) and relay bundles, archives, icons into dist/.
package: sysdeps venv
	packaging/build.sh

# The bundles in dist/ tried outside the source tree and the venv (needs `make package`).
package-check: sysdeps venv
	packaging/check.sh

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
