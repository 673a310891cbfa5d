"""The native prefetching pipeline and the DataLoader hand-off, on one local table.

``make bench-pipeline`` (``PIPE_ROWS=N`` to change N, ``QUICK=1`` for a short run) or::

    PYTHONPATH=python .venv/bin/python benchmarks/pipeline.py [--rows 200000] [--quick]

One table for every cell: ``--rows`` rows (default 200,000; ``--quick``: 20,000) of
``id`` int64 (0..N-1), ``label`` int64 and ``emb`` a fixed-size list of 512 float32
(2 KiB; 2,064 bytes a row), generated from a fixed seed in chunks of 65,536 rows (the
first N rows are the same at any N) into a riffledb table in a temporary directory, and
the same columns into ``.npy`` files beside it (cell D3). The permutation is
``permutation_builder(t).shuffle(seed=SEED).execute()`` read through
``Permutation.from_tables(t, perm).with_format("torch_dict")`` (a dict of batch-first
tensors). Batches of ``--batch`` (256) rows. The table and the ``.npy`` files are read
once before anything is timed (the page cache is warm), and torch runs one thread
(``torch.set_num_threads(1)``). Cells:

- **A, no training step**: (1) ``for b in perm.iter(256)`` in the main thread; (2) the
  native pipeline, ``perm.iter(256, prefetch=8)``; (3) ``DataLoader(perm,
  batch_size=256, num_workers=0, collate_fn=identity)``.
- **B, a 1.5 ms torch step per batch** (``batch["emb"] @ W``, ``W`` 512 x k float32, k
  calibrated once at start so that the step takes ``--step-ms`` on a 256-row batch):
  (1) the step alone over the epoch's batches, all gathered beforehand and held in
  memory (the step-bound rate: loading costs nothing, but each step reads a batch it
  has not seen, as it must with any loader); (0) the step alone repeated on one batch,
  which then stays in the core's cache (for information: faster than any loader can
  feed, since every loader brings a new batch); (2) the native pipeline + the step;
  (3) ``DataLoader(perm,
  batch_size=256, num_workers=2, multiprocessing_context="fork", collate_fn=identity)``
  + the step (workers start inside the timed epoch, as torch's default
  ``persistent_workers=False`` has them).
- **C, beside a pure-Python thread**: a background thread spinning in pure Python
  (integer arithmetic: it holds the GIL as Python code does, giving it up at the
  interpreter's switch interval) while the main thread consumes, no step: (1) the
  native pipeline (``prefetch=8``) with the spinner; (2) the same without it; (3) what
  one writes without the pipeline: a Python thread doing ``perm.__getitems__(offsets)``
  into a ``queue.Queue(8)`` that the main thread consumes, with the spinner; (4) the same
  without it.
- **D, DataLoader with 2 fork workers, shuffle=True**: (1) the ``torch_dict``
  permutation with ``collate_fn=riffledb.util.one_buffer_collate`` (a batch crosses as
  one shared-memory buffer); (2) the same with ``collate_fn=identity`` (torch's
  hand-off, one shared-memory segment per tensor); (3) a numpy memory map of the same
  rows (``np.load(mmap_mode="r")`` of the ``.npy`` files), a map-style dataset whose
  ``__getitems__(indices)`` returns a dict of tensors by fancy indexing, identity
  collate.

Every epoch delivers every ``id`` exactly once or its cell reports FAIL instead of a
figure (B0 and B1 read nothing and are not checked). Cells are interleaved: ``--repeats``
rounds (default 5, ``--quick``: 2), each running one epoch of every cell in a rotated
order. Figures: rows/s median [min–max] over the rounds, ratios of medians against
their targets, and the pipeline iterator's ``stats`` (``io_s`` summed over the read
threads, ``wait_s``, ``convert_s``, ``transform_s``) of one epoch of A2 and B2 (the last
round's). Results: a Markdown table on stdout and
``benchmarks/results/pipeline-<rows>.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import queue
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
# riffledb is the tree under test (python/ with the extension `make build` wrote).
sys.path.insert(1, str(REPO / "python"))

from common import SEED, git_revision, identity, machine  # noqa: E402

DIM = 512
LABELS = 100
CHUNK = 1 << 16
ROW_BYTES = 8 + 8 + 4 * DIM

CELLS = {
    "A1": "plain loop, `perm.iter(256)`",
    "A2": "native pipeline, `perm.iter(256, prefetch=8)`",
    "A3": "DataLoader, 0 workers, identity collate",
    "B0": "the step alone, one batch made beforehand, repeated (cache-hot)",
    "B1": "the step alone, over the epoch's batches made beforehand",
    "B2": "native pipeline + step",
    "B3": "DataLoader, 2 fork workers, identity collate + step",
    "C1": "native pipeline, beside a spinning Python thread",
    "C2": "native pipeline, no spinner",
    "C3": "Python thread `__getitems__` into a Queue, beside a spinning thread",
    "C4": "Python thread `__getitems__` into a Queue, no spinner",
    "D1": "DataLoader, 2 fork workers, shuffle, `one_buffer_collate`",
    "D2": "DataLoader, 2 fork workers, shuffle, identity collate",
    "D3": "numpy memmap dataset, DataLoader, 2 fork workers, shuffle, identity",
}
# (numerator, denominator, target): ratios of median rows/s.
RATIOS = [
    ("A2", "A1", 0.95),
    ("A2", "A3", 1.7),
    ("B2", "B1", 0.95),
    ("B2", "B0", None),
    ("B2", "B3", 2.5),
    ("C1", "C2", 0.5),
    ("C3", "C4", None),
    ("D1", "D3", 1.5),
]
STATS_KEYS = ("io_s", "wait_s", "convert_s", "transform_s")


# -- the data ----------------------------------------------------------------------------


def schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("label", pa.int64(), nullable=False),
            pa.field("emb", pa.list_(pa.float32(), DIM), nullable=False),
        ]
    )


def source_batches(rows: int, npy: dict):
    """The rows, CHUNK at a time (chunk c drawn whole from the seed [SEED, 6, c], then
    cut: the first N rows are the same for any N), also written into the ``.npy``
    memory maps of ``npy`` as they go."""
    for c, start in enumerate(range(0, rows, CHUNK)):
        stop = min(start + CHUNK, rows)
        rng = np.random.default_rng([SEED, 6, c])
        label = rng.integers(0, LABELS, CHUNK, dtype=np.int64)[: stop - start]
        emb = rng.standard_normal((CHUNK, DIM), dtype=np.float32)[: stop - start]
        ids = np.arange(start, stop, dtype=np.int64)
        npy["id"][start:stop] = ids
        npy["label"][start:stop] = label
        npy["emb"][start:stop] = emb
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(ids),
                pa.array(label),
                pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), DIM),
            ],
            schema=schema(),
        )


def make_data(root: Path, rows: int):
    """The riffledb table and the ``.npy`` files of the same rows under ``root``."""
    import riffledb

    shapes = {"id": (rows,), "label": (rows,), "emb": (rows, DIM)}
    dtypes = {"id": np.int64, "label": np.int64, "emb": np.float32}
    npy = {
        name: np.lib.format.open_memmap(
            root / f"{name}.npy", "w+", dtypes[name], shapes[name]
        )
        for name in shapes
    }
    reader = pa.RecordBatchReader.from_batches(schema(), source_batches(rows, npy))
    table = riffledb.connect(str(root / "db")).create_table("rows", reader)
    for array in npy.values():
        array.flush()
    del npy
    return table


class NumpyRows:
    """Map-style dataset over the ``.npy`` memory maps: ``__getitems__(indices)`` is a
    dict of tensors gathered by fancy indexing (module level: what a worker runs)."""

    def __init__(self, root: str):
        self.columns = {
            name: np.load(Path(root) / f"{name}.npy", mmap_mode="r")
            for name in ("id", "label", "emb")
        }
        self.rows = len(self.columns["id"])

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, index: int):
        return self.__getitems__([index])

    def __getitems__(self, indices):
        import torch

        index = np.asarray(indices, dtype=np.int64)
        return {
            name: torch.from_numpy(column[index]) for name, column in self.columns.items()
        }


# -- the training step -------------------------------------------------------------------


class Step:
    """The training step: ``batch["emb"] @ W`` (``W`` 512 x k float32), summed; a
    torch op, so it runs without the GIL."""

    def __init__(self, k: int):
        import torch

        self.k = k
        self.w = torch.randn(DIM, k, generator=torch.Generator().manual_seed(SEED))

    def __call__(self, batch) -> float:
        return float((batch["emb"] @ self.w).sum())


def time_step(step: Step, batch, repeats: int = 30) -> float:
    """The fastest of ``repeats`` steps, in seconds (the machine is shared)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        step(batch)
        best = min(best, time.perf_counter() - t0)
    return best


def calibrate(batch, target_s: float) -> tuple[Step, float]:
    """The step whose matmul takes ``target_s`` on ``batch`` (k scaled from a first
    guess, a few times), and the time measured."""
    k = 256
    for _ in range(4):
        seconds = time_step(Step(k), batch)
        k = max(8, round(k * target_s / seconds))
    step = Step(k)
    return step, time_step(step, batch)


# -- one epoch of each cell --------------------------------------------------------------


class Ids:
    """The ids an epoch delivered, copied out of each batch (nothing holds on to the
    batches themselves)."""

    def __init__(self, rows: int):
        self.rows = rows
        self.buf = np.empty(rows, dtype=np.int64)
        self.pos = 0
        self.overflow = 0
        self.first: float | None = None  # perf_counter() at the first batch

    def add(self, ids) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        n = len(ids)
        if self.pos + n > self.rows:
            self.overflow += n
            return
        # Copied through a view of the tensor's memory: torch's ``Tensor.numpy()``
        # releases the GIL, and beside a thread busy in Python (cells C) every release
        # risks a whole switch interval, which would measure the check, not the reads.
        view = (ctypes.c_int64 * n).from_address(ids.data_ptr())
        self.buf[self.pos : self.pos + n] = np.frombuffer(view, dtype=np.int64)
        self.pos += n

    def check(self) -> str | None:
        """None if the epoch delivered every id of 0..rows-1 exactly once."""
        ids = self.buf[: self.pos]
        total = self.pos + self.overflow
        if not self.overflow and self.pos == self.rows:
            if np.array_equal(np.sort(ids), np.arange(self.rows)):
                return None
        counts = np.bincount(ids[(ids >= 0) & (ids < self.rows)], minlength=self.rows)
        text = (
            f"{total:,} rows delivered for {self.rows:,}: "
            f"{int((counts == 0).sum()):,} ids missing, "
            f"{int((counts > 1).sum()):,} repeated"
        )
        if self.overflow:
            text += f" (the {self.overflow:,} rows past {self.rows:,} not inspected)"
        return text


class Spinner:
    """A background thread spinning in pure Python until stopped."""

    def __init__(self):
        self.stop = threading.Event()
        self.loops = 0
        self.thread = threading.Thread(target=self._spin, daemon=True)

    def _spin(self) -> None:
        x = 1
        loops = 0
        while not self.stop.is_set():
            for _ in range(1000):
                x = (x * 1103515245 + 12345) & 0xFFFFFFFF
            loops += 1
        self.loops = loops

    def start(self) -> None:
        self.thread.start()

    def finish(self) -> int:
        """Stops the thread; the thousands of loops it ran."""
        self.stop.set()
        self.thread.join()
        return self.loops


class Bench:
    """The table, the permutation and what the cells share."""

    def __init__(self, args, root: Path, table):
        import torch

        from riffledb.permutation import Permutation, permutation_builder

        self.args = args
        self.root = root
        self.batch = args.batch
        self.perm_table = permutation_builder(table).shuffle(seed=SEED).execute()
        self.perm = Permutation.from_tables(table, self.perm_table).with_format(
            "torch_dict"
        )
        self.rows = len(self.perm)
        self.numpy_rows = NumpyRows(str(root))
        self.offsets = [
            list(range(i, min(i + self.batch, self.rows)))
            for i in range(0, self.rows, self.batch)
        ]
        self.round = 0
        full = self.perm.__getitems__(self.offsets[0])
        self.step_batch = {k: v.clone() for k, v in full.items()}
        last = len(self.offsets[-1])
        self.hot_batches = [self.step_batch] * (len(self.offsets) - 1) + [
            {k: v[:last].clone() for k, v in full.items()}
        ]
        # B1's batches: the epoch's own (the same offsets as the pipeline reads), each a
        # tensor of its own (~400 MB at 200,000 rows), made once.
        self.epoch_batches = [self.perm.__getitems__(o) for o in self.offsets]
        self.step, self.step_s = calibrate(self.step_batch, args.step_ms / 1000)
        self.torch = torch

    def warm(self) -> dict:
        """Reads the table (one plain epoch) and the ``.npy`` files once."""
        t0 = time.perf_counter()
        n = sum(len(b["id"]) for b in self.perm.iter(self.batch))
        table_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for column in self.numpy_rows.columns.values():
            flat = column.reshape(-1).view(np.uint8)
            int(flat[::4096].sum(dtype=np.uint64))
        return {"rows": n, "table_s": table_s, "npy_s": time.perf_counter() - t0}

    def loader(self, dataset, workers: int, collate, shuffle: bool):
        from torch.utils.data import DataLoader

        kwargs = {}
        if workers:
            kwargs["multiprocessing_context"] = "fork"
        if shuffle:
            kwargs["generator"] = self.torch.Generator().manual_seed(SEED + self.round)
        return DataLoader(
            dataset,
            batch_size=self.batch,
            shuffle=shuffle,
            num_workers=workers,
            collate_fn=collate,
            **kwargs,
        )

    def consume(self, batches, step=None) -> Ids:
        ids = Ids(self.rows)
        if step is None:
            for b in batches:
                ids.add(b["id"])
        else:
            for b in batches:
                ids.add(b["id"])
                step(b)
        return ids

    def run(self, cell: str) -> dict:
        """One epoch of ``cell``: its seconds, the exactly-once check (None: passed),
        the pipeline's stats."""
        gc.collect()
        out: dict = {}
        ids = None
        iterator = None
        spinner = Spinner() if cell in ("C1", "C3") else None
        if spinner is not None:
            spinner.start()
        try:
            t0 = time.perf_counter()
            if cell == "A1":
                ids = self.consume(self.perm.iter(self.batch))
            elif cell in ("A2", "B2", "C1", "C2"):
                iterator = self.perm.iter(self.batch, prefetch=self.args.prefetch)
                ids = self.consume(iterator, self.step if cell == "B2" else None)
            elif cell == "A3":
                ids = self.consume(self.loader(self.perm, 0, identity, False))
            elif cell in ("B0", "B1"):
                step = self.step
                for b in self.hot_batches if cell == "B0" else self.epoch_batches:
                    step(b)
            elif cell == "B3":
                loader = self.loader(self.perm, self.args.workers, identity, False)
                ids = self.consume(loader, self.step)
            elif cell in ("C3", "C4"):
                ids = self.consume(self.queued())
            else:  # D1, D2, D3
                from riffledb.util import one_buffer_collate

                dataset = self.numpy_rows if cell == "D3" else self.perm
                collate = one_buffer_collate if cell == "D1" else identity
                loader = self.loader(dataset, self.args.workers, collate, True)
                ids = self.consume(loader)
            out["seconds"] = time.perf_counter() - t0
        finally:
            if spinner is not None:
                out["spinner_loops"] = spinner.finish()
        if iterator is not None:
            out["stats"] = dict(iterator.stats)
        if ids is not None and ids.first is not None:
            out["first_s"] = ids.first - t0
        out["error"] = ids.check() if ids is not None else None
        return out

    def queued(self):
        """Batches taken by a Python thread (``__getitems__`` of each batch's offsets)
        into a bounded queue, as the main thread gets them."""
        q: queue.Queue = queue.Queue(maxsize=self.args.prefetch)
        perm = self.perm
        failed: list = []

        def produce():
            try:
                for offsets in self.offsets:
                    q.put(perm.__getitems__(offsets))
            except BaseException as error:  # noqa: BLE001 (raised in the consumer)
                failed.append(error)
            finally:
                q.put(None)

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        while (item := q.get()) is not None:
            yield item
        thread.join()
        if failed:
            raise failed[0]


# -- the driver -------------------------------------------------------------------------


def rotate(items: list, r: int) -> list:
    k = r % len(items) if items else 0
    return items[k:] + items[:k]


def summarize(runs: list[dict], rows: int) -> dict:
    errors = [r["error"] for r in runs if r.get("error")]
    out: dict = {"repeats": len(runs), "errors": errors}
    if runs and not errors:
        rates = [rows / r["seconds"] for r in runs]
        out.update(
            rows_per_s=rates,
            rows_per_s_min=min(rates),
            rows_per_s_median=statistics.median(rates),
            rows_per_s_max=max(rates),
            epoch_s_median=statistics.median(r["seconds"] for r in runs),
        )
        if all("first_s" in r for r in runs):
            out["first_s_median"] = statistics.median(r["first_s"] for r in runs)
    stats = [r["stats"] for r in runs if "stats" in r]
    if stats:
        out["stats_median"] = {
            k: statistics.median(s[k] for s in stats) for k in stats[0]
        }
        out["stats_last"] = stats[-1]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=None, help="default 200,000")
    parser.add_argument("--quick", action="store_true", help="20,000 rows, 2 repeats")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (5; quick 2)")
    parser.add_argument("--batch", type=int, default=256, help="rows a batch (256)")
    parser.add_argument("--prefetch", type=int, default=8, help="pipeline depth (8)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (2)")
    parser.add_argument(
        "--step-ms", type=float, default=1.5, help="the training step, ms (1.5)"
    )
    parser.add_argument(
        "--cells", default=",".join(CELLS), help="comma list of " + ",".join(CELLS)
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (printed)"
    )
    args = parser.parse_args()
    rows = args.rows or (20_000 if args.quick else 200_000)
    repeats = args.repeats or (2 if args.quick else 5)
    cells = [c.strip().upper() for c in args.cells.split(",") if c.strip()]
    if unknown := set(cells) - set(CELLS):
        parser.error(f"unknown cells: {', '.join(sorted(unknown))}")

    import torch

    torch.set_num_threads(1)
    # Killed (make's ^C, a timeout): still remove the temporary files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="riffledb-pipeline-"))
    runs: dict[str, list[dict]] = {c: [] for c in cells}
    try:
        t0 = time.perf_counter()
        table = make_data(tmp, rows)
        print(
            f"data: {rows:,} rows ({rows * ROW_BYTES / 1e6:,.0f} MB) as a riffledb "
            f"table and .npy files in {time.perf_counter() - t0:.1f} s ({tmp})",
            flush=True,
        )
        bench = Bench(args, tmp, table)
        print(
            f"step: batch['emb'] @ W (512 x {bench.step.k}), "
            f"{bench.step_s * 1e3:.2f} ms on a {args.batch}-row batch (fastest of 30)",
            flush=True,
        )
        warm = bench.warm()
        print(
            f"warm: read the table in {warm['table_s']:.2f} s, the .npy files in "
            f"{warm['npy_s']:.2f} s",
            flush=True,
        )
        for r in range(repeats):
            bench.round = r
            for cell in rotate(cells, r):
                try:
                    res = bench.run(cell)
                except Exception as error:  # noqa: BLE001 (the cell's failure)
                    import traceback

                    traceback.print_exc()
                    res = {"seconds": None, "error": f"{type(error).__name__}: {error}"}
                runs[cell].append(res)
                line = f"round {r + 1}/{repeats} {cell} {CELLS[cell]:70.70}"
                if res["seconds"] is not None:
                    line += (
                        f" {res['seconds']:7.3f} s {rows / res['seconds']:10,.0f} rows/s"
                    )
                if res.get("error"):
                    line += f" FAIL: {res['error']}"
                print(line, flush=True)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    summary = {c: summarize(runs[c], rows) for c in cells}
    ratios = report(rows, repeats, args, bench, summary, runs)
    out = HERE / "results" / f"pipeline-{rows}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "args": {**vars(args), "rows": rows, "repeats": repeats, "cells": cells},
                "machine": machine(),
                "riffledb": git_revision(),
                "torch": torch.__version__,
                "step": {"k": bench.step.k, "calibrated_s": bench.step_s},
                "warm": warm,
                "summary": summary,
                "ratios": ratios,
                "runs": runs,
            },
            indent=1,
        )
    )
    print(f"\nresults: {out.relative_to(REPO)}")


def report(rows, repeats, args, bench, summary, runs) -> list[dict]:
    print(
        f"\n{rows:,} rows (id int64, label int64, emb 512 float32; "
        f"{rows * ROW_BYTES / 1e6:,.0f} MB), local disk, page cache warm; shuffled "
        f"permutation, format torch_dict, batch {args.batch}; prefetch={args.prefetch}; "
        f"step {bench.step_s * 1e3:.2f} ms (matmul 512 x {bench.step.k}, 1 torch "
        f"thread); DataLoader workers {args.workers} (fork); Python switch interval "
        f"{sys.getswitchinterval() * 1e3:.0f} ms. rows/s median [min–max] of {repeats} "
        "interleaved epochs\n"
    )
    print(
        "| cell | what | rows/s median [min–max] | epoch s (median) | first batch ms "
        "(median) | exactly once |"
    )
    print("|---|---|---:|---:|---:|---|")
    for cell, s in summary.items():
        if s["errors"]:
            print(f"| {cell} | {CELLS[cell]} | **FAIL** | – | – | {s['errors'][0]} |")
            continue
        check = "– (reads nothing)" if cell in ("B0", "B1") else "ok"
        first = s.get("first_s_median")
        print(
            f"| {cell} | {CELLS[cell]} | {s['rows_per_s_median']:,.0f} "
            f"[{s['rows_per_s_min']:,.0f}–{s['rows_per_s_max']:,.0f}] | "
            f"{s['epoch_s_median']:.3f} | "
            f"{'–' if first is None else f'{first * 1e3:.1f}'} | {check} |"
        )

    ratios = []
    print("\n| ratio | measured | target | met |")
    print("|---|---:|---:|---|")
    for a, b, goal in RATIOS:
        sa, sb = summary.get(a), summary.get(b)
        value = None
        if sa and sb and "rows_per_s_median" in sa and "rows_per_s_median" in sb:
            value = sa["rows_per_s_median"] / sb["rows_per_s_median"]
        ratios.append({"ratio": f"{a}/{b}", "value": value, "target": goal})
        if sa is None or sb is None:
            continue
        shown = "FAIL" if value is None else f"{value:.3f}×"
        if goal is None:
            target, met = "(reported)", ""
        else:
            target = f"≥ {goal}×"
            met = "–" if value is None else ("yes" if value >= goal else "**no**")
        print(f"| {a} ÷ {b} | {shown} | {target} | {met} |")

    shown = [c for c in ("A2", "B2", "C1", "C2") if summary.get(c, {}).get("stats_last")]
    if shown:
        print(
            "\nthe pipeline iterator's stats, one epoch (the last round's), seconds "
            "(io_s summed over the read threads):\n"
        )
        print("| cell | epoch s | io_s | wait_s | convert_s | transform_s | batches |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for cell in shown:
            st = summary[cell]["stats_last"]
            seconds = runs[cell][-1]["seconds"]
            print(
                f"| {cell} | {seconds:.3f} | "
                + " | ".join(f"{st[k]:.3f}" for k in STATS_KEYS)
                + f" | {st['batches']} |"
            )
    return ratios


if __name__ == "__main__":
    main()
