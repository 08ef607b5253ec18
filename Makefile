# ReadyNet: `make demo` and `make test` are the two commands; the rest serve them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install system-deps demo test check lint bench services clean

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
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || \
	  (command -v pg_ctlcluster >/dev/null && \
	   pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n1) main start) || \
	  echo "warning: PostgreSQL is not running on 127.0.0.1:5432; the postgres tests will fail"

test: install system-deps services
	$(BIN)/python -m pytest

check: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy --strict agent collector

lint: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install system-deps
	$(BIN)/python -m bench

clean:
	rm -rf .demo build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
