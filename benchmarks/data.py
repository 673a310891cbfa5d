"""Deterministic benchmark data, written once per scale into every system's format.

``python benchmarks/data.py [--quick]`` (run.py calls :func:`ensure`). The data is
generated from a fixed numpy seed in chunks (each chunk seeded by
``[SEED, table, chunk]``, so the bytes do not depend on chunk order or machine) straight
into ``.npy`` memory maps, then streamed batch by batch from those memory maps into a
riffledb database, a LanceDB database and Hugging Face ``datasets`` Arrow cache files
(``Dataset.from_file`` memory-maps them). Nothing holds a whole table in memory: at the
full scale (2 GiB of vectors) the anonymous memory of a writer stays in the hundreds of
MiB (riffledb ~50 MiB, LanceDB ~650 MiB of its own write buffers, HF ~80 MiB).
``manifest.json`` records the parameters and a hash of the generated arrays; when it
matches, nothing is regenerated. Everything lives under ``benchmarks/data/<scale>/``
(git-ignored).

Tables: ``small`` {id int64, label int32}; ``vectors`` {id int64, label int32,
vec fixed_size_list<float32, 512>}; ``blobs`` {id int64, image binary (~100 KB)}. For
numpy, blobs are one flat uint8 array plus int64 offsets.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
# riffledb is the tree under test (python/ with the extension `make build` wrote), as for
# the worker processes (run.env()): data generation imports it in this process.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "python"))
from common import BLOB_BYTES, DIM, LABELS, SCALES, SEED, data_dir  # noqa: E402

CHUNK = {"small": 1 << 20, "vectors": 1 << 16, "blobs": 1000}
FORMAT_VERSION = 3  # bump when the layout or generator changes


def _rng(table: str, chunk: int) -> np.random.Generator:
    code = {"small": 1, "vectors": 2, "blobs": 3}[table]
    return np.random.default_rng([SEED, code, chunk])


def _generate_npy(table: str, n: int, out: Path) -> None:
    chunk = CHUNK[table]
    np.save(out / f"{table}_id.npy", np.arange(n, dtype=np.int64))
    if table in ("small", "vectors"):
        label = np.lib.format.open_memmap(
            out / f"{table}_label.npy", "w+", np.int32, (n,)
        )
        vec = None
        if table == "vectors":
            vec = np.lib.format.open_memmap(
                out / "vectors_vec.npy", "w+", np.float32, (n, DIM)
            )
        for c, start in enumerate(range(0, n, chunk)):
            stop = min(start + chunk, n)
            rng = _rng(table, c)
            label[start:stop] = rng.integers(0, LABELS, stop - start, dtype=np.int32)
            if vec is not None:
                vec[start:stop] = rng.standard_normal(
                    (stop - start, DIM), dtype=np.float32
                )
        label.flush()
        if vec is not None:
            vec.flush()
        del label, vec
        return
    # blobs: sizes vary +-10% around BLOB_BYTES, content is random bytes
    sizes = _rng(table, 1 << 30).integers(
        int(BLOB_BYTES * 0.9), int(BLOB_BYTES * 1.1), n, dtype=np.int64
    )
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    np.save(out / "blobs_offsets.npy", offsets)
    data = np.lib.format.open_memmap(
        out / "blobs_data.npy", "w+", np.uint8, (int(offsets[-1]),)
    )
    for c, start in enumerate(range(0, n, chunk)):
        stop = min(start + chunk, n)
        lo, hi = offsets[start], offsets[stop]
        data[lo:hi] = _rng(table, c).integers(0, 256, hi - lo, dtype=np.uint8)
    data.flush()
    del data


def schema(table: str) -> pa.Schema:
    fields = [pa.field("id", pa.int64(), nullable=False)]
    if table in ("small", "vectors"):
        fields.append(pa.field("label", pa.int32(), nullable=False))
    if table == "vectors":
        fields.append(pa.field("vec", pa.list_(pa.float32(), DIM), nullable=False))
    if table == "blobs":
        fields.append(pa.field("image", pa.binary(), nullable=False))
    return pa.schema(fields)


def batches(table: str, npy: Path):
    """The table as Arrow record batches, zero-copy over the .npy memory maps."""
    ids = np.load(npy / f"{table}_id.npy", mmap_mode="r")
    n = len(ids)
    chunk = CHUNK[table] if table != "small" else 1 << 20
    sch = schema(table)
    if table == "blobs":
        offsets = np.load(npy / "blobs_offsets.npy")
        data = np.load(npy / "blobs_data.npy", mmap_mode="r")
    else:
        label = np.load(npy / f"{table}_label.npy", mmap_mode="r")
        vec = (
            np.load(npy / "vectors_vec.npy", mmap_mode="r")
            if table == "vectors"
            else None
        )
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        cols = [pa.array(np.asarray(ids[start:stop]))]
        if table == "blobs":
            lo = offsets[start]
            offs = (offsets[start : stop + 1] - lo).astype(np.int32)
            values = np.asarray(data[lo : offsets[stop]])
            cols.append(
                pa.Array.from_buffers(
                    pa.binary(),
                    stop - start,
                    [None, pa.py_buffer(offs), pa.py_buffer(values)],
                )
            )
        else:
            cols.append(pa.array(np.asarray(label[start:stop])))
            if vec is not None:
                flat = pa.array(np.asarray(vec[start:stop]).reshape(-1))
                cols.append(pa.FixedSizeListArray.from_arrays(flat, DIM))
        yield pa.RecordBatch.from_arrays(cols, schema=sch)


def reader(table: str, npy: Path) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(schema(table), batches(table, npy))


def _hash(npy: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(npy.glob("*.npy")):
        arr = np.load(path, mmap_mode="r")
        flat = arr.reshape(-1).view(np.uint8)
        # First and last MiB plus a strided sample: cheap, and catches a different seed.
        h.update(path.name.encode())
        h.update(str(arr.shape).encode())
        h.update(np.asarray(flat[: 1 << 20]).tobytes())
        h.update(np.asarray(flat[-(1 << 20) :]).tobytes())
        h.update(np.asarray(flat[:: max(1, len(flat) // 4096)]).tobytes())
    return h.hexdigest()


def _write_riffledb(root: Path, tables) -> None:
    import riffledb

    db = riffledb.connect(str(root / "riffledb"))
    for table in tables:
        db.create_table(table, reader(table, root / "npy"), mode="overwrite")


def _write_lancedb(root: Path, tables) -> None:
    import lancedb

    db = lancedb.connect(str(root / "lancedb"))
    for table in tables:
        db.create_table(table, reader(table, root / "npy"), mode="overwrite")


def _write_hf(root: Path, tables) -> None:
    """Each table as one Hugging Face Arrow cache file (``hf/<table>.arrow``), written
    batch by batch with datasets' own ``ArrowWriter`` (features in the schema metadata);
    the adapter opens it with ``Dataset.from_file`` (a memory map). ``save_to_disk`` of
    an in-memory table held about 3x the data in anonymous memory."""
    import datasets
    from datasets.arrow_writer import ArrowWriter

    datasets.disable_progress_bars()
    (root / "hf").mkdir(exist_ok=True)
    for table in tables:
        path = root / "hf" / f"{table}.arrow"
        with ArrowWriter(path=str(path), writer_batch_size=CHUNK[table]) as writer:
            for batch in batches(table, root / "npy"):
                writer.write_table(pa.Table.from_batches([batch]))
            writer.finalize()


WRITERS = {"riffledb": _write_riffledb, "lancedb": _write_lancedb, "hf": _write_hf}


def ensure(scale: str, systems=("riffledb", "lancedb", "hf"), log=print) -> dict:
    """Generates (if needed) the data of ``scale`` and writes it for ``systems``; returns
    the manifest."""
    root = data_dir(scale)
    manifest_path = root / "manifest.json"
    params = {
        "format": FORMAT_VERSION,
        "seed": SEED,
        "rows": SCALES[scale],
        "dim": DIM,
        "blob_bytes": BLOB_BYTES,
        "labels": LABELS,
    }
    manifest = {}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("params") != params:
            log(f"data/{scale}: parameters changed, regenerating")
            shutil.rmtree(root)
            manifest = {}
    root.mkdir(parents=True, exist_ok=True)
    tables = list(SCALES[scale])
    if not manifest.get("npy_hash"):
        t0 = time.perf_counter()
        npy = root / "npy"
        npy.mkdir(exist_ok=True)
        for table in tables:
            _generate_npy(table, SCALES[scale][table], npy)
        manifest = {"params": params, "npy_hash": _hash(npy), "systems": {}}
        manifest_path.write_text(json.dumps(manifest, indent=2))
        log(f"data/{scale}: generated .npy in {time.perf_counter() - t0:.1f}s")
    for system in systems:
        if system == "numpy" or manifest["systems"].get(system) == manifest["npy_hash"]:
            continue
        t0 = time.perf_counter()
        target = root / system
        if target.exists():
            shutil.rmtree(target)
        WRITERS[system](root, tables)
        manifest["systems"][system] = manifest["npy_hash"]
        manifest_path.write_text(json.dumps(manifest, indent=2))
        log(f"data/{scale}: wrote {system} in {time.perf_counter() - t0:.1f}s")
    return manifest


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    ensure("quick" if args.quick else "full")
