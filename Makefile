# riffledb: `make demo` runs the main job, `make test` runs every test. Both set up what they
# need first (Debian packages, .venv, the C++ build), and rebuild only what changed.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.riffledb-setup
BUILD  := build/release
DEV    := build/dev
TSAN   := build/tsan
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONPATH := $(CURDIR)/python
PYTEST_ARGS ?=
# The Python suite runs in this many processes (pytest-xdist), each test file whole in one
# of them (--dist loadfile: a module's fixtures, a Ray cluster or a server, start once):
# 498 -> 374 s in a clean CI run on 2 cores. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2

.PHONY: all setup build test test-cpp test-python test-wheel test-asan test-tsan demo format \
        lint clean bench soak bench-metadata bench-ingest bench-s3 bench-streaming \
        bench-pipeline bench-s3-prefetch bench-remote bench-remote-steps

all: build

$(STAMP): scripts/setup.sh requirements-dev.txt
	bash scripts/setup.sh

setup: $(STAMP)

# Reconfigured when the presets change (their flags); cmake may leave an unchanged
# build.ninja alone, hence the touch.
$(BUILD)/build.ninja: CMakePresets.json | $(STAMP)
	cmake --preset release
	touch $@

build: $(STAMP) $(BUILD)/build.ninja
	cmake --build $(BUILD)

test-cpp: build
	ctest --test-dir $(BUILD) --output-on-failure -j2 --timeout 300

# LanceDB's own client (lancedb==0.40.0), which tests/test_serve.py runs against
# `riffledb serve`: a virtualenv of its own, so that the two packages stay apart.
LANCEDB_VENV  := .venv-lancedb
LANCEDB_STAMP := $(LANCEDB_VENV)/.riffledb-lancedb-setup

$(LANCEDB_STAMP): requirements-lancedb.txt
	python3 -m venv $(LANCEDB_VENV)
	$(LANCEDB_VENV)/bin/pip install -q -r requirements-lancedb.txt
	touch $@

test-python: build $(LANCEDB_STAMP)
	RIFFLEDB_LANCEDB_PYTHON=$(CURDIR)/$(LANCEDB_VENV)/bin/python $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile \
	  $(PYTEST_ARGS)

test: test-cpp test-python test-wheel

# The wheel, built as `pip wheel .` builds it but in this .venv (no build isolation, so the
# build tree build/wheel stays valid and rebuilds incrementally), then installed into a
# fresh virtualenv and smoke-tested from outside the source tree (scripts/wheel_smoke.py).
# The virtualenv sees .venv's packages through a .pth file, as --system-site-packages would
# show the system's: pip checks the wheel's dependencies against them and installs none.
WHEEL_DIR   := build/dist
WHEEL_STAMP := $(WHEEL_DIR)/.built
SMOKE_VENV  := build/wheel-venv
SMOKE_STAMP := $(SMOKE_VENV)/.installed
WHEEL_SRCS  := pyproject.toml CMakeLists.txt $(wildcard cmake/*.cmake) cpp/CMakeLists.txt \
               python/CMakeLists.txt $(shell find cpp/src python/src python/riffledb -type f \
               \( -name '*.cc' -o -name '*.h' -o -name '*.py' -o -name py.typed \) \
               ! -name '*_test.cc' ! -name '*_benchmark.cc' ! -name '*_fuzz.cc')

$(WHEEL_STAMP): $(WHEEL_SRCS) | $(STAMP)
	rm -rf $(WHEEL_DIR)
	env -u PYTHONPATH $(PY) -m pip wheel -q --no-deps --no-build-isolation -w $(WHEEL_DIR) .
	touch $@

$(SMOKE_STAMP): $(WHEEL_STAMP)
	rm -rf $(SMOKE_VENV)
	$(PY) -m venv --without-pip $(SMOKE_VENV)
	$(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))' > "$$($(SMOKE_VENV)/bin/python \
	  -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/dot-venv.pth"
	env -u PYTHONPATH $(PY) -m pip --python $(SMOKE_VENV)/bin/python install -q --no-index \
	  $(WHEEL_DIR)/riffledb-*.whl
	touch $@

test-wheel: $(SMOKE_STAMP)
	cd $(SMOKE_VENV) && bin/python -I $(CURDIR)/scripts/wheel_smoke.py

# The C++ suites under AddressSanitizer and UBSan.
$(DEV)/build.ninja: | $(STAMP)
	cmake --preset dev

test-asan: $(STAMP) $(DEV)/build.ninja
	cmake --build $(DEV)
	ctest --test-dir $(DEV) --output-on-failure -j2 --timeout 600

# The thread-pool, fork, racing-writer and concurrent-reader tests (table_test: fragments
# opened lazily by racing takes), and every test of the server (its connection threads
# under concurrent takes, appends and a stop) and of the remote client, under
# ThreadSanitizer (`tsan` preset): only the test binaries they live in are built. They
# fork while pool threads run, and a child starts threads again: TSan forbids that
# unless die_after_fork=0.
# Excluded: ChildCanDestroyPoolsInheritedFromTheParent, where TSan's thread registry
# still holds the parent's vanished threads and reports "dup thread with used id" when
# the child's new thread reuses a stack (a TSan limitation after a multi-threaded fork,
# not a race). cpp/sanitizers/tsan.supp suppresses what the uninstrumented libraries
# are reported for (libarrow's lazily cached schema fingerprints, cpp-httplib's
# connection threads), each line explained there. With it, table_test's threads
# appending to or committing into one table directory, excluded before (reported in
# about 1 run in 4 each), passed 40 runs of 40.
# Arrow's allocator is the system one: its bundled mimalloc is not instrumented, and TSan
# reports its thread-local setup and teardown as races (seen in TableDirTest.Threads*).
# The server's and the remote client's tests are run whole: all of them start threads (a
# server's, a mock server's): 97 tests, ~60 s on 2 cores under TSan. Of the other
# binaries, the tests named below. (db_test passed whole under TSan, 8 runs of 8; it is
# left out for .ci/run's time, ~40 min with it in a busy hour.)
TSAN_WHOLE   := remote remote_client
TSAN_TARGETS := util_test io_test format_test table_test $(TSAN_WHOLE:%=%_test)
TSAN_TESTS   := ThreadPool|Fork|PerProcess|Race|Racing|Concurrent
# ForkSafety.ForkWhileThePoolIsBusy forks under TSan, as under ASan, only while every busy
# thread is parked (kThreadSanitizer, riffledb/testing/testing.h): a child forked at an
# arbitrary point could hang in TSan's own locks (about one run in five, which a retry
# used to hide). make test forks at arbitrary points.
TSAN_SKIP    := ForkSafety.ChildCanDestroyPoolsInheritedFromTheParent
$(TSAN)/build.ninja: | $(STAMP)
	cmake --preset tsan

TSAN_ENV := TSAN_OPTIONS="die_after_fork=0 halt_on_error=1 second_deadlock_stack=1 \
  suppressions=$(CURDIR)/cpp/sanitizers/tsan.supp" ARROW_DEFAULT_MEMORY_POOL=system
TSAN_CTEST := ctest --test-dir $(TSAN) --output-on-failure -j2 --timeout 600
empty :=
TSAN_WHOLE_LABELS := ^($(subst $(empty) $(empty),|,$(TSAN_WHOLE)))$$

test-tsan: $(STAMP) $(TSAN)/build.ninja
	cmake --build $(TSAN) --target $(TSAN_TARGETS)
	$(TSAN_ENV) $(TSAN_CTEST) -R '$(TSAN_TESTS)' -E '$(TSAN_SKIP)' -LE '$(TSAN_WHOLE_LABELS)'
	$(TSAN_ENV) $(TSAN_CTEST) -L '$(TSAN_WHOLE_LABELS)' -E '$(TSAN_SKIP)'

# The fault-injection, kill -9, drop-race and bit-flip loops that `make test` runs briefly,
# run for SOAK_MINUTES in total (default 10), then their counts (scripts/soak.py). Not
# part of `make test` or CI: too long.
SOAK_MINUTES ?= 10

soak: build
	$(PY) scripts/soak.py --minutes $(SOAK_MINUTES)

demo: build
	$(PY) examples/demo.py

format: $(STAMP)
	$(PY) -m ruff format python tests examples benchmarks
	$(PY) -m ruff check --fix --select I python tests examples benchmarks
	clang-format -i $(CXX_SRCS)

# The C++ the checked-in .clang-format governs (clang-format comes from scripts/setup.sh).
CXX_SRCS = $(shell find cpp python/src -name '*.h' -o -name '*.cc')

lint: $(STAMP)
	$(PY) -m ruff check python tests examples benchmarks scripts
	$(PY) -m ruff format --check python tests examples benchmarks scripts
	clang-format --dry-run --Werror $(CXX_SRCS)

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

# Metadata that scales (issue #10, item 8): APPENDS one-row appends (default 10,000) to one
# table; add latency first vs last, list_versions, open time, metadata bytes
# (benchmarks/metadata.py; docs/benchmarks/README.md, "Metadata").
bench-metadata: build
	$(PY) benchmarks/metadata.py $(if $(APPENDS),--appends $(APPENDS))

# Scale-out ingest (issue #11, item 6): rows/s of one process calling add vs the Ray
# datasink, on a directory and on the loopback S3 server (benchmarks/ingest.py).
bench-ingest: build
	$(PY) benchmarks/ingest.py --s3 $(if $(INGEST_ROWS),--rows $(INGEST_ROWS))

# Random takes from S3 (issue #11): an epoch of shuffled 256-row takes of `vectors` from the
# loopback S3 server, riffledb with a cold and a warm local cache vs riffledb on a directory
# and LanceDB 0.40 (from the bench virtualenv) on the same bucket (benchmarks/s3_take.py).
bench-s3: build $(BENCH_STAMP)
	$(PY) benchmarks/s3_take.py --lancedb-python $(BENCH_VENV)/bin/python \
	  $(if $(QUICK),--quick) $(if $(S3_ROWS),--rows $(S3_ROWS))

# Prefetching on S3 (issue #12): cold passes over a shuffled split of `vectors` on the
# loopback S3 server, perm.iter(256) vs perm.iter(256, prefetch=...), with moto as it is
# and with a delay added to every request (S3's time to first byte; benchmarks/s3_prefetch.py).
bench-s3-prefetch: $(if $(wildcard python/riffledb/_riffledb*.so),,build)
	$(PY) benchmarks/s3_prefetch.py $(if $(QUICK),--quick) $(if $(S3_ROWS),--rows $(S3_ROWS))

# Streaming epochs (benchmarks/streaming.py): the same STREAM_ROWS rows (default 200,000;
# QUICK=1: 20,000) converted into each system's format, then full shuffled epochs of
# per-sample dicts, interleaved: riffledb.streaming (this tree, .venv; bare and through a
# DataLoader), LanceDB 0.40's lancedb.streaming (.venv-bench), MosaicML Streaming and
# LitData (.venv-peers: their pins clash with .venv-bench's). Builds the extension only
# when python/riffledb/ has none (the tree under test, as `make build` left it).
# S3=1: every system's data on the loopback S3 server (moto in the driver process, as in
# bench-s3) instead of local disk; each epoch cold (a fresh cache directory per epoch),
# riffledb, MDS and LitData also warm (cache kept). Slow: LanceDB's S3 epochs take
# minutes at 200,000 rows on moto.
PEERS_VENV  := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.riffledb-peers-setup

$(PEERS_STAMP): requirements-peers.txt
	python3 -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -q -r requirements-peers.txt
	touch $@

bench-streaming: $(if $(wildcard python/riffledb/_riffledb*.so),,build) $(BENCH_STAMP) $(PEERS_STAMP)
	$(PY) benchmarks/streaming.py --lancedb-python $(BENCH_VENV)/bin/python \
	  --peers-python $(PEERS_VENV)/bin/python \
	  $(if $(QUICK),--quick) $(if $(STREAM_ROWS),--rows $(STREAM_ROWS)) $(if $(S3),--s3)

# The native prefetching pipeline and the DataLoader hand-off (benchmarks/pipeline.py):
# PIPE_ROWS rows (default 200,000; QUICK=1: 20,000 and 2 repeats) of one local table,
# perm.iter(256) vs perm.iter(256, prefetch=8) vs DataLoader, with and without a 1.5 ms
# torch step, beside a spinning Python thread, and through 2 fork workers
# (one_buffer_collate vs torch's per-tensor hand-off vs a numpy memory map). riffledb
# alone; builds the extension only when python/riffledb/ has none.
bench-pipeline: $(if $(wildcard python/riffledb/_riffledb*.so),,build)
	$(PY) benchmarks/pipeline.py $(if $(QUICK),--quick) $(if $(PIPE_ROWS),--rows $(PIPE_ROWS))

# Remote tables on loopback (issue #13, benchmarks/remote.py): REMOTE_ROWS rows (default
# 100,000; QUICK=1: 20,000) served by `riffledb serve`; shuffled 256-row takes by riffledb's
# client and LanceDB 0.40's (from the bench virtualenv, host_override) beside riffledb
# local, and DataLoader epochs (0 and 2 fork workers), interleaved rounds. Then the load
# test (benchmarks/remote_load.py: 4 client processes of takes and appends for 20 s).
bench-remote: $(if $(wildcard python/riffledb/_riffledb*.so),,build) $(BENCH_STAMP)
	$(PY) benchmarks/remote.py --lancedb-python $(BENCH_VENV)/bin/python \
	  $(if $(QUICK),--quick) $(if $(REMOTE_ROWS),--rows $(REMOTE_ROWS))
	$(PY) benchmarks/remote_load.py --json benchmarks/results/remote-load.json

# Where a one-at-a-time remote take's time goes (benchmarks/remote_steps.py): each step
# of a local and a remote take timed in one process, beside the bare exchange.
bench-remote-steps: $(if $(wildcard python/riffledb/_riffledb*.so),,build)
	$(PY) benchmarks/remote_steps.py $(if $(REMOTE_ROWS),--rows $(REMOTE_ROWS))
