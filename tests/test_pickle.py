"""Permutations pickle without native handles (spawn / forkserver DataLoader workers).

Sizes (compact split row ids, nothing per base row for a directory table), laziness (no
I/O when unpickling), version pinning across pickling, the memory:// row-id regression
(spec §8 #7), connection factories, formats and repeated round trips. The torch
DataLoader end-to-end tests are in test_torch.py.
"""

import copy
import functools
import os
import pickle

import numpy as np
import pyarrow as pa
import pytest
from harness.data import all_rows, open_table
from harness.hang import run_in_child
from harness.pickle_scenarios import read_unpickled

import riffledb
from riffledb.permutation import (
    Permutation,
    Permutations,
    Transforms,
    permutation_builder,
)

FORMATS = [
    "python",
    "python_col",
    "numpy",
    "pandas",
    "arrow",
    "polars",
    "torch",
    "torch_row",
    "torch_col",
]


def roundtrip(obj):
    return pickle.loads(pickle.dumps(obj))


def data(n, start=0):
    return pa.table(
        {
            "id": pa.array(range(start, start + n), pa.int64()),
            "x": pa.array([float(i) for i in range(start, start + n)], pa.float32()),
        }
    )


def split_80_20(table, seed=1):
    perm = (
        permutation_builder(table)
        .split_random(ratios=[0.8, 0.2], seed=seed, split_names=["train", "test"])
        .shuffle(seed=seed)
        .execute()
    )
    return Permutations(table, perm)


# Module-level, so that pickle resolves them by name.
def _refusing_factory(name: str):
    raise RuntimeError(f"factory called for {name}")


def _not_a_table_factory(name: str):
    return {"name": name}


def _double_ids(batch: pa.RecordBatch):
    return [2 * v for v in batch.column("id").to_pylist()]


# -- sizes -------------------------------------------------------------------------------


def test_identity_over_local_table_is_small_and_does_not_grow(tmp_db):
    table = tmp_db.create_table("t", data(100_000))
    small = pickle.dumps(Permutation.identity(table))
    assert len(small) < 4096
    table.add(data(900_000, start=100_000))  # 10x
    large = pickle.dumps(Permutation.identity(table))
    assert len(table) == 1_000_000
    assert len(large) == len(small)
    assert len(roundtrip(Permutation.identity(table))) == 1_000_000


def hand_made_split(table, seed=1):
    """The train split of a permutation table written by hand (no builder recipe)."""
    built = (
        permutation_builder(table)
        .split_random(ratios=[0.8, 0.2], seed=seed, split_names=["train", "test"])
        .execute()
        .to_arrow()
    )
    names = {b"split_names": b'["train","test"]'}
    return Permutations(
        table,
        riffledb.connect("memory://").create_table(
            "perm", built.replace_schema_metadata(names)
        ),
    )


def test_split_built_by_the_builder_pickles_as_its_recipe(tmp_db):
    table = tmp_db.create_table("t", data(100_000))
    splits = split_80_20(table)
    train, test = splits["train"], splits["test"]
    sizes = [len(pickle.dumps(p)) for p in (train, test)]
    assert max(sizes) < 1024  # not 8 bytes per row: the recipe, whatever the split size
    assert roundtrip(train).row_ids().to_pylist() == train.row_ids().to_pylist()
    assert all_rows(roundtrip(test)) == all_rows(test)
    table.add(data(900_000, start=100_000))  # 10x base rows: a new build, same size
    bigger = split_80_20(tmp_db.open_table("t"))["train"]
    assert len(bigger) == 800_000
    assert abs(len(pickle.dumps(bigger)) - sizes[0]) <= 8  # digits of the version/seeds
    restored = roundtrip(bigger)
    assert restored.row_ids().to_pylist() == bigger.row_ids().to_pylist()
    # Skip/take are kept as numbers.
    window = test.with_skip(100).with_take(10)
    state = window.__getstate__()
    assert (state["offset"], state["limit"]) == (100, 10)
    assert set(state["permutation_data"]) == {"recipe", "digest", "split_names"}
    restored = roundtrip(window)
    assert len(restored) == 10
    assert all_rows(restored) == all_rows(window)


def test_seedless_builds_pickle_as_a_recipe_with_the_drawn_seeds(tmp_db):
    table = tmp_db.create_table("t", data(5000))
    perm = (
        permutation_builder(table)
        .split_random(ratios=[0.5, 0.5])
        .shuffle(clump_size=3)
        .execute()
    )
    first = Permutations(table, perm)[0]
    state = first.__getstate__()
    assert "recipe" in state["permutation_data"]
    assert roundtrip(first).row_ids().to_pylist() == first.row_ids().to_pylist()


@pytest.mark.parametrize(
    "build",
    [
        lambda b: b.filter("id % 3 != 0").split_random(
            counts=[7, 5], seed=3, clump_size=2
        ),
        lambda b: b.split_hash(["id"], [2, 1], discard_weight=1).shuffle(seed=9),
        lambda b: b.split_sequential(fixed=3).shuffle(seed=4, clump_size=5),
        lambda b: b.split_calculated("id % 4", split_names=["a", "b", "c", "d"]),
        lambda b: b.filter("x > 10.5").shuffle(seed=np.uint64(8)),
        lambda b: b,
    ],
    ids=[
        "filter-random-counts",
        "hash-discard",
        "sequential-fixed",
        "calculated",
        "np-seed",
        "default",
    ],
)
def test_every_strategy_rebuilds_the_same_split(tmp_db, build):
    table = tmp_db.create_table("t", data(300))
    perm = build(permutation_builder(table)).execute()
    splits = Permutations(table, perm)
    for index in range(len(splits.split_names) or 1):
        split = splits[index]
        state = split.__getstate__()
        assert "recipe" in state["permutation_data"]
        restored = roundtrip(split)
        assert restored.row_ids().to_pylist() == split.row_ids().to_pylist()


def test_hand_made_permutation_table_pickles_its_row_ids(tmp_db):
    table = tmp_db.create_table("t", data(100_000))
    train = hand_made_split(table)["train"]
    size = len(pickle.dumps(train))
    ids = 8 * len(train)  # uint64 row ids of the split, nothing per base row
    assert ids <= size < ids + 4096
    assert len(train.__getstate__()["permutation_data"]["row_ids"]) == ids
    assert all_rows(roundtrip(train)) == all_rows(train)


def test_persisted_permutation_table_keeps_its_recipe(tmp_db):
    table = tmp_db.create_table("t", data(2000))
    built = split_80_20(table).permutation_table
    stored = tmp_db.create_table("perm", built.to_arrow())
    train = Permutations(table, stored)["train"]
    assert "recipe" in train.__getstate__()["permutation_data"]
    assert roundtrip(train).row_ids().to_pylist() == train.row_ids().to_pylist()


def test_changed_permutation_table_pickles_its_row_ids(tmp_db):
    table = tmp_db.create_table("t", data(2000))
    built = split_80_20(table).permutation_table.to_arrow()
    # Same metadata (recipe and digests), other rows: the digest no longer matches.
    trimmed = tmp_db.create_table("perm", built.slice(1))
    train = Permutations(table, trimmed)["train"]
    state = train.__getstate__()
    assert set(state["permutation_data"]) == {"row_ids", "split_names"}
    assert roundtrip(train).row_ids().to_pylist() == train.row_ids().to_pylist()
    # Rows appended to the built table itself: likewise.
    grown = split_80_20(table).permutation_table
    grown.add(
        pa.table(
            {"row_id": pa.array([5], pa.uint64()), "split_id": pa.array([0], pa.uint64())}
        )
    )
    train = Permutations(table, grown)["train"]
    assert "row_ids" in train.__getstate__()["permutation_data"]
    assert roundtrip(train).row_ids().to_pylist() == train.row_ids().to_pylist()


def test_recipe_is_not_used_over_another_base_table(tmp_db):
    table = tmp_db.create_table("t", data(2000))
    other = tmp_db.create_table("u", data(2000, start=10_000))
    perm = split_80_20(table).permutation_table
    train = Permutation.from_tables(other, perm, "train")  # same row ids, other table
    assert "row_ids" in train.__getstate__()["permutation_data"]
    assert all_rows(roundtrip(train)) == all_rows(train)
    assert all_rows(train)[0]["id"] >= 10_000


def test_newer_base_version_pins_the_build_version(tmp_db):
    table = tmp_db.create_table("t", data(2000))
    train = split_80_20(table)["train"]
    table.add(data(10, start=5000))  # the permutation still reads the build's version
    restored = roundtrip(train)
    assert restored.row_ids().to_pylist() == train.row_ids().to_pylist()
    assert all_rows(restored) == all_rows(train)


def test_replaced_base_table_fails_clearly(tmp_db):
    table = tmp_db.create_table("t", data(2000))
    blob = pickle.dumps(split_80_20(table)["train"])
    tmp_db.drop_table("t")
    tmp_db.create_table("t", data(1500))  # same name and version, other rows
    restored = pickle.loads(blob)
    with pytest.raises(
        RuntimeError, match=r"The table was replaced since the permutation"
    ):
        len(restored.row_ids())


def test_state_layout(tmp_db):
    table = tmp_db.create_table("t", data(10))
    p = hand_made_split(table)["test"].with_batch_size(3).with_repeat(2)
    state = p.__getstate__()
    assert set(state) == {
        "format_version",
        "base_table_name",
        "base_table_state",
        "base_version",
        "permutation_data",
        "split",
        "selection",
        "batch_size",
        "transform_fn",
        "offset",
        "limit",
        "repeat",
        "binary_views",
        "connection_factory",
    }
    assert state["base_table_name"] == "t"
    assert state["base_table_state"] == {
        "kind": "local",
        "uri": tmp_db.uri,
        "name": "t",
        "version": table.version,
    }
    assert state["split"] == 1
    assert state["permutation_data"]["split_names"] == ["train", "test"]
    ids = np.frombuffer(state["permutation_data"]["row_ids"], np.uint64)
    assert ids.tolist() == p.row_ids().to_pylist()
    assert (state["batch_size"], state["repeat"]) == (3, 2)
    assert state["transform_fn"] is Transforms.arrow2python
    assert state["connection_factory"] is None
    # No native object anywhere in the state.
    assert "_reader" not in state and "_snapshots" not in state


# -- what `split` means after unpickling -------------------------------------------------


def test_unpickled_split_keeps_its_index_and_names(tmp_db):
    table = tmp_db.create_table("t", data(1000))
    splits = split_80_20(table)
    restored = roundtrip(splits["test"])
    assert restored.split == 1
    perm = restored.permutation_table
    assert perm.name == "permutation"
    assert perm.to_arrow()["split_id"].to_pylist() == [1] * len(splits["test"])
    again = Permutations(restored.base_table, perm)
    assert again.split_names == ["train", "test"]
    assert all_rows(again["test"]) == all_rows(splits["test"])
    with pytest.raises(ValueError, match="No rows found"):
        again["train"]


# -- laziness ----------------------------------------------------------------------------


def test_unpickling_does_no_io(tmp_path):
    db = riffledb.connect(tmp_path / "db")
    table = db.create_table("t", data(100))
    p = split_80_20(table)["train"].with_skip(5)
    expected = all_rows(p)
    blob = pickle.dumps(p)
    os.rename(tmp_path / "db", tmp_path / "moved")
    try:
        restored = pickle.loads(blob)  # nothing is opened
        again = pickle.dumps(restored)  # an unused copy re-pickles without I/O
        with pytest.raises(ValueError, match="'t' was not found"):
            len(restored)  # first use opens the table
    finally:
        os.rename(tmp_path / "moved", tmp_path / "db")
    assert all_rows(restored) == expected  # a failed open is retried
    assert all_rows(pickle.loads(again)) == expected


def test_unpickling_does_not_call_the_factory(tmp_db):
    table = tmp_db.create_table("t", data(10))
    p = Permutation.identity(table).with_connection_factory(_refusing_factory)
    restored = roundtrip(p)
    assert restored.batch_size == p.batch_size
    with pytest.raises(RuntimeError, match="factory called for t"):
        len(restored)


# -- version pinning ---------------------------------------------------------------------


def test_version_pin_survives_pickling(tmp_db):
    table = tmp_db.create_table("t", data(100))
    identity = Permutation.identity(table)
    train = split_80_20(table)["train"]
    expected_identity, expected_train = all_rows(identity), all_rows(train)
    identity_blob, train_blob = pickle.dumps(identity), pickle.dumps(train)
    table.add(data(50, start=100))
    table.delete("id < 10")
    for blob, expected in [
        (identity_blob, expected_identity),
        (train_blob, expected_train),
    ]:
        restored = pickle.loads(blob)
        assert len(restored) == len(expected)
        assert all_rows(restored) == expected


def test_pickling_after_the_handle_moved_on_reads_the_pinned_version(tmp_db):
    table = tmp_db.create_table("t", data(100))
    p = split_80_20(table)["test"]
    expected = all_rows(p)
    table.add(data(50, start=100))  # the handle is now on version 2
    restored = roundtrip(p)
    assert restored.base_version == p.base_version == 1
    assert all_rows(restored) == expected
    assert len(roundtrip(Permutation.identity(table))) == 150


# -- memory:// base tables (spec §8 #7) --------------------------------------------------


def fragmented_memory_table(db):
    table = db.create_table("m", data(100))
    table.add(data(100, start=100))  # a second fragment: row ids 2^32 + i
    table.delete("id % 7 = 3")
    return table


def test_memory_base_with_appends_and_deletes_keeps_rows(mem_db):
    table = fragmented_memory_table(mem_db)
    splits = split_80_20(table, seed=5)
    for name in ("train", "test"):
        p = splits[name]
        restored = roundtrip(p)
        assert len(restored) == len(p)
        assert all_rows(restored) == all_rows(p)
        # and through the other read paths
        assert restored.take_offsets([3, 0, 3]) == p.take_offsets([3, 0, 3])
        assert list(restored.iter(7)) == list(p.iter(7))
    identity = Permutation.identity(table)
    assert all_rows(roundtrip(identity)) == all_rows(identity)


def test_memory_base_pickles_only_the_split_rows(mem_db):
    table = mem_db.create_table("m", data(10_000))
    perm = (
        permutation_builder(table)
        .split_random(ratios=[0.9, 0.1], seed=3, split_names=["a", "b"])
        .execute()
    )
    whole = len(pickle.dumps(Permutation.identity(table)))
    b = Permutations(table, perm)["b"]
    assert len(pickle.dumps(b)) < whole / 5
    restored = roundtrip(b.with_skip(10).with_take(20))
    assert all_rows(restored) == all_rows(b.with_skip(10).with_take(20))
    # After unpickling it is an identity over a copy of the split's rows; `split` keeps
    # the original index.
    assert restored.permutation_table is None
    assert restored.split == 1
    assert len(restored.base_table) == len(b)


def test_memory_base_pickles_the_pinned_version(mem_db):
    table = fragmented_memory_table(mem_db)
    p = split_80_20(table)["train"]
    identity = Permutation.identity(table)
    expected, expected_identity = all_rows(p), all_rows(identity)
    table.add(data(10, start=1000))
    table.delete("id < 50")
    assert all_rows(roundtrip(p)) == expected
    assert all_rows(roundtrip(identity)) == expected_identity


def test_memory_base_keeps_schema_metadata(mem_db):
    schema = pa.schema(
        [pa.field("id", pa.int64(), metadata={b"unit": b"s"})], metadata={b"k": b"v"}
    )
    table = mem_db.create_table("m", pa.table({"id": range(20)}, schema=schema))
    restored = roundtrip(split_80_20(table)["train"])
    assert restored.base_table.schema == schema
    assert restored.base_table.schema.metadata == {b"k": b"v"}


# -- connection factories ----------------------------------------------------------------


def test_with_connection_factory_validates(tmp_db):
    p = Permutation.identity(tmp_db.create_table("t", data(10)))
    with pytest.raises(TypeError, match="connection_factory is required"):
        p.with_connection_factory(None)
    with pytest.raises(TypeError, match="must be callable"):
        p.with_connection_factory("not callable")
    assert p.connection_factory is None
    factory = functools.partial(open_table, tmp_db.uri)
    with_factory = p.with_connection_factory(factory)
    assert with_factory.connection_factory is factory
    assert p.connection_factory is None  # a new permutation; self is unchanged
    assert with_factory.with_format("arrow").connection_factory is factory


def test_factory_replaces_the_table_state_and_pins_the_version(tmp_db):
    table = tmp_db.create_table("t", data(100))
    factory = functools.partial(open_table, tmp_db.uri)
    p = split_80_20(table)["train"].with_connection_factory(factory)
    expected = all_rows(p)
    state = p.__getstate__()
    assert "base_table_state" not in state
    assert state["connection_factory"] is factory
    table.add(data(10, start=100))  # the factory opens version 2; the pin is 1
    restored = roundtrip(p)
    assert restored.connection_factory.func is open_table
    assert all_rows(restored) == expected
    assert restored.base_table.version == 1


def test_factory_must_return_a_table(tmp_db):
    p = Permutation.identity(tmp_db.create_table("t", data(10)))
    restored = roundtrip(p.with_connection_factory(_not_a_table_factory))
    with pytest.raises(TypeError, match="must return a riffledb Table, got dict"):
        len(restored)


def test_factory_with_memory_base_pickles_ids(mem_db):
    table = fragmented_memory_table(mem_db)
    p = split_80_20(table)["test"].with_connection_factory(_refusing_factory)
    state = p.__getstate__()
    assert "base_table_state" not in state
    assert len(state["permutation_data"]["row_ids"]) == 8 * len(p)


def test_lambda_factory_fails_clearly(tmp_db):
    p = Permutation.identity(tmp_db.create_table("t", data(10)))
    with pytest.raises(pickle.PicklingError, match="connection_factory is '.*<lambda>'"):
        pickle.dumps(p.with_connection_factory(lambda name: None))


# -- formats and transforms --------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_pickles_by_name(tmp_db, fmt):
    table = tmp_db.create_table("t", data(20))
    try:
        p = split_80_20(table)["train"].with_format(fmt)
    except ImportError:
        pytest.skip(f"{fmt} is not installed")
    restored = roundtrip(p)
    assert restored.transform_fn is p.transform_fn
    got, expected = restored.take_offsets([2, 0]), p.take_offsets([2, 0])
    assert type(got) is type(expected)
    assert _plain(got) == _plain(expected)
    assert _plain(got) != _plain(p.take_offsets([0, 2]))  # _plain keeps the values


def _plain(batch):
    """Any format's batch as nested Python lists and dicts, to compare values."""
    if isinstance(batch, list | tuple):
        return [_plain(item) for item in batch]
    if isinstance(batch, dict):
        return {key: _plain(value) for key, value in batch.items()}
    if isinstance(batch, pa.RecordBatch | pa.Table):
        return batch.to_pydict()
    if hasattr(batch, "iloc"):  # pandas
        return batch.to_dict("list")
    if hasattr(batch, "to_dict"):  # polars
        return batch.to_dict(as_series=False)
    if hasattr(batch, "tolist"):  # numpy, torch
        return batch.tolist()
    return batch


def test_module_level_transform_pickles(tmp_db):
    p = Permutation.identity(tmp_db.create_table("t", data(5))).with_transform(
        _double_ids
    )
    assert roundtrip(p).take_offsets([4, 1]) == [8, 2]


def test_lambda_and_nested_transforms_fail_clearly(tmp_db):
    p = Permutation.identity(tmp_db.create_table("t", data(5)))

    def nested(batch):
        return batch

    with pytest.raises(pickle.PicklingError, match="transform is '.*<lambda>'"):
        pickle.dumps(p.with_transform(lambda batch: batch))
    with pytest.raises(pickle.PicklingError, match="nested"):
        pickle.dumps(p.with_transform(nested))
    with pytest.raises(pickle.PicklingError, match="lambda"):
        pickle.dumps(p.with_transform(functools.partial(lambda b, k: b, k=1)))


# -- settings and round trips ------------------------------------------------------------


@pytest.mark.parametrize("db_fixture", ["tmp_db", "mem_db"])
def test_settings_survive_pickling(request, db_fixture):
    db = request.getfixturevalue(db_fixture)
    table = db.create_table(
        "t",
        pa.table({"id": range(300), "s": pa.array([{"a": i} for i in range(300)])}),
    )
    p = (
        split_80_20(table)["train"]
        .rename_column("id", "ident")
        .select_columns(["s", "ident", "_rowid"])
        .flatten()
        .with_batch_size(7)
        .with_skip(3)
        .with_take(50)
        .with_repeat(2)
        .with_format("python_col")
    )
    restored = roundtrip(p)
    assert restored.column_names == p.column_names == ["s.a", "ident", "_rowid"]
    assert (restored.batch_size, restored.offset, restored.limit) == (7, 3, 50)
    assert restored.repeat_times == 2
    assert len(restored) == 100
    got = list(restored)
    expected = list(p)
    assert [b["ident"] for b in got] == [b["ident"] for b in expected]
    assert [b["s.a"] for b in got] == [b["s.a"] for b in expected]
    if db_fixture == "tmp_db":  # memory:// copies get their own row ids
        assert [b["_rowid"] for b in got] == [b["_rowid"] for b in expected]


@pytest.mark.parametrize("kind", ["local", "memory", "factory", "identity"])
def test_round_trips_twice(tmp_db, mem_db, kind):
    if kind == "memory":
        p = split_80_20(fragmented_memory_table(mem_db))["test"]
    else:
        table = tmp_db.create_table("t", data(200))
        p = split_80_20(table)["test"]
        if kind == "identity":
            p = Permutation.identity(table)
        if kind == "factory":
            p = p.with_connection_factory(functools.partial(open_table, tmp_db.uri))
    p = p.with_skip(1).with_batch_size(4)
    expected = all_rows(p)
    unused = roundtrip(roundtrip(p))  # re-pickled before use
    assert all_rows(unused) == expected
    used = roundtrip(p)
    assert all_rows(used) == expected
    assert all_rows(roundtrip(used)) == expected  # re-pickled after use
    assert list(roundtrip(used).iter(4)) == list(p.iter(4))


def test_copy_does_not_go_through_pickling(mem_db):
    table = fragmented_memory_table(mem_db)
    p = split_80_20(table)["test"].select_columns(["_rowid", "id"])
    for other in (copy.copy(p), copy.deepcopy(p)):
        assert other.permutation_table is p.permutation_table
        assert other.take_offsets([0, 1]) == p.take_offsets([0, 1])


def test_spec_state_with_a_whole_permutation_table(mem_db, tmp_db):
    """LanceDB's layout (§6.1): `permutation_data` is the whole permutation table."""
    table = tmp_db.create_table("t", data(100))
    splits = split_80_20(table)
    state = splits["test"].__getstate__()
    state["permutation_data"] = splits.permutation_table.to_arrow()
    restored = Permutation.__new__(Permutation)
    restored.__setstate__(state)
    assert all_rows(restored) == all_rows(splits["test"])


def test_state_without_a_base_fails_clearly(tmp_db):
    state = Permutation.identity(tmp_db.create_table("t", data(5))).__getstate__()
    del state["base_table_state"]
    with pytest.raises(ValueError, match="neither a base_table_state nor"):
        Permutation.__new__(Permutation).__setstate__(state)


# -- processes (without torch) -----------------------------------------------------------


@pytest.mark.parametrize("db_fixture", ["tmp_db", "mem_db"])
def test_spawned_process_reads_the_same_rows(request, db_fixture):
    db = request.getfixturevalue(db_fixture)
    table = db.create_table("t", data(300))
    if db_fixture == "mem_db":
        table.add(data(10, start=300))
        table.delete("id % 5 = 0")
    p = split_80_20(table)["train"].with_skip(2).with_take(100)
    n, rows, pid = run_in_child(
        read_unpickled,
        pickle.dumps(p),
        what="reading an unpickled permutation in a spawned process",
        timeout=60,
    )
    assert pid != os.getpid()
    assert n == 100
    assert rows == all_rows(p)
