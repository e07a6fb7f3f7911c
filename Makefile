# Build and test entry points. `make test` works on a fresh Debian 12 machine with Python 3.11.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP := $(VENV_PY) -m pip --disable-pip-version-check
# Extra arguments for pytest, e.g. make test PYTEST_ARGS="tests/support -x"
PYTEST_ARGS ?=
# Use sudo for apt-get when not root (and sudo exists).
SUDO := $(shell if [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then echo sudo; fi)

.PHONY: help venv system-deps test-tools test screenshots fuzz run bench clean distclean services-start services-stop

help:
	@echo "make venv         create .venv and install the package with its test extras"
	@echo "make system-deps  install missing Debian packages (chromium, redis, postgresql, ...)"
	@echo "make test         run pytest against throwaway PostgreSQL + Redis (PYTEST_ARGS=...)"
	@echo "make screenshots  run the browser tests and refresh docs/screenshots/ from them"
	@echo "make fuzz         the fuzz tests (marker fuzz) with 20x the examples of make test (several minutes)"
	@echo "make run          migrate, seed demo data and start the demo (IdP, DSP viewer, DSP API, sandboxes)"
	@echo "make bench        benchmark (idp serve + PostgreSQL + Redis vs the Node.js reference; BENCH_ARGS=...), a few minutes"
	@echo "make clean        stop test services, remove caches and artifacts (distclean: + .venv)"

venv: $(STAMP)
	@:

# The interpreter; if `python3 -m venv` fails (Debian without python3-venv), install it and retry.
$(VENV_PY):
	@if ! $(PYTHON) -m venv $(VENV) >/dev/null 2>&1; then \
		rm -rf $(VENV); \
		echo "venv: installing python3-venv" >&2; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			python3-venv >/dev/null; \
		$(PYTHON) -m venv $(VENV); \
	fi

# Re-install only when the package metadata changes; pip's output goes to a log, shown only on failure.
$(STAMP): setup.cfg pyproject.toml | $(VENV_PY)
	@echo "venv: installing the package and its dependencies into $(VENV) (log: $(VENV)/install.log)"
	@if ! { $(PIP) install -q --upgrade pip && $(PIP) install -q -e '.[test,sandbox]'; } >$(VENV)/install.log 2>&1; then \
		tail -n 40 $(VENV)/install.log >&2; echo "venv: pip install failed (whole log: $(VENV)/install.log)" >&2; exit 1; \
	fi
	@touch $@

system-deps:
	@scripts/system-deps.sh

# From npm, into the gitignored .test-tools/: axe-core for the accessibility tests, then
# oauth4webapi (pinned) for the interoperability tests of tests/interop/.
test-tools:
	@scripts/install-axe.sh
	@scripts/install-oauth4webapi.sh

test: venv system-deps test-tools
	@scripts/run-tests.sh $(PYTEST_ARGS)

# The README's pictures come from the browser tests; a plain test run leaves docs/ alone.
screenshots: venv system-deps test-tools
	@IDP_PUBLISH_SCREENSHOTS=1 scripts/run-tests.sh tests/browser/test_patient_experience_browser.py tests/browser/test_dsp_viewer_browser.py tests/browser/test_passkeys_browser.py

# The same fuzz tests `make test` runs bounded (tests marked fuzz), far longer (tests/security/fuzzing.py).
fuzz: venv system-deps
	@IDP_FUZZ=1 scripts/run-tests.sh -m fuzz $(PYTEST_ARGS) tests

# The whole demo (rp_demo/launcher.py): the Debian packages it needs (xmlsec1 for SAML, fonts for
# the PDFs), then migrate, seed, and the IdP (:5000), DSP viewer (:5001), DSP API (:5002) and the
# MyGuichet/LuxTrust sandboxes (:5010, :5011); the summary comes last; Ctrl-C stops them all.
run: venv
	@scripts/system-deps.sh --demo
	@$(VENV_PY) -m rp_demo.launcher

# Benchmark (bench/run.py): its own PostgreSQL, Redis and `idp serve` on loopback, side by side with the
# Node.js reference (npm, installed by test-tools' npm; BENCH_ARGS=--no-reference skips it); results in
# bench/results/. BENCH_ARGS=--floor adds the floor program (bench/floor/), --profile py-spy profiles.
# Bounded: BENCH_DURATION seconds per run, two runs per scenario, killed after 15 min.
BENCH_DURATION ?= 8
BENCH_ARGS ?=
bench: venv system-deps test-tools
	@timeout 900 $(VENV_PY) -m bench.run --duration $(BENCH_DURATION) $(BENCH_ARGS)

# Manual use: start the services and print the env lines, e.g. eval "$(make -s services-start)"
services-start:
	@scripts/test-services.sh start

services-stop:
	@scripts/test-services.sh stop

clean:
	@scripts/test-services.sh stop
	@rm -rf .pytest_cache .hypothesis test-artifacts build dist *.egg-info .coverage htmlcov
	@find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
