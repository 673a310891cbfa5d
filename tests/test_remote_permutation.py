"""Permutations over remote tables (``db://``) against ``riffledb serve``: the builder,
``Permutation.from_tables``, takes, prefetching, pickling, DataLoader workers and
``StreamingDataset`` read through the same native reader as local tables
(cpp/src/riffledb/remote/client/remote_take_source.h). Every recipe is checked against
the same recipe over the same rows in a local table."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pyarrow as pa
import pytest
from harness import hang
from harness.remote_server import RiffledbServer

import riffledb
from riffledb.permutation import (
    REMOTE_READ_ROWS,
    Permutation,
    Permutations,
    permutation_builder,
)

N = 300


def _data(start: int, stop: int) -> pa.Table:
    ids = np.arange(start, stop)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "x": pa.array(ids * 0.5),
            "cat": pa.array([f"c{i % 7}" for i in ids]),
            "text": pa.array([f"row {i}" for i in ids]),
        }
    )


@pytest.fixture(scope="module")
def server():
    s = RiffledbServer("memory://")
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def tables(server):
    """The same rows, written the same way (a create and an append: two fragments),
    remotely and locally."""
    remote = riffledb.connect("db://test", api_key="", host_override=server.url)
    local = riffledb.connect("memory://")
    out = []
    for db in (remote, local):
        table = db.create_table("perm_rows", _data(0, 200))
        table.add(_data(200, N))
        out.append(table)
    remote_table, local_table = out
    return remote.open_table("perm_rows"), local_table


RECIPES = {
    "random+shuffle": lambda b: (
        b.filter("id % 3 != 0")
        .split_random(ratios=[0.7, 0.3], seed=5, split_names=["train", "test"])
        .shuffle(seed=9, clump_size=3)
    ),
    "random counts": lambda b: b.split_random(counts=[50, 120, 30], seed=1),
    "sequential+shuffle": lambda b: b.split_sequential(fixed=3).shuffle(seed=2),
    "hash": lambda b: b.split_hash(["cat"], [2, 1], discard_weight=1),
    "calculated": lambda b: b.split_calculated("id % 4", ["a", "b", "c", "d"]),
    "filter only": lambda b: b.filter("x > 20 AND cat != 'c3'"),
}


def _arrow(perm: Permutation) -> pa.Table:
    batches = list(perm.with_format("arrow").iter(37))
    return pa.Table.from_batches(batches, schema=perm.schema)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_a_recipe_gives_the_rows_and_order_it_gives_locally(tables, recipe):
    remote, local = tables
    built = {
        kind: RECIPES[recipe](permutation_builder(table)).execute()
        for kind, table in (("remote", remote), ("local", local))
    }
    assert (
        built["remote"]
        .to_arrow()
        .select(["row_id", "split_id"])
        .equals(built["local"].to_arrow().select(["row_id", "split_id"]))
    )
    remote_splits = Permutations(remote, built["remote"])
    local_splits = Permutations(local, built["local"])
    assert remote_splits.split_names == local_splits.split_names
    splits = np.unique(built["local"].to_arrow().column("split_id").to_numpy())
    for split in splits.tolist():
        r = Permutation.from_tables(remote, built["remote"], split)
        lo = Permutation.from_tables(local, built["local"], split)
        assert len(r) == len(lo)
        assert _arrow(r).equals(_arrow(lo)), (recipe, split)
        assert r.row_ids() == lo.row_ids()


def test_takes_by_offset_follow_the_request(tables):
    remote, local = tables
    perm_table = permutation_builder(remote).shuffle(seed=4).execute()
    r = Permutation.from_tables(remote, perm_table).with_skip(10).with_take(100)
    lo = Permutation.from_tables(
        local, permutation_builder(local).shuffle(seed=4).execute()
    )
    lo = lo.with_skip(10).with_take(100)
    offsets = [99, 0, 5, 5, 42]
    assert r.take_offsets(offsets) == lo.take_offsets(offsets)
    assert r[7] == lo[7]
    assert r.__getitems__([]) == []
    with pytest.raises(IndexError, match="Offset 100 at position 1"):
        r.take_offsets([0, 100])
    # Selections: renames, expressions and _rowid are evaluated by the client.
    sel = r.select_columns(["id", "_rowid"]).rename_column("id", "ident")
    assert sel.take_offsets([3]) == lo.select_columns(["id", "_rowid"]).rename_column(
        "id", "ident"
    ).take_offsets([3])
    # Identity: rows by _rowoffset, in the order asked for, relative to skip/take.
    ident = Permutation.identity(remote).with_skip(250)
    assert [row["id"] for row in ident.take_offsets([3, 0, 49])] == [253, 250, 299]
    assert ident.with_repeat(2)[50] == ident[0]


def test_formats_and_prefetch_over_remote(tables):
    remote, local = tables
    build = lambda t: permutation_builder(t).split_random(fixed=2, seed=8).execute()  # noqa: E731
    r = Permutation.from_tables(remote, build(remote), 1).with_format("numpy_dict")
    lo = Permutation.from_tables(local, build(local), 1).with_format("numpy_dict")
    plain = list(r.iter(16))
    it = r.iter(16, prefetch=4, prefetch_threads=2)
    prefetched = list(it)
    assert len(prefetched) == len(plain) == -(-len(lo) // 16)
    for a, b, c in zip(plain, prefetched, lo.iter(16), strict=True):
        for name in ("id", "x"):
            np.testing.assert_array_equal(a[name], b[name])
            np.testing.assert_array_equal(a[name], c[name])


@pytest.mark.parametrize("batch_size", [1, 7, 100, 256, 299, 300, 1024])
@pytest.mark.parametrize("skip_last", [False, True])
def test_prefetch_over_remote_coalesces_reads_into_the_same_batches(
    tables, batch_size, skip_last
):
    # A prefetched iteration over a remote table asks for about REMOTE_READ_ROWS rows
    # a request and hands them out batch by batch: the batches are the local ones.
    remote, local = tables
    perms = [
        Permutation.from_tables(t, permutation_builder(t).shuffle(seed=4).execute())
        .select_columns(["id", "text"])
        .with_format("arrow")
        for t in (remote, local)
    ]
    expected = list(perms[1].iter(batch_size, skip_last))
    it = perms[0].iter(batch_size, skip_last, prefetch=3, prefetch_threads=2)
    got = list(it)
    assert [b.to_pydict() for b in got] == [b.to_pydict() for b in expected]
    assert it.stats["batches"] == len(expected)
    assert it.stats["rows"] == sum(b.num_rows for b in expected)


@pytest.mark.parametrize(
    ("prefetch", "threads", "per_read"), [(8, 2, 4), (5, 2, 2), (4, 4, 1), (1, 2, 1)]
)
def test_coalesced_reads_ahead_carry_at_most_prefetch_batches(
    tables, prefetch, threads, per_read
):
    remote, local = tables
    r = Permutation.from_tables(remote).select_columns(["id"]).with_format("arrow")
    it = r.iter(32, prefetch=prefetch, prefetch_threads=threads)
    first = next(it)
    assert first["id"].to_pylist() == list(range(32))
    deepest = 0
    for _ in range(3):  # the reads ahead fill up while the loop waits
        time.sleep(0.2)
        deepest = max(deepest, it.stats["queued_batches"])
        next(it)
    # queued_batches counts requests of `per_read` batches each.
    assert 1 <= deepest <= prefetch // per_read
    rest = [b["id"].to_pylist() for b in it]
    assert sum(map(len, rest)) == len(r) - 4 * 32
    assert it.stats["batches"] == -(-len(r) // 32)
    assert it.stats["rows"] == len(r)
    # The requests: `per_read` batches of 32 rows each.
    assert it._prefetch.native.stats()["batches"] == -(-len(r) // (32 * per_read))


def test_coalesced_prefetch_over_remote_closes_between_batches(tables):
    remote, local = tables
    r = Permutation.from_tables(remote).with_format("numpy_dict")
    lo = Permutation.from_tables(local).with_format("numpy_dict")
    it = r.iter(64, prefetch=2)
    first = [next(it)["id"], next(it)["id"]]  # two slices of the first request
    expected = list(lo.iter(64))
    np.testing.assert_array_equal(first[0], expected[0]["id"])
    np.testing.assert_array_equal(first[1], expected[1]["id"])
    it.close()
    with pytest.raises(StopIteration):
        next(it)
    assert it.stats["batches"] == 2


def test_pickled_remote_permutation_reads_the_same_rows(tables):
    remote, _ = tables
    perm_table = permutation_builder(remote).split_random(ratios=[0.5, 0.5], seed=1)
    perm_table = perm_table.shuffle(seed=2).execute()
    perm = Permutation.from_tables(remote, perm_table, 1).select_columns(["id", "text"])
    copy = pickle.loads(pickle.dumps(perm))
    assert len(copy) == len(perm)
    assert copy.take_offsets([0, 7, 3]) == perm.take_offsets([0, 7, 3])
    assert list(copy.iter(50)) == list(perm.iter(50))
    # The copy reads the version the original pinned, whatever is appended since.
    remote.add(_data(N, N + 5))
    assert len(pickle.loads(pickle.dumps(Permutation.identity(remote)))) == N + 5
    assert pickle.loads(pickle.dumps(perm)).take_offsets([0, 7]) == perm.take_offsets(
        [0, 7]
    )
    pinned = pickle.loads(pickle.dumps(Permutation.identity(remote).with_take(3)))
    assert pinned.base_version == remote.version


def test_dataloader_workers_over_a_remote_permutation(server, tables):
    pytest.importorskip("torch")
    from harness.remote_scenarios import permutation_loader_scenarios

    outcome = hang.run_scenarios(
        permutation_loader_scenarios,
        server.url,
        "perm_rows",
        what="remote permutation DataLoader",
        timeout=120,
    )
    for context in ("fork", "spawn", "forkserver"):
        result = outcome.get(context)
        # Exactly once, and in the permutation's order (shuffle=False).
        assert result["got"] == result["expected"], context
        assert len(set(result["got"])) == len(result["got"])


def test_streaming_dataset_over_remote_two_ranks(server, tables):
    pytest.importorskip("torch")
    from harness.remote_scenarios import streaming_scenarios

    outcome = hang.run_scenarios(
        streaming_scenarios,
        server.url,
        "perm_rows",
        what="remote StreamingDataset",
        timeout=120,
    )
    rank0, rank1 = outcome.get("rank0"), outcome.get("rank1")
    total = len(
        riffledb.connect("db://test", api_key="", host_override=server.url).open_table(
            "perm_rows"
        )
    )
    per_split = total // 4
    assert len(rank0) == len(rank1) == 2 * per_split
    both = rank0 + rank1
    assert len(set(both)) == len(both)  # every row at most once
    assert len(both) == 4 * per_split


@pytest.mark.parametrize(
    "recipe",
    [
        lambda b: b.filter("nope > 1"),
        lambda b: b.filter("id >"),
        lambda b: b.split_calculated("nope % 2"),
        lambda b: b.filter("id + 'a' > 1"),
    ],
    ids=["unknown column", "syntax", "calculated split", "types"],
)
def test_a_bad_filter_or_split_is_a_value_error_as_locally(tables, recipe):
    remote, local = tables
    with pytest.raises(riffledb.errors.InvalidError) as local_error:
        recipe(permutation_builder(local)).execute()
    with pytest.raises(riffledb.errors.InvalidError) as remote_error:
        recipe(permutation_builder(remote)).execute()
    assert isinstance(remote_error.value, ValueError)
    # The server's words are the local builder's, but for the hidden columns the
    # local one lists (the calculated split also sees _rowid).
    assert str(remote_error.value).split(";")[0] == str(local_error.value).split(";")[0]
    cause = remote_error.value.__cause__
    assert isinstance(cause, riffledb.remote.errors.HttpError)
    assert cause.status_code == 400


class _Tokens:
    """A header_provider: a new token at every call, or an error once told to."""

    def __init__(self):
        self.calls = 0
        self.fail = False

    def get_headers(self):
        if self.fail:
            raise RuntimeError("token expired")
        self.calls += 1
        return {"x-token": str(self.calls)}


def test_header_provider_is_asked_before_every_permutation_read(server, tables):
    """A permutation's reads (a native source, on prefetch threads too) send the
    provider's headers of the moment, not those it gave when the reader opened."""
    import http.client
    from urllib.parse import urlsplit

    from harness.remote_server import MockServer

    upstream = urlsplit(server.url)

    def forward(request, body):
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "content-length", "connection")
        }
        conn.request(request.command, request.path, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        return answer.status, answer.getheader("Content-Type"), data

    tokens = _Tokens()
    with MockServer(forward) as proxy:
        db = riffledb.connect(
            "db://test",
            api_key="",
            host_override=proxy.url,
            client_config={"header_provider": tokens},
        )
        remote = db.open_table("perm_rows")
        perm_table = permutation_builder(remote).shuffle(seed=3).execute()
        perm = Permutation.from_tables(remote, perm_table).select_columns(["id"])
        perm = perm.with_format("numpy_dict")
        first = len(proxy.requests)
        batches = [b["id"] for b in perm.iter(100, prefetch=4, prefetch_threads=2)]
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(perm)))
        sent = [int(h["x-token"]) for _, _, h, _ in proxy.requests]
        # Every request carried a token, each a fresh one.
        assert len(sent) == tokens.calls
        assert sorted(sent) == list(range(1, tokens.calls + 1))
        # Prefetched reads are coalesced: up to REMOTE_READ_ROWS // 100 batches a
        # request, and no more than prefetch // prefetch_threads = 2.
        per_request = 100 * min(4 // 2, REMOTE_READ_ROWS // 100)
        assert per_request == 200
        assert len(proxy.requests) - first == -(-len(perm) // per_request)
        tokens.fail = True
        with pytest.raises(ValueError, match="header_provider.*token expired"):
            perm.take_offsets([0])


_FACTORY_CALLS: list[str] = []


def _open_remote(url: str, name: str):
    _FACTORY_CALLS.append(name)
    db = riffledb.connect("db://test", api_key="secret-key", host_override=url)
    return db.open_table(name)


def _open_local(name: str):
    return riffledb.connect("memory://").create_table(name, _data(0, 3))


def test_a_connection_factory_reopens_a_remote_base(server, tables):
    """With a factory, a remote permutation pickles without its connection (no API
    key in the bytes) and the factory gives the base on first use."""
    import functools

    remote, _ = tables
    db = riffledb.connect("db://test", api_key="secret-key", host_override=server.url)
    base = db.open_table("perm_rows")
    perm_table = permutation_builder(base).split_random(fixed=2, seed=6).execute()
    perm = Permutation.from_tables(base, perm_table, 1).with_connection_factory(
        functools.partial(_open_remote, server.url)
    )
    state = perm.__getstate__()
    assert "base_table_state" not in state and state["base_remote"] is True
    data = pickle.dumps(perm)
    assert b"secret-key" not in data
    _FACTORY_CALLS.clear()
    copy = pickle.loads(data)
    assert _FACTORY_CALLS == []  # called on first use, not when unpickled
    assert copy.take_offsets([0, 5, 2]) == perm.take_offsets([0, 5, 2])
    assert list(copy.iter(40)) == list(perm.iter(40))
    assert _FACTORY_CALLS == ["perm_rows"]
    assert copy.base_version == perm.base_version
    # A factory that gives a local table for a remote base is refused by name.
    wrong = pickle.loads(pickle.dumps(perm.with_connection_factory(_open_local)))
    with pytest.raises(
        TypeError, match=r"connection_factory\('perm_rows'\) must return a remote"
    ):
        len(wrong)
