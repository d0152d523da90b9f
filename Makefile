# veo — two commands do everything on a fresh Debian/Ubuntu machine as root:
#   make run    deploy cluster.yml on a local multi-node Ray cluster and watch it
#   make test   the whole suite (inside a loopback-only network namespace)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VEO := $(VENV)/bin/veo
APT_PACKAGES := docker.io busybox-static iproute2 util-linux chromium chromium-driver redis-server docker-registry bind9-dnsutils
# Ray binds the machine's address and its dashboard probes cloud metadata addresses; on these
# machines anything that starts Ray runs in a network namespace that only has loopback.
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)
ifeq ($(IS_ROOT),yes)
LOOPBACK := unshare -n sh -c 'ip link set lo up && exec "$$@"' sh
else
LOOPBACK :=
endif
PYTEST_ARGS ?=

# the network namespace of the local cluster `make run` started (its launcher's recorded PID), so
# later commands can reach it: make veo ARGS="ps"
STATE_DIR := $(or $(VEO_STATE_DIR),$(HOME)/.veo)
CLUSTER_PID = $(shell sed -n 's/.*"pid": \([0-9]*\).*/\1/p' $(STATE_DIR)/local-cluster.json 2>/dev/null)
IN_CLUSTER_NS = $(if $(CLUSTER_PID),nsenter --net=/proc/$(CLUSTER_PID)/ns/net,)
ARGS ?= ps

.PHONY: install system-deps run multiple veo down test test-machines unit chaos bench clean

install: system-deps $(VENV)/.installed

system-deps:
	@missing=""; \
	command -v dockerd >/dev/null || missing="$$missing docker.io"; \
	dpkg -s busybox-static >/dev/null 2>&1 || missing="$$missing busybox-static"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v unshare >/dev/null || missing="$$missing util-linux"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v docker-registry >/dev/null || missing="$$missing docker-registry"; \
	command -v dig >/dev/null || missing="$$missing bind9-dnsutils"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "veo needs these Debian packages:$$missing"; \
	    echo "run as root:  apt-get install -y$$missing   (or: sudo make install)"; exit 1; \
	  fi; \
	fi

$(VENV)/.installed: pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: install
	$(LOOPBACK) $(VEO) up cluster.yml --watch

# the demo on two machines, uno and dos, each with its own address, dockerd and `veo node start`
# (tests/machines/world.py); Ctrl-C removes them. Enter one: see README, "Running on several machines"
multiple: install
	$(LOOPBACK) $(PY) tests/machines/world.py cluster.yml

veo: install
	$(IN_CLUSTER_NS) $(VEO) $(ARGS)

down: install
	$(IN_CLUSTER_NS) $(VEO) down

test: install
	$(LOOPBACK) $(PY) -m pytest --ignore=tests/machines $(PYTEST_ARGS)

# three machines (network namespaces with their own address, dockerd and `veo node start`)
test-machines: install
	$(LOOPBACK) $(PY) -m pytest tests/machines $(PYTEST_ARGS)

unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

chaos: install
	$(LOOPBACK) $(PY) -m pytest tests/chaos $(PYTEST_ARGS)

# BENCH_ARGS="--quick" or "--only e2e" etc.; figures go to the terminal and artifacts/bench.json.
# docker-compose is Debian's 1.29.2 (its own python; the PyPI one conflicts with docker-py 7).
bench: install
	@if ! command -v docker-compose >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian package: docker-compose (benchmark baseline)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null \
	      || echo "could not install docker-compose: the benchmark reports it as unavailable"; \
	  else \
	    echo "docker-compose is missing (as root: apt-get install -y docker-compose); the benchmark reports it as unavailable"; \
	  fi; \
	fi
	$(LOOPBACK) $(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
