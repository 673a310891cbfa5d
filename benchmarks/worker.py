"""One system's side of the benchmark, run as a subprocess of run.py.

Modes:
  build --system S --scale X --variant V --seed N   one permutation build in this fresh
      process; prints {"seconds", "rows", "peak_delta", "peak_rss"}.
  ttfb --system S --scale X --seed N                from a fresh interpreter to the first
      DataLoader batch (build or open the train split included); prints a JSON line.
  serve --system S --scale X --seed N               a long-lived worker: reads one JSON
      command per line on stdin, answers one JSON line on the protocol fd (stdout at start;
      library output is sent to stderr). run.py interleaves the systems' servers.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pickle
import sys
import time
import warnings
from pathlib import Path

T_START = time.perf_counter()

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SEED, data_dir, dumps, identity, proc_pss, proc_status, reset_peak_rss  # noqa: E402

BATCH = 256

# torch.from_numpy on read-only memory maps / Arrow buffers, and fork() of a threaded
# process: expected here, and they would flood the log.
warnings.filterwarnings("ignore", message=".*non-writable.*")
warnings.filterwarnings("ignore", message=".*multi-threaded.*", category=DeprecationWarning)


def adapter(system: str, scale: str):
    module = importlib.import_module(f"systems.{system}")
    return module.Adapter(data_dir(scale))


# -- build -------------------------------------------------------------------------------
def run_build(args) -> dict:
    a = adapter(args.system, args.scale)
    reset_peak_rss()
    before = proc_status()["VmRSS"]
    t0 = time.perf_counter()
    rows = a.build(args.variant, args.seed)
    seconds = time.perf_counter() - t0
    status = proc_status()
    if rows is None:
        return {"na": True}
    return {
        "seconds": seconds,
        "rows": rows,
        "peak_delta": status["VmHWM"] - before,
        "peak_rss": status["VmHWM"],
    }


# -- time to first batch -----------------------------------------------------------------
def run_ttfb(args) -> dict:
    import torch

    t_import = time.perf_counter()
    a = adapter(args.system, args.scale)
    a.open_train("vectors", args.seed)
    t_open = time.perf_counter()
    loader = torch.utils.data.DataLoader(
        a.loader_dataset(), batch_size=BATCH, shuffle=True, collate_fn=identity
    )
    batch = next(iter(loader))
    assert len(batch["id"]) == BATCH
    t_first = time.perf_counter()
    return {
        "import": t_import - T_START,
        "open": t_open - t_import,
        "first_batch": t_first - t_open,
        "in_process": t_first - T_START,
        "rss": proc_status()["VmRSS"],
    }


# -- serve -------------------------------------------------------------------------------
class Server:
    def __init__(self, system: str, scale: str, seed: int):
        self.a = adapter(system, scale)
        self.seed = seed
        self.lengths: dict[str, int] = {}
        self.expected = None

    def open(self, tables: list[str]) -> dict:
        for t in tables:
            self.lengths[t] = self.a.open_train(t, self.seed)
        return {"lengths": self.lengths}

    def versions(self) -> dict:
        return self.a.versions()

    def take(self, table: str, format: str, batch: int, calls: int, n: int, seed: int):
        import numpy as np

        rng = np.random.default_rng(seed)
        offsets = [rng.integers(0, n, batch).tolist() for _ in range(calls)]
        latencies = []
        for o in offsets:
            t0 = time.perf_counter()
            out = self.a.take(table, o, format)
            latencies.append(time.perf_counter() - t0)
            del out
        return {"latencies": latencies, "rows": batch * calls, "seconds": sum(latencies)}

    def epoch(self, workers: int, context: str | None, seed: int) -> dict:
        import numpy as np
        import torch

        if self.expected is None:
            self.expected = self.a.split_ids("vectors")
        ds = self.a.loader_dataset()
        generator = torch.Generator()
        generator.manual_seed(seed)
        kwargs = {}
        if workers:
            kwargs["multiprocessing_context"] = context
        loader = torch.utils.data.DataLoader(
            ds,
            batch_size=BATCH,
            shuffle=True,
            num_workers=workers,
            collate_fn=identity,
            generator=generator,
            **kwargs,
        )
        n_batches = len(loader)
        ids = []
        worker_mem: dict[int, dict] = {}
        t0 = time.perf_counter()
        iterator = iter(loader)
        for i, batch in enumerate(iterator):
            ids.append(np.asarray(batch["id"]))
            if workers and (i % 32 == 0 or i == n_batches - 1):
                for w in getattr(iterator, "_workers", []):
                    status = proc_status(w.pid)
                    if not status:
                        continue
                    status["Pss"] = proc_pss(w.pid) or 0
                    seen = worker_mem.setdefault(w.pid, {})
                    for k, v in status.items():
                        seen[k] = max(seen.get(k, 0), v)
        seconds = time.perf_counter() - t0
        got = np.sort(np.concatenate(ids))
        exact = bool(len(got) == len(self.expected) and np.array_equal(got, self.expected))
        return {
            "seconds": seconds,
            "rows": int(len(got)),
            "exactly_once": exact,
            "workers": list(worker_mem.values()),
        }

    def pickles(self) -> dict:
        out = {}
        for name, obj in self.a.pickle_targets().items():
            try:
                out[name] = {"bytes": len(pickle.dumps(obj))}
            except Exception as e:  # reported, not fatal
                out[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
        return out

    def rss(self) -> dict:
        return proc_status()


def serve(args) -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything libraries print goes to stderr
    sys.stdout = sys.stderr
    server = Server(args.system, args.scale, args.seed)
    proto.write(dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        cmd = request.pop("cmd")
        if cmd == "quit":
            break
        try:
            reply = {"ok": getattr(server, cmd)(**request)}
        except Exception as e:
            import traceback

            traceback.print_exc()
            reply = {"error": f"{type(e).__name__}: {e}"[:500]}
        proto.write(dumps(reply) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["build", "ttfb", "serve"])
    parser.add_argument("--system", required=True)
    parser.add_argument("--scale", default="full")
    parser.add_argument("--variant", default="random")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args)
        return
    try:
        result = run_build(args) if args.mode == "build" else run_ttfb(args)
    except Exception as e:
        import traceback

        traceback.print_exc()
        result = {"error": f"{type(e).__name__}: {e}"[:500]}
    print("RESULT " + dumps(result), flush=True)


if __name__ == "__main__":
    main()
