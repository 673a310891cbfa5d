"""End-to-end benchmark of riffledb against LanceDB, Hugging Face datasets and numpy.

``make bench`` (or ``.venv-bench/bin/python benchmarks/run.py``) generates the data once
(``data.py``), then runs every workload for every system in the same run, interleaved
(each round visits the systems in a rotated order), one warm-up round and ``--repeats``
timed rounds, and writes ``benchmarks/results/latest.json`` (``latest-quick.json`` with
``--quick``) and the report under ``docs/benchmarks/`` (``report.py``).

Each system runs in its own processes: permutation builds in a fresh process per
measurement (for its peak memory), takes and DataLoader epochs in one long-lived worker per
system (``worker.py serve``), time to first batch in a fresh interpreter per measurement.

Workloads: build (permutation build on ``small``), take (shuffled ``__getitems__`` on
``vectors`` and ``blobs``), loader (a DataLoader epoch over ``vectors``, 0 and 2 workers,
fork and spawn), startup (time to first batch, pickled size, worker memory).
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

import data  # noqa: E402
from common import HERE, REPO, RESULTS, SCALES, SEED, dumps, git_revision, machine  # noqa: E402
from systems import NAMES  # noqa: E402

WORKLOADS = ("build", "take", "loader", "startup")
VARIANTS = ("random", "hash", "filter")
PACKAGES = ("pyarrow", "numpy", "lancedb", "datasets", "torch", "matplotlib", "pandas")

CONFIG = {
    "full": {
        "take_batches": (1, 64, 256, 1024),
        "take_rows": {"vectors": 32768, "blobs": 4096},
        "max_calls": 500,
        "loader": ((0, None), (2, "fork"), (2, "spawn")),
        "warmup_subprocess": True,
    },
    "quick": {
        "take_batches": (1, 64, 1024),
        "take_rows": {"vectors": 4096, "blobs": 512},
        "max_calls": 60,
        # spawn workers re-import torch and the system in every epoch (~20 s an epoch on
        # a loaded 2-core machine): the full run only.
        "loader": ((0, None), (2, "fork")),
        "warmup_subprocess": False,
    },
}
TAKE_FORMATS = {"vectors": ("arrow", "torch"), "blobs": ("arrow",)}


def log(*args) -> None:
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "python"), str(HERE)] + [p for p in [e.get("PYTHONPATH")] if p]
    )
    e.setdefault("TOKENIZERS_PARALLELISM", "false")
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
    """A ``worker.py serve`` process for one system."""

    def __init__(self, system: str, scale: str):
        self.system = system
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "worker.py"), "serve", "--system", system,
             "--scale", scale],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env(),
        )
        ready = self.proc.stdout.readline()
        if not ready:
            raise RuntimeError(f"{system} worker did not start")

    def call(self, cmd: str, **kwargs):
        self.proc.stdin.write(dumps({"cmd": cmd, **kwargs}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            return {"error": "worker exited"}
        return json.loads(line)

    def close(self) -> None:
        try:
            self.proc.stdin.write(dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def versions(servers: dict) -> dict:
    out = {"python": sys.version.split()[0], "riffledb": f"0.1.0 (git {git_revision()})"}
    for p in PACKAGES:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def bench_build(systems, scale, repeats, cfg) -> dict:
    out: dict = {}
    for r in range(repeats + 1):
        for system in rotate(systems, r):
            for variant in VARIANTS:
                res, _ = run_child(["build", "--system", system, "--scale", scale,
                                    "--variant", variant])
                if r == 0:  # warm-up
                    continue
                out.setdefault(variant, {}).setdefault(system, []).append(res)
        log(f"build round {r}/{repeats}")
    return out


def bench_take(servers, lengths, repeats, cfg) -> dict:
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
            calls = max(5, min(cfg["max_calls"], cfg["take_rows"][table] // bs))
            for system in rotate(servers, r):
                res = servers[system].call(
                    "take", table=table, format=fmt, batch=bs, calls=calls, n=n,
                    seed=SEED + 1000 * r + bs,
                )
                if r == 0:
                    continue
                key = f"{table}/{fmt}/{bs}"
                out.setdefault(key, {}).setdefault(system, []).append(
                    res.get("ok", res)
                )
        log(f"take round {r}/{repeats}")
    return out


def bench_loader(servers, repeats, cfg) -> dict:
    out: dict = {}
    for r in range(repeats + 1):
        for workers, context in cfg["loader"]:
            if r == 0 and context == "spawn" and not cfg["warmup_subprocess"]:
                continue
            key = f"{workers} workers" + (f" ({context})" if context else "")
            for system in rotate(servers, r):
                res = servers[system].call("epoch", workers=workers, context=context,
                                           seed=SEED + r)
                if r == 0:
                    continue
                out.setdefault(key, {}).setdefault(system, []).append(res.get("ok", res))
        log(f"loader round {r}/{repeats}")
    return out


def bench_startup(systems, scale, repeats, cfg) -> dict:
    out: dict = {}
    first = 0 if cfg["warmup_subprocess"] else 1
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
    log(f"scale {scale}: {SCALES[scale]}")
    manifest = data.ensure(scale, [s for s in systems if s != "numpy"], log=log)

    results: dict = {
        "mode": scale,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "rows": SCALES[scale],
        "repeats": args.repeats,
        "data_hash": manifest["npy_hash"],
        "config": {k: v for k, v in cfg.items()},
        "systems": systems,
        "workloads": {},
    }
    results["versions"] = versions({})

    if "build" in workloads:
        results["workloads"]["build"] = bench_build(systems, scale, args.repeats, cfg)
    servers = {}
    if "take" in workloads or "loader" in workloads:
        for system in systems:
            servers[system] = Server(system, scale)
        lengths = {}
        for system, server in servers.items():
            reply = server.call("open", tables=["vectors", "blobs"])
            if "error" in reply:
                raise RuntimeError(f"{system}: {reply['error']}")
            lengths[system] = reply["ok"]["lengths"]
        results["split_lengths"] = lengths
        if "take" in workloads:
            results["workloads"]["take"] = bench_take(servers, lengths, args.repeats, cfg)
        if "loader" in workloads:
            results["workloads"]["loader"] = bench_loader(servers, args.repeats, cfg)
            results["workloads"]["pickle"] = {
                s: servers[s].call("pickles").get("ok") for s in servers
            }
        for server in servers.values():
            server.close()
    if "startup" in workloads:
        results["workloads"]["startup"] = bench_startup(systems, scale, args.repeats, cfg)
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
