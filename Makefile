# Task runner for the README commands.  Everything installs itself into .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: install system-deps demo bench bench-peers test test-unit test-integration kafka-start kafka-stop lint-compose clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP)

## The quickstart's main job: local Kafka + worker + Olist replay + summary.
demo: install
	$(PY) -m pipeline demo

## End-to-end benchmark (issue 9): local Kafka, N pre-loaded events, 1 worker vs a raw aiokafka
## baseline, latency at 50 % load; ends with one JSON line.  BENCH_ARGS="--workers 2 --events 20000 --profile"
bench: install
	$(PY) bench/pipeline_bench.py $(BENCH_ARGS)

## Peer benchmark: the same mini-pipeline as raw aiokafka and as Quix Streams on one local Kafka,
## 100,000 pre-loaded events; ends with one JSON line.  quixstreams (bench only, pinned in
## constraints.txt) is installed into .venv on first use.  PEERS_ARGS="--events 20000"
bench-peers: install
	@$(PY) -c "import quixstreams" 2>/dev/null || $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt quixstreams
	$(PY) bench/peers.py $(PEERS_ARGS)

## The whole test suite (unit + integration against a real local Kafka).
test: install system-deps
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest tests/unit

test-integration: install system-deps
	$(PY) -m pytest tests/integration

## Debian packages the integration tests drive: headless Chromium and its WebDriver (the console's
## browser test), Prometheus and Alertmanager (the health rules end to end).  Needs root or sudo.
SYSTEM_DEPS := chromium chromium-driver prometheus prometheus-alertmanager
system-deps:
	@missing=$$(for p in $(SYSTEM_DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then SUDO=$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo); \
	  echo "installing $$missing"; $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

kafka-start: install
	$(PY) -m pipeline kafka start

kafka-stop: install
	$(PY) -m pipeline kafka stop

clean:
	rm -rf $(VENV) .run build *.egg-info
