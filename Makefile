# The two README commands: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.auden-installed
APT_PACKAGES := espeak-ng sox libsndfile1
PYTEST_ARGS ?= -m "not slow"

.PHONY: setup apt test test-slow test-all demo bench bench-quick lint setup-kaldifeat clean

setup: apt $(STAMP)

# Debian packages the recipes call (espeak-ng and sox synthesise mini_en).
apt:
	@$(call apt_install,$(APT_PACKAGES))

# apt_install: install the Debian packages named that are missing (as root, or via sudo).
define apt_install
missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
  echo "installing Debian packages:$$missing"; \
  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
fi
endef

# torch goes in first, pinned to the CPU build, so no dependency can pull a CUDA build.
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q -e '.[dev]'
	@touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .

test: setup lint
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

# The end-to-end tests (a real recipe run each; about 8 minutes in all on 2 cores).
test-slow: setup
	$(VENV)/bin/pytest -q -m slow

test-all: PYTEST_ARGS :=
test-all: test

demo: setup
	source $(VENV)/bin/activate && bash egs/mini_en/run.sh

# Every benchmarks/bench_*.py, then benchmarks/RESULTS.md regenerated from their JSON
# (<= 15 minutes on 2 cores). bench-quick: the same scripts at smoke sizes (<= 3 minutes),
# written under benchmarks/results/quick/ so the committed results stay as they are.
bench: setup
	$(PY) benchmarks/run_all.py

bench-quick: setup
	$(PY) benchmarks/run_all.py --quick

# kaldifeat has no wheel for current torch: build it from its PyPI sdist against the
# installed torch, with pybind11's source (from PyPI) handed to CMake. The wheel is cached.
KALDIFEAT_CACHE := $(HOME)/.cache/auden/kaldifeat
setup-kaldifeat: setup
	@$(call apt_install,cmake g++ make)
	bash tools/build_kaldifeat.sh $(PY) $(KALDIFEAT_CACHE)

clean:
	rm -rf $(VENV)
