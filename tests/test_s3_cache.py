"""s3:// reads through the local block cache (io/file_cache.h, format/lazy_fragment.h).

On moto's S3 (harness.s3_server): a take fetches only the blocks of the rows it reads
and a second take nothing; another process finds them in the cache (and one with an
empty cache fetches again); scans and filters are exact; a damaged cached block is
detected by its CRC-32C in a new process and fetched again; the cache stays within
``cache_size`` by deleting the least recently opened files; bad cache options are
refused naming the option; processes fill one cache together; and DataLoader workers
under fork, spawn and forkserver read every row once while threads of their parent read
the same table. Children run under the hang detector (harness.hang). Exact expectations
only, never timings.
"""

from __future__ import annotations

import collections
import multiprocessing as mp
import os
import time
import uuid

import numpy as np
import pytest

pytest.importorskip("moto", reason="the s3:// tests need moto[server] (requirements-dev)")
pytest.importorskip("boto3", reason="the s3:// tests need boto3 (requirements-dev)")

from harness import s3_cache_scenarios as scenarios  # noqa: E402
from harness.hang import Child, run_in_child  # noqa: E402
from harness.s3_cache_scenarios import rows  # noqa: E402
from harness.s3_server import BUCKET, S3Server  # noqa: E402

import riffledb  # noqa: E402
from riffledb.errors import InvalidError  # noqa: E402

BIG_ROWS = 40_000  # one fragment of ~11 MB: 40k x (8 + 256 + ~18 bytes)
BLOCK = 64 << 10  # the cache's block
META_HEADER = 136  # bytes before the .meta file's (state, crc) pairs
BOOT_ID_AT = 96  # the header's boot id: the boot its checked blocks were checked in
ABSENT = 0
# Scattered over the fragment, most of them more than 1 MiB of vec (4096 rows) apart, so
# that most of the file lies in gaps too large to coalesce and is not fetched.
OFFSETS = [31_337, 5, 9_001, 39_999, 14_250, 20_480, 25_600, 4_200]


@pytest.fixture(scope="module")
def s3():
    server = S3Server()
    yield server
    server.stop()


def new_uri() -> tuple[str, str]:
    prefix = f"db-{uuid.uuid4().hex[:12]}"
    return prefix, f"s3://{BUCKET}/{prefix}"


@pytest.fixture(scope="module")
def big(s3, tmp_path_factory):
    """``(uri, prefix, key, size)`` of table ``t`` and its one fragment file: rows(0..40k)
    written by one create_table (one fragment, one record batch), through a cache of
    its own that the tests never use."""
    prefix, uri = new_uri()
    options = s3.storage_options(cache_dir=str(tmp_path_factory.mktemp("writer-cache")))
    riffledb.connect(uri, storage_options=options).create_table(
        "t", rows(np.arange(BIG_ROWS))
    )
    fragments = [k for k in s3.keys(f"{prefix}/t.riffle/data/") if k.endswith(".arrow")]
    assert len(fragments) == 1, fragments
    size = s3.client.head_object(Bucket=BUCKET, Key=fragments[0])["ContentLength"]
    return uri, prefix, fragments[0], size


def cache_files(cache_dir) -> list[str]:
    return sorted(os.listdir(cache_dir))


def the_pair(cache_dir) -> tuple[str, str]:
    """The .data and .meta paths of the one cached file in ``cache_dir``."""
    names = cache_files(cache_dir)
    assert len(names) == 2 and names[0].endswith(".data"), names
    assert names[1] == names[0][: -len(".data")] + ".meta", names
    return (os.path.join(cache_dir, names[0]), os.path.join(cache_dir, names[1]))


def present_blocks(meta_path: str) -> list[int]:
    with open(meta_path, "rb") as f:
        meta = f.read()
    pairs = np.frombuffer(meta[META_HEADER:], dtype="<u4").reshape(-1, 2)
    return np.nonzero(pairs[:, 0] != ABSENT)[0].tolist()


def as_after_a_reboot(meta_path: str) -> None:
    """Makes the cache look checked in another boot of the machine: its blocks are then
    checked against their CRC again when read (within a boot they are checked once)."""
    with open(meta_path, "r+b") as f:
        f.seek(BOOT_ID_AT)
        f.write(b"another-boot".ljust(40, b"\0"))


def object_bytes(s3, key: str) -> bytes:
    return s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


# -- 1. ranged takes ---------------------------------------------------------------------


def test_take_fetches_only_the_blocks_of_its_rows(s3, big, tmp_path):
    uri, _, key, size = big
    cache = str(tmp_path / "cache")
    riffledb.io_stats(reset=True)
    table = riffledb.connect(
        uri, storage_options=s3.storage_options(cache_dir=cache)
    ).open_table("t")
    opened = riffledb.io_stats(reset=True)  # the footer and the batch metadata, if any
    got = table.take_offsets(OFFSETS).to_arrow()
    assert got.equals(rows(OFFSETS))
    stats = riffledb.io_stats(reset=True)
    assert stats["requests"] >= 1
    assert stats["corrupt_blocks"] == 0
    assert 0 < stats["bytes"] < 0.3 * size, (stats, size)
    # What the cache holds was fetched, and is the object's bytes.
    data_path, meta_path = the_pair(cache)
    present = present_blocks(meta_path)
    held = sum(min(BLOCK, size - b * BLOCK) for b in present)
    assert 0 < held <= opened["bytes"] + stats["bytes"]
    remote = object_bytes(s3, key)
    with open(data_path, "rb") as f:
        local = f.read()
    assert len(local) == len(remote) == size
    for b in present:
        assert local[b * BLOCK : (b + 1) * BLOCK] == remote[b * BLOCK : (b + 1) * BLOCK]

    # The same rows again, and some of them in another order: nothing is fetched.
    assert table.take_offsets(OFFSETS).to_arrow().equals(rows(OFFSETS))
    assert table.take_offsets(OFFSETS[::-2]).to_arrow().equals(rows(OFFSETS[::-2]))
    assert riffledb.io_stats(reset=True) == {
        "requests": 0,
        "bytes": 0,
        "corrupt_blocks": 0,
        "shared_blocks": 0,
    }
    assert present_blocks(meta_path) == present


# -- 2. a warm cache across processes ----------------------------------------------------


def test_another_process_finds_the_rows_in_the_cache(s3, big, tmp_path):
    uri, _, _, _ = big
    warm = s3.storage_options(cache_dir=str(tmp_path / "warm"))
    table = riffledb.connect(uri, storage_options=warm).open_table("t")
    assert table.take_offsets(OFFSETS).to_arrow().equals(rows(OFFSETS))

    cold = s3.storage_options(cache_dir=str(tmp_path / "cold"))
    children = {
        name: Child(
            scenarios.take_scenarios,
            uri,
            options,
            "t",
            OFFSETS,
            what=f"a take through the {name} cache",
            timeout=60,
        )
        for name, options in (("warm", warm), ("cold", cold))
    }
    warm_result = children["warm"].outcome().get("take")
    cold_result = children["cold"].outcome().get("take")
    assert warm_result["pid"] != os.getpid()
    assert warm_result["mismatch"] is None
    # Its open (footer and batch metadata) and its take: all from the cache.
    assert warm_result["stats"] == {
        "requests": 0,
        "bytes": 0,
        "corrupt_blocks": 0,
        "shared_blocks": 0,
    }
    assert cold_result["mismatch"] is None
    assert cold_result["stats"]["requests"] > 0
    assert cold_result["stats"]["corrupt_blocks"] == 0


# -- 3. scans and filters ----------------------------------------------------------------


def test_scan_and_filter_through_the_cache(s3, big, tmp_path):
    uri, _, _, size = big
    source = rows(np.arange(BIG_ROWS))
    options = s3.storage_options(cache_dir=str(tmp_path / "cache"))
    table = riffledb.connect(uri, storage_options=options).open_table("t")

    # One column: the scan fetches that column, not the file.
    riffledb.io_stats(reset=True)
    ids = table.search().select(["id"]).to_arrow()["id"].to_pylist()
    assert ids == list(range(BIG_ROWS))
    stats = riffledb.io_stats(reset=True)
    assert stats["requests"] >= 1
    assert stats["bytes"] < 0.1 * size, (stats, size)
    # A filter on that column reads nothing else.
    assert table.count_rows("id % 7 = 3") == sum(1 for i in range(BIG_ROWS) if i % 7 == 3)
    assert riffledb.io_stats(reset=True)["requests"] == 0

    assert table.to_arrow().equals(source)
    assert riffledb.io_stats(reset=True)["requests"] >= 1
    assert table.to_arrow().equals(source)
    assert table.count_rows() == BIG_ROWS
    assert table.count_rows("id % 7 = 3") == sum(1 for i in range(BIG_ROWS) if i % 7 == 3)
    lengths = source["s"].to_pylist()
    assert table.count_rows("s = ''") == lengths.count("")
    filtered = table.search().where("id >= 39990 OR id < 3").to_arrow()
    assert filtered.equals(rows([0, 1, 2, *range(39_990, BIG_ROWS)]))
    assert riffledb.io_stats(reset=True) == {
        "requests": 0,
        "bytes": 0,
        "corrupt_blocks": 0,
        "shared_blocks": 0,
    }

    # A fresh connection on the same cache scans without fetching either.
    again = riffledb.connect(uri, storage_options=options).open_table("t")
    assert again.count_rows("id % 7 = 3") == table.count_rows("id % 7 = 3")
    assert again.to_arrow().equals(source)
    assert riffledb.io_stats(reset=True)["requests"] == 0


# -- 4. a damaged cache ------------------------------------------------------------------


def test_damaged_blocks_are_detected_and_fetched_again(s3, big, tmp_path):
    """One byte flipped in every cached block (footer, metadata, rows), as after a
    reboot (within a boot a block is checked once, when fetched): a new process
    taking the same rows finds the damage of the blocks it reads by their CRC and fetches
    them again; the blocks it does not need (fetched before only to fill a gap between
    two requests) are found by the next process that reads them, here a full scan. In
    the end every block was reported once and the cache holds the object's bytes."""
    uri, _, key, size = big
    cache = str(tmp_path / "cache")
    options = s3.storage_options(cache_dir=cache)
    table = riffledb.connect(uri, storage_options=options).open_table("t")
    assert table.take_offsets(OFFSETS).to_arrow().equals(rows(OFFSETS))
    data_path, meta_path = the_pair(cache)
    damaged = present_blocks(meta_path)
    assert damaged
    with open(data_path, "r+b") as f:
        for b in damaged:
            at = b * BLOCK + min(1000, size - 1 - b * BLOCK)
            f.seek(at)
            byte = f.read(1)
            f.seek(at)
            f.write(bytes([byte[0] ^ 0x5A]))
    assert os.path.getsize(data_path) == size
    as_after_a_reboot(meta_path)

    result = run_in_child(
        scenarios.take, uri, options, "t", OFFSETS, what="a take from a damaged cache"
    )
    assert result["mismatch"] is None
    assert result["stats"]["corrupt_blocks"] >= 1
    assert result["stats"]["requests"] >= 1

    scan = run_in_child(
        scenarios.scan, uri, options, "t", BIG_ROWS, what="a scan of a damaged cache"
    )
    assert scan["mismatch"] is None
    assert result["stats"]["corrupt_blocks"] + scan["stats"]["corrupt_blocks"] == len(
        damaged
    )
    remote = object_bytes(s3, key)
    with open(data_path, "rb") as f:
        local = f.read()
    for b in damaged:
        assert local[b * BLOCK : (b + 1) * BLOCK] == remote[b * BLOCK : (b + 1) * BLOCK]


# -- 5. eviction -------------------------------------------------------------------------


def test_a_one_byte_cache_keeps_only_the_file_just_opened(s3, tmp_path):
    _, uri = new_uri()
    writer = riffledb.connect(
        uri, storage_options=s3.storage_options(cache_dir=str(tmp_path / "writer"))
    )
    writer.create_table("a", rows(np.arange(5000)))
    writer.create_table("b", rows(np.arange(5000, 10_000)))

    cache = tmp_path / "cache"
    options = s3.storage_options(cache_dir=str(cache), cache_size="1")
    db = riffledb.connect(uri, storage_options=options)
    a = db.open_table("a")
    assert a.to_arrow().equals(rows(np.arange(5000)))
    first = cache_files(cache)
    assert len(first) == 2, first
    b = db.open_table("b")
    assert b.to_arrow().equals(rows(np.arange(5000, 10_000)))
    second = cache_files(cache)
    assert len(second) == 2, second
    assert not set(first) & set(second)  # a's pair deleted, b's (just opened) kept
    assert {n.rsplit(".", 1)[1] for n in second} == {"data", "meta"}
    # The table whose files were deleted still reads them (its maps of the unlinked
    # files) without fetching or recreating anything.
    riffledb.io_stats(reset=True)
    assert a.take_offsets([4999, 0, 2500]).to_arrow().equals(rows([4999, 0, 2500]))
    assert riffledb.io_stats(reset=True)["requests"] == 0
    assert cache_files(cache) == second

    # A table that was evicted reads right: a new connection fetches it again.
    riffledb.io_stats(reset=True)
    again = riffledb.connect(uri, storage_options=options).open_table("a")
    assert again.to_arrow().equals(rows(np.arange(5000)))
    assert riffledb.io_stats(reset=True)["requests"] >= 1
    assert cache_files(cache) == first


def pair_bytes(cache_dir) -> int:
    """Disk the cache's files use, as the cache counts it (allocated blocks)."""
    return sum(
        os.stat(os.path.join(cache_dir, n)).st_blocks * 512
        for n in cache_files(cache_dir)
    )


def test_the_least_recently_opened_file_goes_first(s3, tmp_path):
    """A cache with room for two of three equal tables: a, b, a again (reopened by a new
    connection, nothing fetched), then c. b, opened least recently, is deleted; a stays.
    The pauses only separate the files' timestamps (the kernel's clock is coarse)."""
    _, uri = new_uri()
    writer = riffledb.connect(
        uri, storage_options=s3.storage_options(cache_dir=str(tmp_path / "writer"))
    )
    for k, name in enumerate("abc"):
        writer.create_table(name, rows(np.arange(5000 * k, 5000 * (k + 1))))
    # One table's cached size, measured in a cache of its own.
    probe = tmp_path / "probe"
    riffledb.connect(
        uri, storage_options=s3.storage_options(cache_dir=str(probe))
    ).open_table("a").to_arrow()
    one = pair_bytes(probe)

    cache = tmp_path / "cache"
    options = s3.storage_options(cache_dir=str(cache), cache_size=str(int(2.5 * one)))

    def read(name: str) -> set[str]:
        before = set(cache_files(cache)) if cache.exists() else set()
        table = riffledb.connect(uri, storage_options=options).open_table(name)
        k = "abc".index(name)
        assert table.to_arrow().equals(rows(np.arange(5000 * k, 5000 * (k + 1))))
        time.sleep(0.05)
        return set(cache_files(cache)) - before

    a, b = read("a"), read("b")
    assert len(a) == len(b) == 2 and not a & b
    assert read("a") == set()  # all cached: nothing new
    c = read("c")
    assert len(c) == 2
    assert set(cache_files(cache)) == a | c


# -- 6. bad options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("cache_size", "10GB"),
        ("cache_size", "-1"),
        ("cache_size", ""),
        ("cache_size", "1e9"),
        ("cache_dir", ""),
    ],
)
def test_bad_cache_options_are_refused(s3, tmp_path, option, value):
    _, uri = new_uri()
    options = s3.storage_options(cache_dir=str(tmp_path / "cache"))
    options[option] = value
    with pytest.raises(InvalidError, match=f"'{option}'"):
        riffledb.connect(uri, storage_options=options).create_table("t", rows([0]))


def test_a_cache_dir_that_is_a_file_is_an_error_naming_it(s3, big, tmp_path):
    uri, _, _, _ = big
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    options = s3.storage_options(cache_dir=str(not_a_dir))
    with pytest.raises(OSError, match="is not a directory") as failure:
        riffledb.connect(uri, storage_options=options).open_table("t").take_offsets(
            [0]
        ).to_arrow()
    assert str(not_a_dir) in str(failure.value)
    assert not_a_dir.read_text() == "x"


# -- 7. processes sharing one cache ------------------------------------------------------


def test_processes_fill_one_cache_together(s3, big, tmp_path):
    """Two processes take disjoint halves of the rows at once, each in 20 takes of
    shuffled offsets: alternate stripes of 5000 rows, so that they race for the blocks
    of the small columns (id, string offsets and values) while each must fetch the vec
    blocks of its own stripes (1.28 MB of vec apart, more than a coalescing gap). A third
    process then takes every row without a request."""
    uri, _, _, _ = big
    options = s3.storage_options(cache_dir=str(tmp_path / "shared"))
    go = mp.get_context("spawn").Event()
    rng = np.random.default_rng(7)
    stripes = np.arange(BIG_ROWS).reshape(8, BIG_ROWS // 8)
    halves = []
    for parity in (0, 1):
        offsets = stripes[parity::2].reshape(-1).copy()
        rng.shuffle(offsets)
        halves.append([c.tolist() for c in np.array_split(offsets, 20)])
    readers = [
        Child(
            scenarios.take_after_go,
            uri,
            options,
            "t",
            halves[k],
            go,
            what=f"reader of half {k}",
            timeout=120,
        )
        for k in (0, 1)
    ]
    go.set()
    results = [r.outcome().get("take") for r in readers]
    for result in results:
        assert result["problems"] == []
        assert result["stats"]["requests"] >= 1
        assert result["stats"]["corrupt_blocks"] == 0
    assert results[0]["pid"] != results[1]["pid"]

    every = run_in_child(
        scenarios.take,
        uri,
        options,
        "t",
        list(range(BIG_ROWS)),
        what="a take of every row from the shared cache",
    )
    assert every["mismatch"] is None
    assert every["stats"] == {
        "requests": 0,
        "bytes": 0,
        "corrupt_blocks": 0,
        "shared_blocks": 0,
    }


# -- 8. DataLoader workers ---------------------------------------------------------------

METHODS = ["fork", "spawn", "forkserver"]
DL_FRAGMENT = 8000  # rows: 2.3 MB, so opening it (footer, metadata) fetches no rows
DL_FRAGMENTS = 3


@pytest.fixture(scope="module")
def dataloader_outcome(s3, tmp_path_factory):
    """One spawn child runs the scenario of each start method in turn (one torch import),
    each with a fresh cache directory; it starts on first use."""
    pytest.importorskip("torch")
    if not all(m in mp.get_all_start_methods() for m in METHODS):
        pytest.skip("needs fork, spawn and forkserver (Linux)")
    _, uri = new_uri()
    writer = riffledb.connect(
        uri,
        storage_options=s3.storage_options(
            cache_dir=str(tmp_path_factory.mktemp("dl-writer"))
        ),
    )
    table = writer.create_table("dl", rows(np.arange(DL_FRAGMENT)))
    for k in range(1, DL_FRAGMENTS):
        table.add(rows(np.arange(k * DL_FRAGMENT, (k + 1) * DL_FRAGMENT)))
    options = s3.storage_options(cache_dir=str(tmp_path_factory.mktemp("dl-caches")))
    child = Child(
        scenarios.dataloader_scenarios,
        uri,
        options,
        "dl",
        DL_FRAGMENT,
        METHODS,
        what="DataLoader workers reading s3:// through the cache",
        timeout=120,
    )
    yield child.outcome()
    child.close()


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_dataloader_workers_read_every_row_while_the_parent_reads(
    dataloader_outcome, method
):
    """torch DataLoader workers (2, shuffled) read an s3:// Permutation with a fresh
    cache while the parent process has two threads reading the same table: one through
    the very Table (and cached files) the workers inherit or reopen, one through new
    connections with empty caches, whose takes keep requests in flight (the fork may
    land inside one)."""
    result = dataloader_outcome.get(method)
    n = DL_FRAGMENT * DL_FRAGMENTS
    assert result["rows"] == n
    counts = collections.Counter(result["ids"])
    assert sorted(counts) == list(range(n)), "rows missing or foreign"
    assert [i for i, c in counts.items() if c != 1] == [], "rows delivered twice"
    assert result["mismatch"] is None
    assert len(result["pids"]) == 2 and result["parent"] not in result["pids"]
    assert result["workers"] == [0, 1]
    # The workers fetched the fragments the parent never read.
    assert result["worker_requests"] > 0
    assert result["reads"]["same"] >= 1 and result["reads"]["fresh"] >= 1


# -- 6. reading ahead: the native prefetcher and StreamingDataset on s3:// ---------------


def test_prefetched_iteration_and_streaming_read_s3_through_the_cache(s3, big, tmp_path):
    from riffledb.permutation import Permutation, permutation_builder
    from riffledb.streaming import StreamingDataset

    uri, _, _, size = big
    table = riffledb.connect(
        uri, storage_options=s3.storage_options(cache_dir=str(tmp_path / "cache"))
    ).open_table("t")
    perm = permutation_builder(table).shuffle(seed=4).execute()
    p = Permutation.from_tables(table, perm).with_format("arrow").with_take(3000)
    riffledb.io_stats(reset=True)
    it = p.iter(500, prefetch=3)
    batches = list(it)
    expected = p.row_ids().to_pylist()
    assert [b.num_rows for b in batches] == [500] * 6
    ids = [v for b in batches for v in b.column("id").to_pylist()]
    assert ids == expected
    assert pa_table(batches).equals(rows(expected))
    cold = riffledb.io_stats(reset=True)
    assert cold["requests"] > 0 and cold["corrupt_blocks"] == 0
    assert it.stats["io_s"] > 0 and it.stats["rows"] == 3000
    # Again: every byte is in the cache now.
    assert [v for b in p.iter(500, prefetch=3) for v in b.column("id").to_pylist()] == ids
    assert riffledb.io_stats(reset=True)["requests"] == 0

    ds = StreamingDataset(table, num_splits=8, shuffle_seed=2, columns=["id"])
    streamed = [row["id"] for row in ds]
    assert sorted(streamed) == list(range(BIG_ROWS))
    assert ds.bytes_loaded > 0 and ds.fetch_time > 0


def pa_table(batches):
    import pyarrow as pa

    return pa.Table.from_batches(batches)
