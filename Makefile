# riffledb: `make demo` runs the main job, `make test` runs every test. Both set up what they
# need first (Debian packages, .venv, the C++ build), and rebuild only what changed.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.riffledb-setup
BUILD  := build/release
DEV    := build/dev
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONPATH := $(CURDIR)/python
PYTEST_ARGS ?=

.PHONY: all setup build test test-cpp test-python test-asan demo format lint clean bench

all: build

$(STAMP): scripts/setup.sh requirements-dev.txt
	bash scripts/setup.sh

setup: $(STAMP)

$(BUILD)/build.ninja: | $(STAMP)
	cmake --preset release

build: $(STAMP) $(BUILD)/build.ninja
	cmake --build $(BUILD)

test-cpp: build
	ctest --test-dir $(BUILD) --output-on-failure -j2 --timeout 300

test-python: build
	$(PY) -m pytest $(PYTEST_ARGS)

test: test-cpp test-python

# The C++ suites under AddressSanitizer and UBSan.
$(DEV)/build.ninja: | $(STAMP)
	cmake --preset dev

test-asan: $(STAMP) $(DEV)/build.ninja
	cmake --build $(DEV)
	ctest --test-dir $(DEV) --output-on-failure -j2 --timeout 600

demo: build
	$(PY) examples/demo.py

format: $(STAMP)
	$(PY) -m ruff format python tests examples benchmarks
	$(PY) -m ruff check --fix --select I python tests examples benchmarks
	command -v clang-format >/dev/null && find cpp python/src -name '*.h' -o -name '*.cc' | xargs clang-format -i || echo "clang-format not installed: C++ left as is"

lint: $(STAMP)
	$(PY) -m ruff check python tests examples benchmarks
	$(PY) -m ruff format --check python tests examples benchmarks

clean:
	rm -rf build python/riffledb/_riffledb*.so

# End-to-end comparison with LanceDB, HF datasets and numpy (benchmarks/README.md):
# `make bench` (full data, ~2x2 GiB) or `make bench QUICK=1` (reduced, < 5 minutes).
# The peers live in their own virtualenv; riffledb is this tree (python/ on PYTHONPATH,
# the extension from `make build`).
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.riffledb-bench-setup

$(BENCH_STAMP): requirements-bench.txt
	python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q -r requirements-bench.txt
	touch $@

bench: build $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/run.py $(if $(QUICK),--quick) $(if $(ONLY),--only $(ONLY))
