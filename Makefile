# ReadyNet: `make demo` and `make test` are the two commands; the rest serve them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install system-deps demo test check lint bench services dist clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

# The embedded default: collector on SQLite + one agent + simulated SNMP devices, loopback only.
demo: install
	$(BIN)/python -m collector.demo --snmprec tests/data/snmprec --workdir .demo

# Debian packages the tests and benchmarks run for real (snmpd, prometheus, iperf3, ...).
system-deps:
	bash scripts/system-deps.sh

# Tests use a real PostgreSQL on 127.0.0.1:5432 (a throwaway database each) and mount a tmpfs.
# The script installs, starts or explains it, as in CI; a no-op when it already answers.
services:
	@bash scripts/postgres.sh

# Two workers: the suite mostly waits on real servers and processes, so on 2 cores it takes
# about half the time of one (475 s against 909 s here). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

# Load tests compare throughput under 1,000 connections with a baseline taken seconds before:
# with another worker's tests taking a core in one window and not the other, the ratio said more
# about them than about the collector. They run alone, after the rest.
test: install system-deps services
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not load"
	$(BIN)/python -m pytest -n 0 -m load

check: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy --strict agent collector

lint: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install system-deps
	$(BIN)/python -m bench

# The readynet wheel and sdist in dist/, and a wheelhouse of the agent's dependencies (not the
# collector's) for deploy/pi/install.sh --wheelhouse at sites without internet. The build runs
# here (setuptools >= 77 from the index); the target only installs wheels.
# Wheelhouse for this machine's platform by default; for another one, pip platform tags, e.g.
# a Raspberry Pi on Bookworm 64-bit (CPython 3.11, glibc 2.36):
#   make dist WHEELHOUSE_PLATFORM="manylinux2014_aarch64 manylinux_2_28_aarch64 manylinux_2_34_aarch64"
# which downloads binary wheels only, into dist/wheelhouse-<first tag>.
DIST_VENV := build/dist-venv
WHEELHOUSE_PLATFORM ?=
WHEELHOUSE_PYTHON ?= 3.11
WHEELHOUSE ?= dist/wheelhouse$(if $(WHEELHOUSE_PLATFORM),-$(firstword $(WHEELHOUSE_PLATFORM)))

dist:
	test -x $(DIST_VENV)/bin/python || $(PYTHON) -m venv $(DIST_VENV)
	$(DIST_VENV)/bin/python -m pip install --quiet --upgrade pip 'build>=1.2'
	rm -f dist/readynet-*
	$(DIST_VENV)/bin/python -m build --outdir dist .
	rm -rf $(WHEELHOUSE)
ifeq ($(WHEELHOUSE_PLATFORM),)
	$(DIST_VENV)/bin/python -m pip wheel --quiet --wheel-dir $(WHEELHOUSE) dist/readynet-*.whl
else
	$(DIST_VENV)/bin/python -m pip download --quiet --only-binary=:all: --dest $(WHEELHOUSE) \
	  $(foreach tag,$(WHEELHOUSE_PLATFORM),--platform $(tag)) \
	  --python-version $(WHEELHOUSE_PYTHON) --implementation cp dist/readynet-*.whl
endif
	@echo "dist/: $$(cd dist && echo readynet-*)"
	@echo "$(WHEELHOUSE)/: $$(ls $(WHEELHOUSE) | wc -l) wheels (readynet's among them)"

clean:
	rm -rf .demo build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
