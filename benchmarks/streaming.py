"""Streaming epochs: riffledb.streaming vs LanceDB, MosaicML Streaming and LitData.

``make bench-streaming`` (``STREAM_ROWS=N`` to change N, ``QUICK=1`` for a short run,
``S3=1`` for the loopback S3 server) or::

    PYTHONPATH=python .venv/bin/python benchmarks/streaming.py \\
        --lancedb-python .venv-bench/bin/python --peers-python .venv-peers/bin/python \\
        [--rows 200000] [--quick] [--s3]

The same rows for every system, on local disk (or, with ``--s3``, on the loopback S3
server: below), in one run: ``--rows`` rows (default 200,000; ``--quick``: 20,000) of
``id`` int64 (0..N-1), ``emb`` a fixed-size list of 128 float32 (512 bytes) and
``label`` int64, generated from a fixed seed in chunks of 65,536 rows (the first N rows
are the same at any N) and written once to an Arrow IPC file that every system's
process memory-maps. Each system runs in a process of its own, with its
own interpreter (their pins clash):

- **riffledb** (this tree, the driver's interpreter: ``.venv``): ``create_table``, then
  ``riffledb.streaming.StreamingDataset(table, num_splits=S, shuffle_seed=0)``, one
  instance iterated once per epoch (each pass is the next epoch, a new shuffle);
- **LanceDB** 0.40 (``--lancedb-python``, ``.venv-bench``): ``create_table``, then
  ``lancedb.streaming.StreamingDataset(table, num_splits=S, shuffle_seed=0, epoch=e)``
  (a LanceDB instance is one epoch: its shuffle is built in the constructor, so the
  construction is part of each timed epoch; it is also reported apart);
- **MosaicML Streaming** 0.13 (``--peers-python``, ``.venv-peers``): ``MDSWriter``
  (``id`` int64, ``emb`` ``ndarray:float32:128``, ``label`` int64; no compression), then
  ``streaming.StreamingDataset(local=..., shuffle=True, shuffle_seed=0,
  batch_size=256)``, one instance iterated once per epoch;
- **LitData** 0.2.76 (``--peers-python``): ``litdata.optimize`` (its default workers:
  one per core; ``emb`` a numpy array, ``id`` and ``label`` ints), then
  ``litdata.StreamingDataset(input_dir, shuffle=True, seed=0)`` with ``set_epoch`` before
  each pass.

Figures: (a) the time to convert the Arrow table into the system's own format, once;
(b) epoch rows/s: one full shuffled epoch, rows as each system's own per-sample dict
(riffledb and LanceDB: Python values, ``emb`` a list of floats; MDS and LitData: numpy
arrays and scalars), iterated in the process's main thread; and the same through
``torch.utils.data.DataLoader(ds, batch_size=256, num_workers=0)`` (default collate).
Every epoch is checked: it must deliver every id exactly once, or its cell reports the
failure instead of a figure. The epoch's ``median |Δid| / N`` (the median distance in
storage between consecutive rows; ~0.29 for a uniform shuffle) says how far each
system's shuffle moves rows: riffledb and LanceDB shuffle every row; MDS (``py1e``)
shuffles within blocks of 4,000,000 samples on one node by default (all of them here);
LitData shuffles its chunks' order, then windows of 256 items within a chunk and the
items within a window, so consecutive rows sit a few hundred rows apart on disk.

Cells are interleaved: one warm-up round (untimed), then ``--repeats`` rounds, each
running one epoch of every cell in a rotated order while the other systems' processes
wait. Results: a Markdown table on stdout and
``benchmarks/results/streaming-<rows>.json`` (``streaming-s3-<rows>.json`` with
``--s3``; git-ignored). Nothing here uses the network: the data is generated, LitData's
version check is off, the S3 server is on 127.0.0.1.

With ``--s3`` every system converts into ``s3://riffle-test/<system>`` on the tests' moto
server (``tests/harness/s3_server.py``), started in the driver process as ``s3_take.py``
starts it (signatures checked, one request at a time, ranged GETs read the range alone;
every request and the bytes of every GET reply counted), and reads its epochs from there:
riffledb and LanceDB through their ``storage_options`` (s3_take.py's; riffledb's with
``cache_dir`` and ``cache_size``, twice the rows' bytes), MosaicML Streaming through
``S3_ENDPOINT_URL`` and the AWS key variables (``StreamingDataset(remote=...,
local=<cache>)``), LitData through its ``storage_options`` (boto3 client arguments;
``cache_dir=<cache>``), to which this script adds ``allow_http`` to the client options of
LitData's obstore transfers (they refuse an http:// endpoint otherwise). Convert times
include the upload. Each epoch is **cold**: a new empty cache directory (the last one
removed) and a new connection and open table (riffledb, LanceDB; untimed) or dataset (MDS,
LitData: built inside the timed epoch, as riffledb's and LanceDB's StreamingDataset are; a
new MDS instance is set to the epoch's number, LitData's with ``set_epoch``). riffledb,
MDS and LitData, which keep what they read on local disk, also run **warm**
(``riffledb_warm``, ``riffledb_np_warm``, ``mds_warm``, ``litdata_warm``: a process of
their own, its own copy of the data, one dataset and one cache directory for the whole
run, so after the warm-up round every epoch reads its cache); LanceDB keeps nothing
locally and runs cold alone. Every epoch reports the requests and GET bytes the server
handled during it. moto answers one request at a time at a few ms each, so these epochs
measure moto's cost per request as much as the client's: requests per epoch is the figure
that carries over to real S3.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
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

from common import (  # noqa: E402
    LANCEDB_MEMORY_LIMIT,
    LANCEDB_MEMORY_VAR,
    SEED,
    git_revision,
    machine,
)

DIM = 128
LABELS = 100
CHUNK = 1 << 16
BATCH = 256
ROW_BYTES = 8 + 4 * DIM + 8
SYSTEMS = ("riffledb", "riffledb_np", "lancedb", "mds", "litdata")
LABEL = {
    "riffledb": "riffledb",
    "riffledb_np": "riffledb, NumPy rows",
    "lancedb": "LanceDB",
    "mds": "MosaicML Streaming (MDS)",
    "litdata": "LitData",
}
MODES = ("rows", "loader")
# With --s3: the systems that keep a local copy of what they read also run with their
# cache kept from epoch to epoch ("<system>_warm"); LanceDB keeps none.
WARM = ("riffledb", "riffledb_np", "mds", "litdata")
S3_SYSTEMS = SYSTEMS + tuple(f"{s}_warm" for s in WARM)
LABEL.update({f"{s}_warm": f"{LABEL[s]}, warm cache" for s in WARM})


def s3_labels() -> None:
    """The labels of an --s3 run: the systems with a cache say that it is cold."""
    for system in WARM:
        LABEL[system] = f"{LABEL[system]}, cold cache"


# -- the data ----------------------------------------------------------------------------


def schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("emb", pa.list_(pa.float32(), DIM), nullable=False),
            pa.field("label", pa.int64(), nullable=False),
        ]
    )


def source_batches(rows: int):
    """The rows, CHUNK at a time: chunk c drawn from the seed [SEED, 4, c] (whole, then
    cut), so the first N rows are the same for any N."""
    for c, start in enumerate(range(0, rows, CHUNK)):
        stop = min(start + CHUNK, rows)
        rng = np.random.default_rng([SEED, 4, c])
        emb = rng.standard_normal((CHUNK, DIM), dtype=np.float32)[: stop - start]
        label = rng.integers(0, LABELS, CHUNK, dtype=np.int64)[: stop - start]
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(np.arange(start, stop, dtype=np.int64)),
                pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), DIM),
                pa.array(label),
            ],
            schema=schema(),
        )


def write_source(path: Path, rows: int) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema()) as writer:
        for batch in source_batches(rows):
            writer.write_batch(batch)


def read_source(path: str) -> pa.Table:
    """The source table, memory-mapped (zero-copy)."""
    return pa.ipc.open_file(pa.memory_map(path)).read_all()


def numpy_columns(batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    emb = batch.column("emb")
    values = emb.values.slice(emb.offset * DIM, len(emb) * DIM)
    return (
        batch.column("id").to_numpy(),
        values.to_numpy().reshape(-1, DIM),
        batch.column("label").to_numpy(),
    )


def litdata_rows(task):
    """litdata.optimize's fn (module level: its workers import or inherit it): the rows
    [start, stop) of the source file as samples."""
    path, start, stop = task
    table = read_source(path).slice(start, stop - start)
    for batch in table.to_batches():
        ids, emb, labels = numpy_columns(batch)
        for i, (row_id, label) in enumerate(
            zip(ids.tolist(), labels.tolist(), strict=True)
        ):
            yield {"id": row_id, "emb": emb[i], "label": label}


# -- the child process: one system, converting once then running epochs -----------------


class System:
    """One system under test in its child process.

    On local disk its data is in the directory ``spec["dir"]``. With ``--s3``,
    ``spec["dir"]`` is an ``s3://`` prefix on the loopback server and ``spec["options"]``
    the system's way of reaching it; a system with a local cache (riffledb's block cache,
    MDS's ``local``, LitData's ``cache_dir``) keeps it under ``spec["scratch"]``: a fresh
    empty directory before every epoch when ``spec["cold"]``, else one for the whole run.
    """

    def __init__(self, spec: dict):
        self.spec = spec
        self.rows = spec["rows"]
        self.dir = spec["dir"]
        self.s3 = spec["s3"]
        self.options = spec["options"]
        self.cold = spec["cold"]
        self.cache: str | None = None
        self.caches = 0
        self.epoch = 0
        self.version = "?"
        self.note: str | None = None  # anything the run had to work around

    def convert(self) -> None:
        raise NotImplementedError

    def open(self) -> None:
        """Untimed setup before the first epoch."""

    def prepare(self) -> None:
        """Untimed, before each epoch: with a cold cache, a new empty cache directory
        (the previous one removed). Subclasses reopen their reader on it."""
        if self.cold:
            self.new_cache()

    def new_cache(self) -> str:
        if self.cache is not None:
            shutil.rmtree(self.cache, ignore_errors=True)
        self.caches += 1
        self.cache = os.path.join(self.spec["scratch"], str(self.caches))
        os.makedirs(self.cache)
        return self.cache

    def dataset(self):
        """The dataset that the next epoch iterates."""
        raise NotImplementedError


class Riffledb(System):
    def connect(self):
        import riffledb

        if not self.s3:
            return riffledb.connect(self.dir)
        cache = self.cache or self.new_cache()
        return riffledb.connect(
            self.dir, storage_options={**self.options, "cache_dir": cache}
        )

    def convert(self) -> None:
        self.version = git_revision()
        table = read_source(self.spec["source"])
        t0 = time.perf_counter()
        self.table = self.connect().create_table("rows", table)
        self.convert_s = time.perf_counter() - t0

    def make(self, **kwargs):
        from riffledb.streaming import StreamingDataset

        return StreamingDataset(
            self.table, num_splits=self.spec["num_splits"], shuffle_seed=0, **kwargs
        )

    def open(self) -> None:
        if not self.cold:
            self.ds = self.make()

    def prepare(self) -> None:
        super().prepare()
        if self.cold:
            self.table = self.connect().open_table("rows")  # on the new cache

    def dataset(self):
        if self.cold:
            return self.make(epoch=self.epoch)
        return self.ds  # each pass is the next epoch


class RiffledbNumpyRows(Riffledb):
    """riffledb with ``transform=Transforms.arrow2numpyrows``: rows of NumPy values, as
    MDS and LitData deliver them (``emb`` one float32 array per row)."""

    def make(self, **kwargs):
        from riffledb.formats import Transforms

        return super().make(transform=Transforms.arrow2numpyrows, **kwargs)


class Lancedb(System):
    """LanceDB keeps no local copy of remote data: with ``--s3`` every epoch reads the
    bucket, from a new connection (nothing held in memory from the last epoch)."""

    def connect(self):
        import lancedb

        return lancedb.connect(self.dir, storage_options=self.options)

    def convert(self) -> None:
        import lancedb

        self.version = lancedb.__version__
        table = read_source(self.spec["source"])
        t0 = time.perf_counter()
        self.table = self.connect().create_table("rows", table)
        self.convert_s = time.perf_counter() - t0

    def prepare(self) -> None:
        if self.s3:
            self.table = self.connect().open_table("rows")

    def dataset(self):
        from lancedb.streaming import StreamingDataset

        # One instance per epoch: LanceDB's shuffle is built by the constructor.
        return StreamingDataset(
            self.table,
            num_splits=self.spec["num_splits"],
            shuffle_seed=0,
            epoch=self.epoch,
        )


def importable_torchvision() -> str | None:
    """MosaicML Streaming imports ``streaming.vision`` (and so torchvision) with the
    package. PyPI's torchvision is the CUDA build: beside the CPU torch that
    requirements-peers.txt pins, its ops library does not load and its import raises
    ("operator torchvision::nms does not exist"). Then torchvision becomes a stub holding
    the two names ``streaming.vision`` imports (a base class and a function), which
    nothing here uses: MDSWriter and StreamingDataset never touch torchvision. Returns
    why it was stubbed, or None."""
    try:
        import torchvision  # noqa: F401

        return None
    except Exception as error:  # noqa: BLE001 (RuntimeError from torch.library)
        why = f"{type(error).__name__}: {error}"
    import importlib.machinery
    import types

    for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
        del sys.modules[name]

    class VisionDataset:  # streaming.vision's base class (never instantiated here)
        pass

    def to_tensor(pic):
        raise NotImplementedError("torchvision is a stub in this benchmark")

    stub = {
        "torchvision": {},
        "torchvision.datasets": {"VisionDataset": VisionDataset},
        "torchvision.transforms": {},
        "torchvision.transforms.functional": {"to_tensor": to_tensor},
    }
    for name, attrs in stub.items():
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)  # for find_spec
        module.__dict__.update(attrs)
        sys.modules[name] = module
    for name in stub:
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, sys.modules[name])
    return why


class Mds(System):
    COLUMNS = {"id": "int64", "emb": f"ndarray:float32:{DIM}", "label": "int64"}

    def convert(self) -> None:
        if why := importable_torchvision():
            self.note = (
                f"torchvision does not import here ({why[:120]}): a stub stood in for "
                "it (streaming.vision imports two names; MDS's writer and dataset "
                "never use them)"
            )
        import streaming
        from streaming import MDSWriter

        self.version = streaming.__version__
        table = read_source(self.spec["source"])
        t0 = time.perf_counter()
        with MDSWriter(out=self.dir, columns=self.COLUMNS) as writer:
            for batch in table.to_batches():
                ids, emb, labels = numpy_columns(batch)
                for i in range(len(ids)):
                    writer.write({"id": ids[i], "emb": emb[i], "label": labels[i]})
        self.convert_s = time.perf_counter() - t0

    def reader(self):
        from streaming import StreamingDataset

        if self.s3:  # the shards downloaded into the cache directory as they are read
            where = {"remote": self.dir, "local": self.cache or self.new_cache()}
        else:
            where = {"local": self.dir}
        return StreamingDataset(**where, shuffle=True, shuffle_seed=0, batch_size=BATCH)

    def open(self) -> None:
        from streaming.base.util import clean_stale_shared_memory

        clean_stale_shared_memory()
        if not self.cold:
            self.ds = self.reader()

    def prepare(self) -> None:
        if self.cold:
            self.ds = None  # the last epoch's instance and its shared memory gone first
        super().prepare()

    def dataset(self):
        if self.cold:
            self.ds = self.reader()
            self.ds.next_epoch = self.epoch  # a new instance would start at epoch 0
        return self.ds  # else each pass is the next epoch


class Litdata(System):
    def allow_http(self) -> None:
        """LitData moves chunks with obstore, through client options of its own
        (``litdata.streaming.downloader._OBSTORE_CLIENT_OPTIONS``) that have no
        ``allow_http``: obstore refuses the loopback server's http:// endpoint ("HTTP
        error: builder error"), whatever the environment says (its boto3 calls, for
        ``index.json``, allow http). The option added there is what riffledb's and
        LanceDB's ``allow_http`` storage option says; real S3 would not need it."""
        from litdata.streaming import downloader

        downloader._OBSTORE_CLIENT_OPTIONS["allow_http"] = "true"
        self.note = (
            "allow_http added to LitData's obstore client options (the loopback "
            "server is http://; LitData passes no option to obstore for it)"
        )

    def convert(self) -> None:
        import litdata

        self.version = litdata.__version__
        if self.s3:
            self.allow_http()
        source, rows = self.spec["source"], self.rows
        step = 8192
        inputs = [(source, s, min(s + step, rows)) for s in range(0, rows, step)]
        t0 = time.perf_counter()
        litdata.optimize(
            fn=litdata_rows,
            inputs=inputs,
            output_dir=self.dir,
            chunk_bytes="64MB",
            verbose=False,
            **({"storage_options": self.options} if self.s3 else {}),
        )
        self.convert_s = time.perf_counter() - t0

    def reader(self):
        import litdata

        where = {}
        if self.s3:  # chunks downloaded into the cache directory as they are read
            where = {"cache_dir": self.cache or self.new_cache()}
            where["storage_options"] = self.options
        ds = litdata.StreamingDataset(self.dir, shuffle=True, seed=0, **where)
        ds.set_batch_size(BATCH)
        return ds

    def open(self) -> None:
        if not self.cold:
            self.ds = self.reader()

    def dataset(self):
        if self.cold:
            self.ds = self.reader()
        self.ds.set_epoch(self.epoch + 1)  # LitData counts epochs from 1
        return self.ds


CLASSES = {
    "riffledb": Riffledb,
    "riffledb_np": RiffledbNumpyRows,
    "lancedb": Lancedb,
    "mds": Mds,
    "litdata": Litdata,
}
CLASSES.update({f"{s}_warm": CLASSES[s] for s in WARM})


def du(path: str) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def check(ids: np.ndarray, rows: int) -> str | None:
    """None if ``ids`` is every id of 0..rows-1 exactly once, else what is wrong."""
    if len(ids) == rows and np.array_equal(np.sort(ids), np.arange(rows)):
        return None
    counts = np.bincount(ids[(ids >= 0) & (ids < rows)], minlength=rows)
    return (
        f"{len(ids):,} rows delivered for {rows:,}: {int((counts == 0).sum()):,} ids "
        f"missing, {int((counts > 1).sum()):,} repeated, "
        f"{int(((ids < 0) | (ids >= rows)).sum()):,} out of range"
    )


def run_epoch(system: System, mode: str) -> dict:
    system.prepare()
    t0 = time.perf_counter()
    ds = system.dataset()
    setup = time.perf_counter() - t0
    first = None
    if mode == "rows":
        ids: list = []
        append = ids.append
        for row in ds:
            if first is None:
                first = row
            append(row["id"])
        elapsed = time.perf_counter() - t0
        delivered = np.asarray(ids, dtype=np.int64)
    else:
        from torch.utils.data import DataLoader

        parts: list = []
        for batch in DataLoader(ds, batch_size=BATCH, num_workers=0):
            if first is None:
                first = batch
            parts.append(batch["id"].numpy())
        elapsed = time.perf_counter() - t0
        delivered = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    system.epoch += 1
    out = {
        "seconds": elapsed,
        "setup_s": setup,
        "rows": int(len(delivered)),
        "error": check(delivered, system.rows),
        "spread": float(np.median(np.abs(np.diff(delivered))) / system.rows)
        if len(delivered) > 1
        else None,
    }
    if first is not None:
        out["sample"] = describe(first)
    return out


def describe(row: dict) -> dict:
    """The type of each value of a row or batch (``emb``: a list of 128 floats, an array
    of shape (128,), a list of 128 tensors...)."""
    out = {}
    for k, v in row.items():
        text = type(v).__name__
        if hasattr(v, "shape"):
            text += f" {v.dtype} {tuple(v.shape)}"
        elif isinstance(v, list) and v:
            text += f" of {len(v)} {describe({'': v[0]})['']}"
        out[k] = text
    return out


def child(out) -> None:
    # This file's directory off the path: its name would shadow MosaicML's `streaming`.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    spec = json.loads(sys.stdin.readline())
    system = CLASSES[spec["system"]](spec)

    def reply(obj: dict) -> None:
        out.write("RESULT " + json.dumps(obj) + "\n")
        out.flush()

    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if cmd["cmd"] == "convert":
                system.convert()
                t0 = time.perf_counter()
                system.open()
                reply(
                    {
                        "version": system.version,
                        "convert_s": system.convert_s,
                        "open_s": time.perf_counter() - t0,
                        "disk_bytes": None if system.s3 else du(system.dir),
                        "note": system.note,
                    }
                )
            elif cmd["cmd"] == "epoch":
                reply(run_epoch(system, cmd["mode"]))
            elif cmd["cmd"] == "quit":
                break
        except Exception as error:  # noqa: BLE001 (reported as the cell's failure)
            import traceback

            traceback.print_exc()
            reply({"error": f"{type(error).__name__}: {error}"[:500], "raised": True})


# -- the driver -------------------------------------------------------------------------


class Child:
    """A system's process: JSON commands on stdin, ``RESULT`` lines back (its library
    output goes to a log file)."""

    def __init__(self, python: str, spec: dict, log: Path, env: dict):
        self.log = log
        with open(log, "w") as err:
            self.proc = subprocess.Popen(
                [python, __file__, "--child"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
            )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.send(spec)

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("RESULT "):
                self.lines.put(json.loads(line[7:]))
        self.lines.put(None)

    def send(self, obj: dict) -> None:
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def call(self, timeout: float, **cmd) -> dict:
        if self.proc.poll() is not None:
            return {"error": "the process had exited", "raised": True}
        self.send(cmd)
        try:
            res = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            return {"error": f"no answer in {timeout:.0f} s (killed)", "raised": True}
        if res is None:
            tail = self.log.read_text()[-600:]
            return {"error": f"exited {self.proc.wait()}: {tail}", "raised": True}
        return res

    def close(self, now: bool = False) -> None:
        """Asks the process to quit (or kills it ``now``: the driver is failing)."""
        try:
            if now:
                raise OSError
            self.send({"cmd": "quit"})
            self.proc.stdin.close()
            self.proc.wait(timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def start_s3(env: dict, options: dict, cache_size: int):
    """Starts the loopback S3 server in this process: the tests' moto
    (tests/harness/s3_server.py) as s3_take.py runs it, counting requests and serving
    ranged GETs by reading the range alone. Fills ``options`` with each system's way of
    reaching it (riffledb's ``cache_dir`` is added per connection) and ``env`` with the
    AWS variables (MosaicML Streaming reads ``S3_ENDPOINT_URL`` and the keys from them;
    no instance metadata is asked for)."""
    sys.path.insert(1, str(REPO / "tests"))
    from harness.s3_server import BUCKET, REGION, S3Server
    from s3_take import counting_server, serve_ranges_in_place

    serve_ranges_in_place()
    server = counting_server(S3Server, BUCKET)()
    server.bucket = BUCKET
    key, secret = server.access_key_id, server.secret_access_key
    options["riffledb"] = options["riffledb_np"] = server.storage_options(
        cache_size=str(cache_size)
    )
    options["lancedb"] = {
        "aws_access_key_id": key,
        "aws_secret_access_key": secret,
        "aws_endpoint": server.endpoint,
        "aws_region": REGION,
        "allow_http": "true",
    }
    options["litdata"] = {  # boto3 client arguments
        "endpoint_url": server.endpoint,
        "aws_access_key_id": key,
        "aws_secret_access_key": secret,
        "region_name": REGION,
    }
    env.update(
        AWS_ACCESS_KEY_ID=key,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL=server.endpoint,
        S3_ENDPOINT_URL=server.endpoint,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return server


def rotate(items: list, r: int) -> list:
    k = r % len(items) if items else 0
    return items[k:] + items[:k]


def summarize(runs: list[dict], rows: int) -> dict:
    errors = [r["error"] for r in runs if r.get("error")]
    good = [r for r in runs if not r.get("error")]
    out: dict = {"repeats": len(runs), "errors": errors}
    if good and not errors:
        seconds = [r["seconds"] for r in good]
        out.update(
            epoch_s_min=min(seconds),
            epoch_s_median=statistics.median(seconds),
            rows_per_s_median=rows / statistics.median(seconds),
            rows_per_s_best=rows / min(seconds),
            setup_s_median=statistics.median(r["setup_s"] for r in good),
            spread_median=statistics.median(r["spread"] for r in good),
        )
        if "server" in good[0]:
            out["server_requests_median"] = statistics.median(
                r["server"]["requests"] for r in good
            )
            out["server_get_bytes_median"] = statistics.median(
                r["server"]["get_bytes"] for r in good
            )
        if "sample" in good[0]:
            out["sample"] = good[0]["sample"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=None, help="default 200,000")
    parser.add_argument("--quick", action="store_true", help="20,000 rows")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (5)")
    parser.add_argument(
        "--num-splits",
        type=int,
        default=8,
        help="riffledb's and LanceDB's num_splits (8); must divide --rows",
    )
    parser.add_argument(
        "--systems",
        default=None,
        help=f"comma list of {SYSTEMS} (default: all); with --s3 also "
        f"{tuple(f'{s}_warm' for s in WARM)} (default: {S3_SYSTEMS})",
    )
    parser.add_argument(
        "--s3",
        action="store_true",
        help="every system's data on the loopback S3 server (moto, in this process)",
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="rows (the dataset iterated) and/or loader (through a DataLoader)",
    )
    parser.add_argument(
        "--lancedb-python",
        default=str(REPO / ".venv-bench" / "bin" / "python"),
        help="the interpreter with lancedb 0.40 (make bench's virtualenv)",
    )
    parser.add_argument(
        "--peers-python",
        default=str(REPO / ".venv-peers" / "bin" / "python"),
        help="the interpreter with mosaicml-streaming and litdata (requirements-peers)",
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds per step before a kill"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (printed)"
    )
    parser.add_argument(
        "--report", metavar="JSON", help="print the table of a results file, run nothing"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        a = argparse.Namespace(**{"s3": False, **saved["args"]})
        if a.s3:
            s3_labels()
        report(
            a.rows,
            a,
            [s for s in a.systems.split(",") if s in saved["convert"]],
            [m for m in a.modes.split(",") if m],
            saved["convert"],
            saved["summary"],
            saved["notes"],
        )
        return
    if args.child:
        # RESULT lines on the real stdout; whatever the libraries print (LitData's
        # workers too, which inherit the descriptor) goes to stderr, the log.
        out = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        child(out)
        return
    rows = args.rows or (20_000 if args.quick else 200_000)
    if rows % args.num_splits:
        parser.error(
            f"--rows {rows} is not a multiple of --num-splits {args.num_splits}: "
            "riffledb and LanceDB would drop the remainder (equal splits)"
        )
    args.systems = args.systems or ",".join(S3_SYSTEMS if args.s3 else SYSTEMS)
    systems = [s for s in args.systems.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    known = set(CLASSES) if args.s3 else set(SYSTEMS)
    if unknown := (set(systems) - known) | (set(modes) - set(MODES)):
        parser.error(f"unknown (warm systems need --s3): {', '.join(sorted(unknown))}")
    python = {
        "riffledb": sys.executable,
        "riffledb_np": sys.executable,
        "lancedb": args.lancedb_python,
        "mds": args.peers_python,
        "litdata": args.peers_python,
    }
    python.update({f"{s}_warm": python[s] for s in WARM})
    if args.s3:
        s3_labels()
    notes: list[str] = []
    for system in list(systems):
        if not Path(python[system]).exists():
            notes.append(f"{LABEL[system]}: not measured, no {python[system]}")
            systems.remove(system)

    # Killed (make's ^C, a timeout): still stop the children and remove the temp files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="riffledb-streaming-"))
    server = None
    source = tmp / "source.arrow"
    t0 = time.perf_counter()
    write_source(source, rows)
    print(
        f"source: {rows:,} rows, {source.stat().st_size / 1e6:,.0f} MB Arrow IPC "
        f"({time.perf_counter() - t0:.1f} s) in {tmp}",
        flush=True,
    )
    env = dict(os.environ)
    env.setdefault(LANCEDB_MEMORY_VAR, str(LANCEDB_MEMORY_LIMIT))
    env["LITDATA_DISABLE_VERSION_CHECK"] = "1"
    # MDS's file locks and LitData's optimize cache go to tempfile.gettempdir(): the
    # run's directory, removed with it.
    (tmp / "tmp").mkdir()
    env["TMPDIR"] = str(tmp / "tmp")
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "python")] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    children: dict[str, Child] = {}
    converts: dict = {}
    runs: dict = {}
    noted: dict[str, list[str]] = {}
    finished = False
    try:
        options: dict = {}
        if args.s3:
            server = start_s3(env, options, cache_size=2 * rows * ROW_BYTES)
            print(f"S3: moto on {server.endpoint}, bucket {server.bucket}", flush=True)
        # One system at a time: each conversion has the machine to itself.
        for system in systems:
            spec = {
                "system": system,
                "rows": rows,
                "dir": f"s3://{server.bucket}/{system}" if server else str(tmp / system),
                "s3": args.s3,
                "options": options.get(system.removesuffix("_warm")),
                "cold": args.s3 and not system.endswith("_warm"),
                "scratch": str(tmp / f"{system}.cache"),
                "source": str(source),
                "num_splits": args.num_splits,
            }
            children[system] = Child(python[system], spec, tmp / f"{system}.log", {**env})
            res = children[system].call(args.timeout, cmd="convert")
            converts[system] = res
            if res.get("error"):
                print(f"{LABEL[system]}: convert failed: {res['error']}", flush=True)
                children.pop(system).close()
                continue
            if server is not None:
                res["disk_bytes"] = server.stored_bytes(f"{system}/")[1]
            if res.get("note"):  # one note for the cold and warm processes alike
                noted.setdefault(res["note"], []).append(LABEL[system])
            print(
                f"{LABEL[system]} {res['version']}: converted in "
                f"{res['convert_s']:.2f} s ({res['disk_bytes'] / 1e6:,.0f} MB), opened "
                f"in {res['open_s']:.2f} s",
                flush=True,
            )
        notes += [f"{'; '.join(who)}: {note}" for note, who in noted.items()]
        cells = [(s, m) for s in children for m in modes]
        width = max(len(LABEL[s]) for s in systems)
        runs = {f"{s}/{m}": [] for s, m in cells}
        for r in range(args.repeats + 1):
            for system, mode in rotate(cells, r):
                if system not in children:
                    continue
                before = server.snapshot() if server is not None else None
                res = children[system].call(args.timeout, cmd="epoch", mode=mode)
                if before is not None:  # what the epoch asked of the server
                    res["server"] = {"requests": 0, "get_bytes": 0}
                    res["server"].update(server.snapshot() - before)
                what = "warm-up" if r == 0 else f"round {r}/{args.repeats}"
                line = f"{what} {LABEL[system]:{width}} {mode:6}"
                if res.get("error"):
                    line += f" FAILED: {res['error']}"
                else:
                    line += (
                        f" {res['seconds']:7.2f} s {rows / res['seconds']:10,.0f} rows/s"
                    )
                    if "server" in res:
                        line += (
                            f", {res['server']['requests']:,} requests, "
                            f"{res['server']['get_bytes'] / 1e6:,.0f} MB"
                        )
                print(line, flush=True)
                if res.get("raised") and children[system].proc.poll() is not None:
                    children.pop(system)  # dead: its remaining cells fail
                if r:
                    runs[f"{system}/{mode}"].append(res)
        finished = True
    finally:
        for c in children.values():
            c.close(now=not finished)
        if server is not None:
            server.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    summary = {cell: summarize(rs, rows) for cell, rs in runs.items()}
    report(rows, args, systems, modes, converts, summary, notes)
    out = HERE / "results" / f"streaming{'-s3' if args.s3 else ''}-{rows}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "args": {**vars(args), "rows": rows},
                "machine": machine(),
                "versions": {
                    s: converts[s].get("version") for s in converts if s in converts
                },
                "riffledb": git_revision(),
                "convert": converts,
                "summary": summary,
                "notes": notes,
                "runs": runs,
            },
            indent=1,
        )
    )
    print(f"\nresults: {out.relative_to(REPO)}")


def report(rows, args, systems, modes, converts, summary, notes) -> None:
    where = "local disk"
    if args.s3:
        where = (
            "on the loopback S3 server (moto, one request at a time; a cold cache is "
            "a fresh empty directory for each epoch, a warm one kept from the last)"
        )
    print(
        f"\n{rows:,} rows (id int64, emb 128 float32, label int64; "
        f"{rows * ROW_BYTES / 1e6:,.0f} MB), {where}; num_splits {args.num_splits} "
        f"(riffledb, LanceDB); epoch rows/s at the median epoch of {args.repeats} "
        "[best], epoch seconds min / median; DataLoader: batch_size 256, "
        "num_workers 0\n"
    )

    def cell(system: str, mode: str) -> str:
        s = summary.get(f"{system}/{mode}")
        if s is None:
            return "not run"
        if s["errors"]:
            return f"**FAILED** ({s['errors'][0]})"
        if "rows_per_s_median" not in s:
            return "not run"
        return (
            f"{s['rows_per_s_median']:,.0f} [{s['rows_per_s_best']:,.0f}]; "
            f"{s['epoch_s_min']:.2f} / {s['epoch_s_median']:.2f} s"
        )

    def ratio(system: str, mode: str, ours: str = "riffledb") -> str:
        if system.endswith("_warm"):
            ours += "_warm"  # warm against warm
        a = summary.get(f"{ours}/{mode}", {}).get("rows_per_s_median")
        b = summary.get(f"{system}/{mode}", {}).get("rows_per_s_median")
        return "–" if a is None or b is None else f"{a / b:.2f}×"

    head = f"| system | convert s | {'stored' if args.s3 else 'disk'} MB |"
    rule = "|---|---:|---:|"
    for mode in modes:
        name = "epoch rows/s" if mode == "rows" else "DataLoader rows/s"
        head += f" {name} | riffledb ÷ this ({mode}) | NumPy rows ÷ this ({mode}) |"
        rule += "---:|---:|---:|"
    head += " median \\|Δid\\| / N |"
    rule += "---:|"
    if args.s3:
        head += " S3 requests, MB read per epoch |"
        rule += "---:|"
    print(head)
    print(rule)
    for system in systems:
        c = converts.get(system, {})
        if c.get("error"):
            print(
                f"| {LABEL[system]} | **FAILED** ({c['error']}) |"
                + " – |" * (2 + 3 * len(modes) + args.s3)
            )
            continue
        label = f"{LABEL[system]} {c.get('version', '')}".strip()
        line = f"| {label} | {c['convert_s']:.2f} | {c['disk_bytes'] / 1e6:,.0f} |"
        for mode in modes:
            line += (
                f" {cell(system, mode)} | {ratio(system, mode)} |"
                f" {ratio(system, mode, 'riffledb_np')} |"
            )
        spreads = [summary.get(f"{system}/{m}", {}).get("spread_median") for m in modes]
        spreads = [s for s in spreads if s is not None]
        line += f" {spreads[0]:.2g} |" if spreads else " – |"
        if args.s3:
            fetched = [summary.get(f"{system}/{m}", {}) for m in modes]
            fetched = [f for f in fetched if "server_requests_median" in f]
            line += (
                f" {fetched[0]['server_requests_median']:,.0f}, "
                f"{fetched[0]['server_get_bytes_median'] / 1e6:,.0f} |"
                if fetched
                else " – |"
            )
        print(line)
    lance = summary.get("lancedb/rows", {}).get("setup_s_median")
    if lance is not None:
        print(
            f"\nLanceDB's epochs include building the epoch's StreamingDataset (its "
            f"shuffle): {lance:.2f} s (median)."
        )
    if args.s3:
        setups = [
            f"{LABEL[system]} {summary[f'{system}/rows']['setup_s_median']:.2f} s"
            for system in systems
            if not system.endswith("_warm")
            and "setup_s_median" in summary.get(f"{system}/rows", {})
        ]
        print(
            "\nWith a cold cache an epoch's time includes building its dataset "
            "(riffledb, MDS and LitData too: connections and open tables are not timed); "
            f"median: {'; '.join(setups)}."
        )
    print()
    for system in systems:
        for mode, what in (("rows", "row"), ("loader", "DataLoader batch")):
            if sample := summary.get(f"{system}/{mode}", {}).get("sample"):
                print(f"- {LABEL[system]}'s {what}: {sample}")
    for note in notes:
        print(f"\nnote: {note}")


if __name__ == "__main__":
    main()
