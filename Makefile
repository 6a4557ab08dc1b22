# The two commands the README promises: `make run` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
TSTAMP  = $(VENV)/.installed-test

.PHONY: run test lint bench chaos unit clean oracle

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e .
	touch $@

$(TSTAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP) $@

# Start one node: client port 4222, monitoring 8222, JetStream with data in ./data.
run: $(STAMP)
	$(VENV)/bin/broker -js -sd ./data -m 8222

# nats-server 2.9.10 from Debian is the oracle the conformance tests compare against.
oracle:
	@command -v nats-server >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && (apt-get install -y -q nats-server >/dev/null 2>&1 || \
	    (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q nats-server >/dev/null 2>&1)) || \
	    echo "nats-server not installed: conformance tests against it will be skipped"; }

test: $(TSTAMP) oracle
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

unit: $(TSTAMP)
	$(VENV)/bin/pytest -q tests/unit

lint: $(TSTAMP)
	$(VENV)/bin/ruff check .

bench: $(TSTAMP)
	$(PY) -m tests.bench

# Randomized kills, power losses, pauses and partitions of a three-node cluster under load.
CHAOS_ROUNDS ?= 30
chaos: $(TSTAMP)
	$(PY) -m tests.chaos --rounds $(CHAOS_ROUNDS)

clean:
	rm -rf $(VENV) build *.egg-info
