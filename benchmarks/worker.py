"""One system's side of the benchmark, run as a subprocess of run.py.

Modes:
  serve --system S --scale X --seed N   a long-lived worker: reads one JSON command per
      line on stdin, answers one JSON line on the protocol fd (stdout at start; library
      output is sent to stderr). run.py interleaves the systems' servers. It imports the
      system's adapter module at start and opens nothing until asked, so that
      ``build`` can fork a clean child per measurement (see :meth:`Server.build`).
  ttfb --system S --scale X --seed N    from a fresh interpreter to the first DataLoader
      batch (build or open the train split included); prints a RESULT JSON line.
  build --system S --scale X --variant V --seed N   one permutation build in this fresh
      process (kept for manual use; run.py forks from the server instead).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import pickle
import select
import shutil
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

T_START = time.perf_counter()

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    SEED,
    data_dir,
    describe,
    dumps,
    identity,
    mark_worker_start,
    proc_pss,
    proc_status,
    reset_peak_rss,
)

BATCH = 256
# Seconds the DataLoader waits for a batch from a worker before it raises: a worker that
# deadlocks after fork (LanceDB's fork support is "experimental" and hangs now and then)
# becomes a failed epoch in the report instead of a hung run. A fork worker is up in
# ~0.1 s and a batch takes milliseconds (~0.1 s for HF at the full scale); a spawn
# worker's first batch waits for a fresh interpreter (up to ~20 s on a busy machine).
LOADER_TIMEOUT = {"fork": 10, "spawn": 120, "forkserver": 120}

# torch.from_numpy on read-only memory maps / Arrow buffers, fork() of a threaded
# process, and LanceDB's "fork support is experimental": expected here, and they would
# flood the log.
warnings.filterwarnings("ignore", message=".*non-writable.*")
warnings.filterwarnings("ignore", message=".*multi-threaded.*")
warnings.filterwarnings("ignore", message=".*fork support is experimental.*")


def adapter_module(system: str):
    return importlib.import_module(f"systems.{system}")


def adapter(system: str, scale: str):
    return adapter_module(system).Adapter(data_dir(scale))


# -- build -------------------------------------------------------------------------------
def run_build(system: str, scale: str, variant: str, seed: int) -> dict:
    """One permutation build in this process: wall time and peak memory over the RSS
    before the build (VmHWM after resetting it through /proc/self/clear_refs)."""
    a = adapter(system, scale)
    reset_peak_rss()
    before = proc_status()["VmRSS"]
    t0 = time.perf_counter()
    rows = a.build(variant, seed)
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
        self.system, self.scale, self.seed = system, scale, seed
        adapter_module(system)  # imported once; adapters are made on demand
        self._a = None
        self.lengths: dict[str, int] = {}
        self.expected = None

    @property
    def a(self):
        if self._a is None:
            self._a = adapter(self.system, self.scale)
        return self._a

    def build(self, variant: str, seed: int, timeout: float = 1800) -> dict:
        """One permutation build in a child forked from this server.

        The server has imported the system's modules and opened nothing, so the child
        starts in the state of a fresh process after its imports (same allocator state,
        no tables open) without paying for the interpreter and the imports again. The
        child connects, resets its peak RSS, builds and reports, then exits.
        """
        if self._a is not None:
            raise RuntimeError("build after open: the forked child would not be clean")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                os.close(r)
                try:
                    result = run_build(self.system, self.scale, variant, seed)
                except Exception as e:
                    import traceback

                    traceback.print_exc()
                    result = {"error": f"{type(e).__name__}: {e}"[:500]}
                data = dumps(result).encode()
                while data:
                    data = data[os.write(w, data) :]
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        chunks, deadline = [], time.monotonic() + timeout
        with os.fdopen(r, "rb") as f:
            while True:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([f], [], [], max(0.0, left))
                if not ready:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    return {"error": f"build timed out after {timeout:.0f}s"}
                chunk = os.read(f.fileno(), 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
        if not chunks:
            return {"error": f"build child died (wait status {status})"}
        return json.loads(b"".join(chunks))

    def open(self, tables: list[str]) -> dict:
        for t in tables:
            self.lengths[t] = self.a.open_train(t, self.seed)
        return {"lengths": self.lengths}

    def versions(self) -> dict:
        return self.a.versions()

    def describe_torch(self, table: str) -> dict:
        """The keys, dtypes and shapes of one 4-row torch-format take (fairness check:
        every system must produce the same dict of batch-first tensors)."""
        out = describe(self.a.take(table, [0, 1, 2, 3], "torch"))
        out["via"] = self.a.torch_via()
        return out

    def prewarm(self, table: str) -> dict:
        """Reads the system's files of ``table`` once (page cache), so that the first
        timed epoch does not pay for the disk."""
        t0, total = time.perf_counter(), 0
        for path in self.a.files(table):
            with open(path, "rb", buffering=0) as f:
                while chunk := f.read(1 << 24):
                    total += len(chunk)
        return {"bytes": total, "seconds": time.perf_counter() - t0}

    def take(self, table: str, format: str, batch: int, calls: int, n: int, seed: int):
        import numpy as np
        from common import read_blob_pages

        # "<format>+read": the take, then one byte per 4 KiB page of every image read
        # (blobs), inside the timed call. "views": riffledb's binary views; a system
        # without them takes its "arrow" batch (HF datasets' is already zero-copy).
        read = format.endswith("+read")
        format = format.removesuffix("+read")
        if format == "views" and not self.a.binary_views:
            format = "arrow"
        rng = np.random.default_rng(seed)
        offsets = [rng.integers(0, n, batch).tolist() for _ in range(calls)]
        latencies = []
        for o in offsets:
            t0 = time.perf_counter()
            out = self.a.take(table, o, format)
            if read:
                read_blob_pages(out)
            latencies.append(time.perf_counter() - t0)
            del out
        return {
            "latencies": latencies,
            "rows": batch * calls,
            "seconds": sum(latencies),
            "format": format,
        }

    def epoch(
        self, workers: int, context: str | None, seed: int, max_batches: int | None = None
    ) -> dict:
        """One DataLoader epoch over the train split of ``vectors`` (batch 256, shuffled
        by the sampler), checked to return every row exactly once; the time runs to the
        end of the ``for`` loop (so it includes shutting the workers down, as a training
        loop sees it). ``max_batches``: stop early (warm-up only; no check).

        With workers: each worker's start time (from ``iter(loader)`` to the worker's
        ``worker_init_fn``, which torch calls once the dataset is unpickled and before the
        first fetch) and its memory, sampled from /proc every 32 batches and at the end.
        """
        import numpy as np
        import torch

        if self.expected is None:
            self.expected = self.a.split_ids("vectors")
        ds = self.a.loader_dataset()
        generator = torch.Generator()
        generator.manual_seed(seed)
        kwargs = {}
        marks = None
        if workers:
            marks = tempfile.mkdtemp(prefix="riffledb-bench-")
            kwargs["multiprocessing_context"] = context
            kwargs["timeout"] = LOADER_TIMEOUT.get(context, 120)
            kwargs["worker_init_fn"] = functools.partial(mark_worker_start, marks)
        loader = torch.utils.data.DataLoader(
            ds,
            batch_size=BATCH,
            shuffle=True,
            num_workers=workers,
            collate_fn=identity,
            generator=generator,
            **kwargs,
        )
        n_batches = len(loader) if max_batches is None else min(len(loader), max_batches)
        ids = []
        worker_mem: dict[int, dict] = {}
        t0 = time.perf_counter()
        t_first = None
        iterator = iter(loader)
        try:
            for i, batch in enumerate(iterator):
                if t_first is None:
                    t_first = time.perf_counter()
                ids.append(np.asarray(batch["id"]))
                last = i == n_batches - 1
                if workers and (i % 32 == 0 or last):
                    for w in getattr(iterator, "_workers", []):
                        status = proc_status(w.pid)
                        if not status:
                            continue
                        status.update(proc_pss(w.pid))
                        seen = worker_mem.setdefault(w.pid, {})
                        for k, v in status.items():
                            seen[k] = max(seen.get(k, 0), v)
                if last and max_batches is not None:
                    break
        except Exception:
            # A hung or dead worker: kill the others now (torch's shutdown would wait
            # 5 s for each), then report the error.
            for w in getattr(iterator, "_workers", []):
                if w.is_alive():
                    w.kill()
            shutil.rmtree(marks or "", ignore_errors=True)
            raise
        seconds = time.perf_counter() - t0
        del iterator  # shuts the workers down after an early stop
        starts = []
        if marks:
            for name in os.listdir(marks):
                with open(os.path.join(marks, name)) as f:
                    starts.append(float(f.read()) - t0)
                os.unlink(os.path.join(marks, name))
            os.rmdir(marks)
        got = np.sort(np.concatenate(ids))
        out = {
            "seconds": seconds,
            "rows": int(len(got)),
            "first_batch": t_first - t0,
            "worker_start": sorted(starts),
            "workers": list(worker_mem.values()),
        }
        if max_batches is None:
            out["exactly_once"] = bool(
                len(got) == len(self.expected) and np.array_equal(got, self.expected)
            )
        return out

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
        if args.mode == "build":
            result = run_build(args.system, args.scale, args.variant, args.seed)
        else:
            result = run_ttfb(args)
    except Exception as e:
        import traceback

        traceback.print_exc()
        result = {"error": f"{type(e).__name__}: {e}"[:500]}
    print("RESULT " + dumps(result), flush=True)


if __name__ == "__main__":
    main()
