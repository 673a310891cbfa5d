"""Shared helpers of the benchmark harness: paths, scales, /proc readers, torch batches.

Everything here is importable without the peers installed, so the orchestrator can import
it before it knows which systems are present.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data"
RESULTS = HERE / "results"
DOCS = REPO / "docs" / "benchmarks"

SEED = 20240611
SPLIT_RATIOS = [0.8, 0.1, 0.1]
SPLIT_NAMES = ["train", "val", "test"]
HASH_WEIGHTS = [8, 1, 1]
FILTER = "label % 10 != 0"
# LanceDB 0.40's permutation builder sorts by split in a DataFusion session whose memory
# pool defaults to 100 MB, and fails at 3M rows and up ("Not enough memory to continue
# external sort"). It reads this variable (bytes) when a build runs; 2 GiB lets it build
# the 10M-row `small` table. run.env() sets it for every worker unless it is already set.
LANCEDB_MEMORY_VAR = "LANCEDB_PERM_BUILDER_MEMORY_LIMIT"
LANCEDB_MEMORY_LIMIT = 2 << 30

# Row counts. "full" is the data set; "quick" (make bench QUICK=1) keeps every
# workload and shape but shrinks the data so the whole run stays under five minutes.
SCALES = {
    "full": {"small": 10_000_000, "vectors": 1_000_000, "blobs": 20_000},
    "quick": {"small": 500_000, "vectors": 20_000, "blobs": 1_000},
}
DIM = 512
BLOB_BYTES = 100 * 1024  # mean image size; sizes vary +-10%
LABELS = 100


def data_dir(scale: str) -> Path:
    return DATA / scale


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile, RssShmem of a process, in bytes ({} if gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                    out[key] = int(rest.split()[0]) * 1024
    except OSError:
        return {}
    return out


def proc_pss(pid: int | str = "self") -> dict[str, int]:
    """Proportional set size (shared pages divided among their users) of a process from
    /proc/PID/smaps_rollup, in bytes: ``Pss`` and its ``Pss_Anon`` (heap), ``Pss_File``
    (memory-mapped files: the page cache of data read through a memory map counts here)
    and ``Pss_Shmem`` parts ({} if gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("Pss", "Pss_Anon", "Pss_File", "Pss_Shmem"):
                    out[key] = int(rest.split()[0]) * 1024
    except OSError:
        return {}
    return out


def reset_peak_rss() -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "memory_bytes": mem,
        "python": platform.python_version(),
    }


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        rev = "unknown"
    return rev


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)


# -- torch batches -----------------------------------------------------------------------
# The DataLoader and "torch" take workloads turn each system's batch into the same
# thing: a dict of batch-first tensors (id (B,), label (B,), vec (B, 512)). Module-level
# so that the datasets holding them pickle for spawn workers.


def _to_numpy(array):
    """A numpy array of an Arrow array: a zero-copy view (``np.frombuffer`` on the data
    buffer) for a primitive array without nulls, else ``to_numpy``. The view matters in a
    fresh process: pyarrow's ``to_numpy`` imports pandas on first use (~0.6 s), which
    would be charged to whichever system's first batch happens to call it first."""
    import numpy as np
    import pyarrow as pa

    t = array.type
    if (
        array.null_count == 0
        and pa.types.is_primitive(t)
        and not pa.types.is_boolean(t)
        and len(array)
    ):
        dtype = np.dtype(t.to_pandas_dtype())
        return np.frombuffer(
            array.buffers()[1],
            dtype=dtype,
            count=len(array),
            offset=array.offset * dtype.itemsize,
        )
    return array.to_numpy(zero_copy_only=False)


def arrow_to_torch(batch):
    """A pa.RecordBatch / pa.Table -> dict of batch-first tensors (zero-copy where Arrow
    allows: numeric columns without nulls and fixed-size lists of them)."""
    import pyarrow as pa
    import torch

    out = {}
    for name, column in zip(batch.column_names, batch.columns, strict=True):
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if pa.types.is_fixed_size_list(column.type):
            width = column.type.list_size
            values = _to_numpy(column.flatten())
            out[name] = torch.from_numpy(values.reshape(-1, width))
        elif pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            out[name] = column.to_pylist()
        else:
            out[name] = torch.from_numpy(_to_numpy(column))
    return out


def identity(batch):
    """collate_fn for datasets whose __getitems__ already returns a whole batch."""
    return batch


def mark_worker_start(directory: str, worker_id: int) -> None:
    """worker_init_fn (with functools.partial): records when this DataLoader worker is
    ready (perf_counter is CLOCK_MONOTONIC on Linux, comparable across processes)."""
    import time

    t = time.perf_counter()
    with open(os.path.join(directory, f"{worker_id}-{os.getpid()}"), "w") as f:
        f.write(repr(t))


def describe(batch) -> dict:
    """column -> "dtype shape" of a dict of tensors (or a summary of anything else)."""
    if isinstance(batch, dict):
        return {
            k: f"{getattr(v, 'dtype', type(v).__name__)} {tuple(getattr(v, 'shape', ()))}"
            for k, v in batch.items()
        }
    return {"type": type(batch).__name__}


# -- reading what a take returned -----------------------------------------------------
# The "+read" take cells read the bytes a blobs take returned, the same work for every
# system: one byte of every 4 KiB page of every image, summed, one image at a time (a
# numpy strided sum per image, whatever the system's layout: one contiguous buffer, a
# chunk per row, or views), as a training step decoding images one by one would. A
# zero-copy result (HF datasets' slices of its memory map, riffledb's binary views) is
# then charged for the page-cache reads it deferred; a copying one paid them in the take.

PAGE = 4096
# The 16-byte layout of Arrow's binary_view: size, 4-byte prefix, buffer index, offset.
_VIEW = [("size", "<i4"), ("prefix", "V4"), ("buffer", "<i4"), ("offset", "<i4")]


def _values(np, pa, array, arrays: dict):
    """(numpy uint8 array, start, size) of every value of a binary array, zero-copy.
    ``arrays`` caches the numpy array of each buffer by address: HF's take returns one
    chunk per row, all slices of the same few buffers."""

    def wrap(buffer, dtype=np.uint8):
        if buffer is None:
            return None
        key = (buffer.address, buffer.size, dtype)
        if key not in arrays:
            arrays[key] = np.frombuffer(buffer, dtype=dtype)
        return arrays[key]

    buffers = array.buffers()
    n, offset = len(array), array.offset
    if pa.types.is_binary_view(array.type):
        views = np.frombuffer(buffers[1], dtype=_VIEW)[offset : offset + n]
        data = [wrap(b) for b in buffers[2:]]
        raw = np.frombuffer(buffers[1], np.uint8)
        for i, (size, _, buffer, start) in enumerate(views.tolist()):
            if size <= 12:  # inline: the bytes follow the size in the view itself
                yield raw, (offset + i) * 16 + 4, size
            else:
                yield data[buffer], start, size
        return
    width = np.int64 if pa.types.is_large_binary(array.type) else np.int32
    offsets = wrap(buffers[1], width)[offset : offset + n + 1].tolist()
    data = wrap(buffers[2])
    for start, stop in zip(offsets[:-1], offsets[1:], strict=True):
        yield data, start, stop - start


def read_blob_pages(out) -> int:
    """Reads one byte per 4 KiB page of every image a blobs take returned: an Arrow
    table or batch with an ``image`` column (binary, large_binary or binary_view), or
    numpy's dict (``image``: the concatenated bytes, ``sizes``)."""
    import numpy as np
    import pyarrow as pa

    if isinstance(out, dict):
        sizes = out["sizes"].tolist()
        starts = np.cumsum([0] + sizes[:-1]).tolist()
        values = (
            (out["image"], start, size) for start, size in zip(starts, sizes, strict=True)
        )
    else:
        column = out.column("image")
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        arrays: dict = {}
        values = (v for chunk in chunks for v in _values(np, pa, chunk, arrays))
    total = 0
    for data, start, size in values:
        if size:
            total += int(data[start : start + size : PAGE].sum(dtype=np.uint64))
    return total
