"""End-to-end benchmark of riffledb against LanceDB, Hugging Face datasets and numpy.

``make bench`` (or ``.venv-bench/bin/python benchmarks/run.py``) generates the data once
(``data.py``), then runs every workload for every system in the same run, interleaved
(each round visits the systems in a rotated order), one warm-up round and ``--repeats``
timed rounds, and writes ``benchmarks/results/latest.json`` (``latest-quick.json`` with
``--quick``) and the report under ``docs/benchmarks/`` (``report.py``).

Each system runs in one long-lived worker process (``worker.py serve``) that imports the
system once: permutation builds run in a child forked from it per measurement (a clean
process for the peak memory, without paying for the interpreter and the imports 72
times), takes and DataLoader epochs in the worker itself; time to first batch starts a
fresh interpreter per measurement.

Workloads (issue 5): build (1, permutation build on ``small``), take (2, shuffled
``__getitems__`` on ``vectors`` and ``blobs``), loader (3, a DataLoader epoch over
``vectors``: 0 and 2 workers, fork and spawn; and 4, per-worker cost: pickled size, worker
start time, worker PSS), formats (5, a 1024-row batch in each output format), startup
(4, time to first batch from a fresh interpreter).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# riffledb is the tree under test (python/ with the extension `make build` wrote), as for
# the worker processes (run.env()): data generation imports it in this process.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "python"))

import data  # noqa: E402
from common import (  # noqa: E402
    HERE,
    LANCEDB_MEMORY_LIMIT,
    LANCEDB_MEMORY_VAR,
    REPO,
    RESULTS,
    SCALES,
    SEED,
    dumps,
    git_revision,
    machine,
)
from systems import NAMES  # noqa: E402

WORKLOADS = ("build", "take", "formats", "loader", "startup")
VARIANTS = ("random", "hash", "filter")
PACKAGES = ("pyarrow", "numpy", "lancedb", "datasets", "torch", "matplotlib", "pandas")
# Systems that always run every timed repeat; the peers may stop early under a time
# budget (CONFIG["peer_budget"]).
ALWAYS = ("riffledb", "numpy")
LOADER = ((0, None), (2, "fork"), (2, "spawn"))

CONFIG = {
    "full": {
        "take_batches": (1, 64, 256, 1024),
        "take_rows": {"vectors": 32768, "blobs": 4096},
        "max_calls": 500,
        "min_calls": 5,
        "format_calls": 10,
        "loader": LOADER,
        # Warm-up of a DataLoader cell: the table's files are read once (page cache),
        # then this many batches of one epoch per configuration (code paths, workers).
        "warmup_batches": 32,
        "warmup_spawn": True,
        "warmup_startup": True,
        # Seconds of timed measurement per cell after which a peer (LanceDB, HF datasets)
        # stops repeating: it runs at least peer_min_repeats timed repeats, then another
        # only while the repeats so far plus its last one stay within the budget. At
        # QUICK rates, an HF datasets epoch over the 800k-row split takes ~150 s
        # (0 workers), a LanceDB one ~30 s; riffledb and numpy always run every repeat.
        "peer_budget": 180.0,
        "peer_min_repeats": 2,
    },
    "quick": {
        "take_batches": (1, 64, 256, 1024),
        "take_rows": {"vectors": 2048, "blobs": 256},
        "max_calls": 40,
        "min_calls": 3,
        "format_calls": 2,
        "loader": LOADER,
        "warmup_batches": 32,
        # Spawn workers start a fresh interpreter every epoch, so a spawn warm-up warms
        # nothing the fork warm-up has not (the data, the imported files) and costs
        # ~4-8 s a system; likewise the servers' own start is the warm-up of the
        # time-to-first-batch interpreters (same imports, same files, same open).
        "warmup_spawn": False,
        "warmup_startup": False,
        "peer_budget": None,
        "peer_min_repeats": 2,
    },
}
# blobs: "views" is riffledb's take with binary views (other systems: their "arrow"
# batch again, for the row beside it); "+read" also reads one byte of every 4 KiB page
# of every image taken (common.read_blob_pages), the same work for every system.
TAKE_FORMATS = {
    "vectors": ("arrow", "torch"),
    "blobs": ("arrow", "views", "arrow+read", "views+read"),
}
# Workload 5: one 1024-row batch of vectors in each output format.
OUTPUT_FORMATS = ("python", "numpy", "pandas", "arrow", "torch")
FORMAT_BATCH = 1024


def log(*args) -> None:
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "python"), str(HERE)] + [p for p in [e.get("PYTHONPATH")] if p]
    )
    e.setdefault("TOKENIZERS_PARALLELISM", "false")
    e.setdefault(LANCEDB_MEMORY_VAR, str(LANCEDB_MEMORY_LIMIT))
    e["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    return e


def rotate(items, r):
    items = list(items)
    k = r % len(items)
    return items[k:] + items[:k]


def run_child(args: list[str], timeout: float = 1800) -> tuple[dict, float]:
    """Runs worker.py in a fresh interpreter; returns its RESULT and the wall time from
    start to the RESULT line."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "worker.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    result, wall = None, None
    for line in proc.stdout:
        if line.startswith("RESULT "):
            wall = time.perf_counter() - t0
            result = json.loads(line[7:])
    _, err = proc.communicate(timeout=timeout)
    if result is None:
        result = {"error": f"exit {proc.returncode}: {err.strip()[-400:]}"}
    return result, wall


class Server:
    """A ``worker.py serve`` process for one system. Started without waiting, so that
    the systems import in parallel; :meth:`wait_ready` waits for the ready line."""

    def __init__(self, system: str, scale: str):
        self.system = system
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "worker.py"),
                "serve",
                "--system",
                system,
                "--scale",
                scale,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env(),
        )

    def wait_ready(self) -> None:
        if not self.proc.stdout.readline():
            raise RuntimeError(f"{self.system} worker did not start")

    def send(self, cmd: str, **kwargs) -> None:
        self.proc.stdin.write(dumps({"cmd": cmd, **kwargs}) + "\n")
        self.proc.stdin.flush()

    def recv(self):
        line = self.proc.stdout.readline()
        if not line:
            return {"error": "worker exited"}
        return json.loads(line)

    def call(self, cmd: str, **kwargs):
        self.send(cmd, **kwargs)
        return self.recv()

    def close(self) -> None:
        try:
            self.proc.stdin.write(dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


class Budget:
    """Which timed repeats a peer still runs (CONFIG["peer_budget"])."""

    def __init__(self, cfg: dict):
        self.budget = cfg["peer_budget"]
        self.min_repeats = cfg["peer_min_repeats"]
        self.spent: dict = {}
        self.skipped: dict = {}

    def allows(self, cell: str, system: str) -> bool:
        if self.budget is None or system in ALWAYS:
            return True
        runs = self.spent.get((cell, system), [])
        if len(runs) < self.min_repeats or sum(runs) + runs[-1] <= self.budget:
            return True
        self.skipped[f"{cell} {system}"] = self.skipped.get(f"{cell} {system}", 0) + 1
        return False

    def add(self, cell: str, system: str, seconds: float) -> None:
        self.spent.setdefault((cell, system), []).append(seconds)


def versions() -> dict:
    out = {"python": sys.version.split()[0], "riffledb": f"0.1.0 (git {git_revision()})"}
    for p in PACKAGES:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def timed_call(server: Server, cmd: str, **kwargs) -> tuple[dict, float]:
    t0 = time.perf_counter()
    res = server.call(cmd, **kwargs)
    return res, time.perf_counter() - t0


def bench_build(servers, repeats, cfg, budget) -> dict:
    """Every variant for every system in every round; each build in a child forked from
    the system's server (worker.Server.build): a fresh process per measurement."""
    out: dict = {}
    for r in range(repeats + 1):
        for system in rotate(servers, r):
            for variant in VARIANTS:
                if r and not budget.allows(f"build/{variant}", system):
                    continue
                res, wall = timed_call(
                    servers[system], "build", variant=variant, seed=SEED
                )
                res = res.get("ok", res)
                if r == 0:  # warm-up
                    continue
                budget.add(f"build/{variant}", system, wall)
                out.setdefault(variant, {}).setdefault(system, []).append(res)
        log(f"build round {r}/{repeats}")
    return out


def bench_take(servers, lengths, repeats, cfg, budget) -> dict:
    out: dict = {}
    configs = [
        (table, fmt, bs)
        for table in ("vectors", "blobs")
        for fmt in TAKE_FORMATS[table]
        for bs in cfg["take_batches"]
    ]
    for r in range(repeats + 1):
        for table, fmt, bs in configs:
            n = min(lengths[s][table] for s in servers)
            calls = max(
                cfg["min_calls"], min(cfg["max_calls"], cfg["take_rows"][table] // bs)
            )
            key = f"{table}/{fmt}/{bs}"
            for system in rotate(servers, r):
                if r and not budget.allows(f"take/{key}", system):
                    continue
                res, wall = timed_call(
                    servers[system],
                    "take",
                    table=table,
                    format=fmt,
                    batch=bs,
                    calls=calls,
                    n=n,
                    seed=SEED + 1000 * r + bs,
                )
                if r == 0:
                    continue
                budget.add(f"take/{key}", system, wall)
                out.setdefault(key, {}).setdefault(system, []).append(res.get("ok", res))
        log(f"take round {r}/{repeats}")
    return out


def bench_formats(servers, lengths, repeats, cfg, budget) -> dict:
    """Workload 5: ``format_calls`` takes of 1024 random rows of vectors per round, in
    each output format; a figure is the mean time of one batch in a round."""
    out: dict = {}
    n = min(lengths[s]["vectors"] for s in servers)
    for r in range(repeats + 1):
        for fmt in OUTPUT_FORMATS:
            for system in rotate(servers, r):
                if r and not budget.allows(f"formats/{fmt}", system):
                    continue
                res, wall = timed_call(
                    servers[system],
                    "take",
                    table="vectors",
                    format=fmt,
                    batch=FORMAT_BATCH,
                    calls=cfg["format_calls"],
                    n=n,
                    seed=SEED + 7000 + r,
                )
                if r == 0:
                    continue
                budget.add(f"formats/{fmt}", system, wall)
                out.setdefault(fmt, {}).setdefault(system, []).append(res.get("ok", res))
        log(f"formats round {r}/{repeats}")
    return out


def loader_key(workers: int, context: str | None) -> str:
    return f"{workers} workers" + (f" ({context})" if context else "")


def bench_loader(servers, repeats, cfg, budget) -> dict:
    """Round 0 is the warm-up: each system's vectors files are read once, then
    ``warmup_batches`` batches of an epoch per configuration. Timed rounds are whole
    epochs, checked exactly-once."""
    out: dict = {}
    for system in servers:
        res = servers[system].call("prewarm", table="vectors")
        if "error" in res:
            log(f"{system}: prewarm failed: {res['error']}")
    for r in range(repeats + 1):
        for workers, context in cfg["loader"]:
            if r == 0 and context == "spawn" and not cfg["warmup_spawn"]:
                continue
            key = loader_key(workers, context)
            for system in rotate(servers, r):
                if r and not budget.allows(f"loader/{key}", system):
                    continue
                kwargs = {"max_batches": cfg["warmup_batches"]} if r == 0 else {}
                res, wall = timed_call(
                    servers[system],
                    "epoch",
                    workers=workers,
                    context=context,
                    seed=SEED + r,
                    **kwargs,
                )
                if r == 0:
                    if "error" in res:
                        log(f"{system} {key} warm-up: {res['error']}")
                    continue
                budget.add(f"loader/{key}", system, wall)
                out.setdefault(key, {}).setdefault(system, []).append(res.get("ok", res))
        log(f"loader round {r}/{repeats}")
    return out


def bench_startup(systems, scale, repeats, cfg) -> dict:
    out: dict = {}
    first = 0 if cfg["warmup_startup"] else 1
    for r in range(first, repeats + 1):
        for system in rotate(systems, r):
            res, wall = run_child(["ttfb", "--system", system, "--scale", scale])
            if r == 0:
                continue
            if wall is not None:
                res["wall"] = wall
            out.setdefault(system, []).append(res)
        log(f"startup round {r}/{repeats}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="riffledb end-to-end benchmarks")
    parser.add_argument("--quick", action="store_true", help="reduced data, < 5 minutes")
    parser.add_argument("--only", default="", help=f"comma list of {','.join(WORKLOADS)}")
    parser.add_argument("--systems", default=",".join(NAMES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    scale = "quick" if args.quick else "full"
    cfg = CONFIG[scale]
    systems = [s for s in args.systems.split(",") if s]
    workloads = [w for w in (args.only.split(",") if args.only else WORKLOADS) if w]
    for w in workloads:
        if w not in WORKLOADS:
            parser.error(f"unknown workload {w!r}")
    if args.repeats < 5:
        log("note: fewer than 5 timed repeats")

    t_start = time.perf_counter()
    phases: dict[str, float] = {}

    def phase(name: str, t0: float) -> None:
        phases[name] = time.perf_counter() - t0
        log(f"{name}: {phases[name]:.1f}s")

    log(f"scale {scale}: {SCALES[scale]}")
    t0 = time.perf_counter()
    manifest = data.ensure(scale, [s for s in systems if s != "numpy"], log=log)
    phase("data", t0)

    results: dict = {
        "mode": scale,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "rows": SCALES[scale],
        "repeats": args.repeats,
        "data_hash": manifest["npy_hash"],
        "config": {k: v for k, v in cfg.items()},
        "env": {LANCEDB_MEMORY_VAR: env()[LANCEDB_MEMORY_VAR]},
        "systems": systems,
        "workloads": {},
        "phases": phases,
    }
    results["versions"] = versions()
    budget = Budget(cfg)

    servers = {}
    if {"build", "take", "formats", "loader"} & set(workloads):
        t0 = time.perf_counter()
        servers = {system: Server(system, scale) for system in systems}
        for server in servers.values():
            server.wait_ready()
        phase("servers", t0)
    if "build" in workloads:
        t0 = time.perf_counter()
        results["workloads"]["build"] = bench_build(servers, args.repeats, cfg, budget)
        phase("build", t0)
    if {"take", "formats", "loader"} & set(workloads):
        t0 = time.perf_counter()
        lengths = {}
        for server in servers.values():  # not measured: the systems open in parallel
            server.send("open", tables=["vectors", "blobs"])
        for system, server in servers.items():
            reply = server.recv()
            if "error" in reply:
                raise RuntimeError(f"{system}: {reply['error']}")
            lengths[system] = reply["ok"]["lengths"]
        results["split_lengths"] = lengths
        results["torch_batch"] = {
            s: servers[s].call("describe_torch", table="vectors").get("ok")
            for s in servers
        }
        phase("open", t0)
        if "take" in workloads:
            t0 = time.perf_counter()
            results["workloads"]["take"] = bench_take(
                servers, lengths, args.repeats, cfg, budget
            )
            phase("take", t0)
        if "formats" in workloads:
            t0 = time.perf_counter()
            results["workloads"]["formats"] = bench_formats(
                servers, lengths, args.repeats, cfg, budget
            )
            phase("formats", t0)
        if "loader" in workloads:
            t0 = time.perf_counter()
            results["workloads"]["loader"] = bench_loader(
                servers, args.repeats, cfg, budget
            )
            results["workloads"]["pickle"] = {
                s: servers[s].call("pickles").get("ok") for s in servers
            }
            phase("loader", t0)
    for server in servers.values():
        server.close()
    if "startup" in workloads:
        t0 = time.perf_counter()
        results["workloads"]["startup"] = bench_startup(systems, scale, args.repeats, cfg)
        phase("startup", t0)
    results["budget_skipped"] = budget.skipped
    results["seconds"] = time.perf_counter() - t_start

    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "latest-quick.json" if args.quick else "latest.json"
    path = RESULTS / name
    if args.only or args.systems != ",".join(NAMES):
        path = RESULTS / ("partial-" + name)  # never overwrite a whole run with a part
    path.write_text(json.dumps(results, indent=1, default=str))
    log(f"wrote {path.relative_to(REPO)} after {results['seconds']:.0f}s")
    if not args.no_report:
        import report

        report.write(path)


if __name__ == "__main__":
    main()
