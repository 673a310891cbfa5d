"""Permutation and Permutations: reading splits of a table (spec §1, §4, §8, §10 #8-#12).

Permutation tables are built by hand here (row_id/split_id + split_names metadata), so the
reader is tested independently of the builder.
"""

import json
import os
import pickle
import warnings

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import riffledb
from riffledb.permutation import (
    DEFAULT_BATCH_SIZE,
    Permutation,
    Permutations,
    Transforms,
)
from riffledb.table import reference

NO_ROWS = "Invalid input, No rows found in the permutation table for the given split"


def perm_table(db, splits, names=None, name="perm"):
    """A permutation table: `splits[k]` = row ids of split k, in read order."""
    row_ids = [r for split in splits for r in split]
    split_ids = [k for k, split in enumerate(splits) for _ in split]
    table = pa.table(
        {
            "row_id": pa.array(row_ids, pa.uint64()),
            "split_id": pa.array(split_ids, pa.uint64()),
        }
    )
    if names is not None:
        table = table.replace_schema_metadata(
            {b"split_names": json.dumps(names).encode()}
        )
    return db.create_table(name, table)


def base_table(db, n=100, name="base"):
    """{id: 1000 + i, label: i % 10}: values differ from offsets and row ids."""
    return db.create_table(
        name,
        pa.table(
            {
                "id": pa.array([1000 + i for i in range(n)], pa.int64()),
                "label": pa.array([i % 10 for i in range(n)], pa.int32()),
            }
        ),
    )


@pytest.fixture
def two_splits(mem_db):
    """1000 rows; split 0 ('train') = 949..0, split 1 ('test') = 950..999 scrambled."""
    base = base_table(mem_db, 1000)
    train = list(range(949, -1, -1))
    test = [950 + (i * 17) % 50 for i in range(50)]
    perm = perm_table(mem_db, [train, test], ["train", "test"])
    return base, perm, train, test


def ids(rows):
    return [row["id"] for row in rows]


# -- construction and splits (§10 #8) ----------------------------------------------------


def test_identity_reads_all_rows_in_storage_order(mem_db):
    base = base_table(mem_db, 10)
    p = Permutation.identity(base)
    assert len(p) == 10
    assert p.num_rows == 10
    assert p.column_names == ["id", "label"]
    assert p.num_columns == 2
    assert p.shape == (10, 2)
    assert p.batch_size == DEFAULT_BATCH_SIZE == 100
    assert p.schema == pa.schema([("id", pa.int64()), ("label", pa.int32())])
    assert p.take_offsets(list(range(10))) == [
        {"id": 1000 + i, "label": i % 10} for i in range(10)
    ]


def test_split_by_index_and_by_name(two_splits):
    base, perm, train, test = two_splits
    by_index = Permutation.from_tables(base, perm, 1)
    by_name = Permutation.from_tables(base, perm, "test")
    for p in (by_index, by_name):
        assert len(p) == 50
        assert ids(p.take_offsets(list(range(50)))) == [1000 + r for r in test]
    default = Permutation.from_tables(base, perm)
    assert len(default) == 950
    assert ids(default.take_offsets([0, 949])) == [1000 + 949, 1000]


def test_permutations_collection(two_splits):
    base, perm, train, test = two_splits
    perms = Permutations(base, perm)
    assert perms.split_names == ["train", "test"]
    assert perms.split_dict == {"train": 0, "test": 1}
    assert len(perms["train"]) == 950
    assert len(perms[1]) == 50
    assert len(perms.get_by_name("test")) == 50
    assert len(perms.get_by_index(0)) == 950
    with pytest.raises(ValueError, match="^No split named `nope` found$"):
        perms["nope"]
    with pytest.raises(TypeError, match=r"^Invalid split name or index: 1\.5$"):
        perms[1.5]
    with pytest.raises(ValueError, match=f"^{NO_ROWS}$"):
        perms[2]


def test_permutations_without_names(mem_db):
    base = base_table(mem_db, 5)
    perm = perm_table(mem_db, [[0, 1], [2]])
    perms = Permutations(base, perm)
    assert perms.split_names == []
    assert perms.split_dict == {}
    assert len(perms[1]) == 1


def test_split_errors(two_splits, mem_db):
    base, perm, _, _ = two_splits
    # Upstream bug: the message held a literal `{split}`.
    with pytest.raises(ValueError) as info:
        Permutation.from_tables(base, None, 3)
    assert str(info.value) == (
        "Cannot create a permutation on split `3` because no permutation table is "
        "provided"
    )
    with pytest.raises(ValueError) as info:
        Permutation.from_tables(base, perm, "valid")
    assert str(info.value) == (
        "Cannot create a permutation on split `valid` because split `valid` is not "
        "defined in the permutation table"
    )
    unnamed = perm_table(mem_db, [[0, 1]], name="unnamed")
    with pytest.raises(ValueError) as info:
        Permutation.from_tables(base, unnamed, "train")
    assert str(info.value) == (
        "Cannot create a permutation on split `train` because no split names are defined "
        "in the permutation table"
    )
    with pytest.raises(TypeError, match=r"^Invalid split: 1\.0$"):
        Permutation.from_tables(base, perm, 1.0)
    with pytest.raises(TypeError, match="^Invalid split: True$"):
        Permutation.from_tables(base, perm, True)
    with pytest.raises(ValueError, match="^Split index must not be negative, got -1$"):
        Permutation.from_tables(base, perm, -1)
    with pytest.raises(ValueError, match=f"^{NO_ROWS}$"):
        Permutation.from_tables(base, perm, 2)
    with pytest.raises(TypeError, match="base_table is required"):
        Permutation.from_tables(None, perm, 0)
    with pytest.raises(TypeError, match="base_table must be a riffledb Table, got Table"):
        Permutation.from_tables(pa.table({"a": [1]}), perm, 0)


def test_empty_identity_and_empty_split_raise_at_construction(mem_db):
    empty = mem_db.create_table("empty", schema=pa.schema([("id", pa.int64())]))
    with pytest.raises(ValueError, match=f"^{NO_ROWS}$"):
        Permutation.identity(empty)
    base = base_table(mem_db, 5)
    empty_perm = mem_db.create_table(
        "p", schema=pa.schema([("row_id", pa.uint64()), ("split_id", pa.uint64())])
    )
    with pytest.raises(ValueError, match=f"^{NO_ROWS}$"):
        Permutation.from_tables(base, empty_perm)


def test_permutation_table_columns_are_required(mem_db):
    base = base_table(mem_db, 5)
    bad = mem_db.create_table("bad", pa.table({"rid": pa.array([0], pa.uint64())}))
    with pytest.raises(
        ValueError, match="^Permutation table must contain a column named row_id$"
    ):
        Permutation.from_tables(base, bad)
    bad2 = mem_db.create_table("bad2", pa.table({"row_id": pa.array([0], pa.uint64())}))
    with pytest.raises(
        ValueError, match="^Permutation table must contain a column named split_id$"
    ):
        Permutation.from_tables(base, bad2)


def test_hand_built_narrow_split_ids_are_accepted(mem_db):
    base = base_table(mem_db, 5)
    perm = mem_db.create_table(
        "p",
        pa.table(
            {"split_id": pa.array([1, 0, 1], pa.uint32()), "row_id": pa.array([4, 0, 2])}
        ),
    )
    assert ids(Permutation.from_tables(base, perm, 1).take_offsets([0, 1])) == [
        1004,
        1002,
    ]


# Upstream bug (§8 #18): split names were not validated.
@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (b'["a", "b", "a"]', "split names are not unique: `a` appears more than once"),
        (b'{"a": 0}', "must be a JSON list of strings"),
        (b'["a", 1]', "must be a JSON list of strings"),
        (b"[not json", "is not valid JSON"),
    ],
)
def test_split_names_are_validated(mem_db, metadata, message):
    base = base_table(mem_db, 5)
    perm = mem_db.create_table(
        "p",
        pa.table(
            {"row_id": pa.array([0], pa.uint64()), "split_id": pa.array([0], pa.uint64())}
        ).replace_schema_metadata({b"split_names": metadata}),
    )
    with pytest.raises(ValueError, match=message):
        Permutations(base, perm)
    with pytest.raises(ValueError, match=message):
        Permutation.from_tables(base, perm, "a")


# -- offset / limit (§10 #9) -------------------------------------------------------------


def test_skip_and_take(two_splits):
    base, perm, _, test = two_splits
    p = Permutation.from_tables(base, perm, "test")
    skipped = p.with_skip(10)
    assert len(skipped) == 40
    assert ids(skipped.take_offsets([0, 39])) == [1000 + test[10], 1000 + test[49]]
    taken = p.with_take(5)
    assert len(taken) == 5
    both = p.with_take(20).with_skip(20)  # always skip first, then take
    assert len(both) == 20
    assert ids(both.take_offsets(list(range(20)))) == [1000 + r for r in test[20:40]]
    assert len(p.with_skip(50)) == 0
    assert len(p) == 50  # self is never modified
    # A second with_skip replaces the first.
    assert len(p.with_skip(10).with_skip(5)) == 45


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda p: p.with_skip(51),
            "Offset is greater than the number of rows in the permutation table",
        ),
        (
            lambda p: p.with_take(51),
            "Limit is greater than the number of rows in the permutation table",
        ),
        (
            lambda p: p.with_skip(40).with_take(11),
            "Offset + limit is greater than the number of rows in the permutation table",
        ),
        (
            lambda p: p.with_take(11).with_skip(40),
            "Offset + limit is greater than the number of rows in the permutation table",
        ),
        (lambda p: p.with_skip(-1), "Offset must not be negative, got -1"),
        (lambda p: p.with_take(-1), "Limit must not be negative, got -1"),
    ],
)
def test_skip_take_errors(two_splits, make, message):
    base, perm, _, _ = two_splits
    p = Permutation.from_tables(base, perm, "test")
    with pytest.raises(ValueError) as info:
        make(p)
    assert str(info.value) == message


def test_take_zero_reads_nothing(two_splits):
    base, perm, _, _ = two_splits
    p = Permutation.from_tables(base, perm, "test").with_take(0)
    assert len(p) == 0
    assert list(p) == []
    assert list(p.iter(10)) == []
    assert p.take_offsets([]) == []


def test_deprecated_aliases_warn(two_splits):
    base, perm, _, _ = two_splits
    p = Permutation.from_tables(base, perm, "test")
    with pytest.warns(DeprecationWarning, match="Use with_skip instead"):
        assert len(p.skip(10)) == 40
    with pytest.warns(DeprecationWarning, match="Use with_take instead"):
        assert len(p.take(10)) == 10
    with pytest.warns(DeprecationWarning, match="Use with_repeat instead"):
        assert len(p.repeat(3)) == 150


# -- iteration (§10 #10, upstream bug §4.4) ----------------------------------------------


def test_iteration_batches_are_exact_for_non_first_split(two_splits):
    base, perm, _, test = two_splits
    p = Permutation.from_tables(base, perm, "test").with_format("python_col")
    batches = list(p.iter(7))
    assert [len(b["id"]) for b in batches] == [7] * 7 + [1]
    assert [i for b in batches for i in b["id"]] == [1000 + r for r in test]
    # __iter__ drops only the final short batch (upstream dropped interior ones).
    batches = list(p.with_batch_size(30))
    assert [len(b["id"]) for b in batches] == [30]
    assert batches[0]["id"] == [1000 + r for r in test[:30]]


def test_iteration_after_skip(two_splits):
    base, perm, train, _ = two_splits
    p = (
        Permutation.from_tables(base, perm, "train")
        .with_skip(5)
        .with_take(50)
        .with_format("arrow")
    )
    batches = list(p.iter(20))
    assert [b.num_rows for b in batches] == [20, 20, 10]
    assert [b.num_rows for b in p.with_batch_size(20)] == [20, 20]
    assert pa.concat_batches(batches)["id"].to_pylist() == [1000 + r for r in train[5:55]]


def test_iter_is_lazy_and_validates_batch_size(two_splits):
    base, perm, _, _ = two_splits
    p = Permutation.from_tables(base, perm, "test")
    calls = []
    lazy = p.with_transform(lambda b: calls.append(b.num_rows) or b.num_rows).iter(10)
    assert calls == []
    assert next(lazy) == 10
    assert calls == [10]
    with pytest.raises(ValueError, match="^batch_size must be at least 1, got 0$"):
        p.iter(0)
    with pytest.raises(ValueError, match="^batch_size must be at least 1, got 0$"):
        p.with_batch_size(0)
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        p.with_batch_size(2.5)


def test_default_iteration_uses_batch_size_100(mem_db):
    p = Permutation.identity(base_table(mem_db, 250)).with_format("arrow")
    assert [b.num_rows for b in p] == [100, 100]
    assert [b.num_rows for b in p.iter(100)] == [100, 100, 50]


# -- take_offsets / __getitem__ / __getitems__ (§10 #11, upstream bugs §4.5) -------------


def test_take_offsets_requested_order_and_duplicates(two_splits):
    base, perm, _, test = two_splits
    p = Permutation.from_tables(base, perm, "test")
    offsets = [49, 0, 0, 17, 3, 49]
    assert ids(p.take_offsets(offsets)) == [1000 + test[o] for o in offsets]
    assert ids(p.__getitems__(np.array(offsets, dtype=np.int32))) == [
        1000 + test[o] for o in offsets
    ]
    assert p[17] == [{"id": 1000 + test[17], "label": test[17] % 10}]
    assert p.take_offsets([]) == []
    assert p.with_format("arrow").take_offsets([]).schema == p.schema


def test_take_offsets_out_of_range(two_splits):
    base, perm, _, _ = two_splits
    p = Permutation.from_tables(base, perm, "test").with_skip(10)
    with pytest.raises(
        IndexError,
        match="^Offset 40 at position 1 is out of range for a permutation of 40 rows$",
    ):
        p.take_offsets([0, 40])
    with pytest.raises(IndexError, match="Offset -1 at position 0 is out of range"):
        p[-1]
    with pytest.raises(TypeError, match="Permutation indices must be integers, got str"):
        p["a"]


# Upstream bug (§4.5): identity takes ignored skip/take, sorted, de-duplicated and dropped
# out-of-range offsets.
def test_identity_take_offsets_has_the_permutation_contract(mem_db):
    p = Permutation.identity(base_table(mem_db, 100)).with_skip(10).with_take(30)
    assert ids(p.take_offsets([21, 5, 3, 3, 20, 0])) == [
        1031,
        1015,
        1013,
        1013,
        1030,
        1010,
    ]
    with pytest.raises(IndexError, match="Offset 30 at position 1 is out of range"):
        p.take_offsets([5, 30])
    assert len(p) == 30


def test_transform_applies_to_every_read(two_splits):
    base, perm, _, test = two_splits
    p = Permutation.from_tables(base, perm, "test").with_transform(
        lambda b: b["id"].to_pylist()
    )
    assert p.take_offsets([2, 1]) == [1000 + test[2], 1000 + test[1]]
    assert p[0] == [1000 + test[0]]
    assert next(iter(p.iter(3))) == [1000 + r for r in test[:3]]
    with pytest.raises(TypeError, match="transform is required"):
        p.with_transform(None)


# -- selection (§10 #12) -----------------------------------------------------------------


def test_select_remove_rename(two_splits):
    base, perm, _, test = two_splits
    p = Permutation.from_tables(base, perm, "test")
    assert p.select_columns(["label", "id"]).column_names == ["label", "id"]
    assert p.select_columns(["id", "id"]).column_names == ["id"]
    assert p.remove_columns(["label", "missing"]).column_names == ["id"]
    # Upstream bug (§8 #9): the renamed column moved to the end.
    renamed = p.rename_column("id", "ident")
    assert renamed.column_names == ["ident", "label"]
    assert renamed[0] == [{"ident": 1000 + test[0], "label": test[0] % 10}]
    both = p.rename_columns({"id": "x", "label": "y"})
    assert both.column_names == ["x", "y"]
    assert p.column_names == ["id", "label"]  # self unchanged


def test_selection_errors(two_splits):
    base, perm, _, _ = two_splits
    p = Permutation.from_tables(base, perm, "test")
    cases = [
        (lambda: p.remove_columns(["id", "label"]), "Cannot remove all columns"),
        (
            lambda: p.rename_column("nope", "x"),
            "Cannot rename column `nope` because it does not exist",
        ),
        (
            lambda: p.rename_column("id", "label"),
            "Cannot rename column `id` to `label` "
            "because a column with that name already exists",
        ),
        (lambda: p.select_columns([]), "Must select at least one column"),
        (
            lambda: p.select_columns(["nope"]),
            "Cannot select column `nope` because it does not exist",
        ),
        (
            lambda: p.remove_columns(["label"]).select_columns(["label"]),
            "Cannot select column `label` because it does not exist",
        ),
        (
            lambda: p.rename_column("id", "_rowid"),
            "Dynamic column id cannot be used to select _rowid",
        ),
    ]
    for make, message in cases:
        with pytest.raises(ValueError) as info:
            make()
        assert str(info.value) == message
    for make, message in [
        (lambda: p.remove_columns(None), "columns is required"),
        (lambda: p.select_columns(None), "columns is required"),
        (lambda: p.rename_column(None, "x"), "old_name is required"),
        (lambda: p.rename_column("id", None), "new_name is required"),
        (lambda: p.rename_columns(None), "column_map is required"),
        (lambda: p.with_format(None), "format is required"),
    ]:
        with pytest.raises(TypeError, match=message):
            make()
    with pytest.raises(ValueError, match="^Invalid format: tensorflow$"):
        p.with_format("tensorflow")


def test_rowid_is_hidden_but_selectable_and_renameable(two_splits):
    base, perm, _, test = two_splits
    p = Permutation.from_tables(base, perm, "test")
    assert "_rowid" not in p.column_names
    with_ids = p.select_columns(["_rowid", "id"])
    assert with_ids.schema.field("_rowid").type == pa.uint64()
    assert with_ids.take_offsets([1]) == [{"_rowid": test[1], "id": 1000 + test[1]}]
    renamed = with_ids.rename_column("_rowid", "my_row_id")
    assert renamed.column_names == ["my_row_id", "id"]
    assert renamed.take_offsets([1]) == [{"my_row_id": test[1], "id": 1000 + test[1]}]
    batches = list(renamed.with_format("python_col").iter(100))
    assert batches[0]["my_row_id"] == test


def test_dynamic_selection_cannot_be_rowid(two_splits):
    base, perm, _, _ = two_splits
    p = Permutation.from_tables(base, perm, "test")
    bad = p._copy(selection={"_rowid": "id"})
    with pytest.raises(
        ValueError, match="^Dynamic column id cannot be used to select _rowid$"
    ):
        _ = bad.schema


def test_expression_selection(two_splits):
    base, perm, _, test = two_splits
    p = Permutation.from_tables(base, perm, "test")._copy(
        selection={"double": "id * 2", "label": "label"}
    )
    assert p.schema.field("double").type == pa.int64()
    assert p.take_offsets([0]) == [
        {"double": 2 * (1000 + test[0]), "label": test[0] % 10}
    ]


def test_row_ids(two_splits):
    base, perm, _, test = two_splits
    p = Permutation.from_tables(base, perm, "test").with_skip(45)
    assert p.row_ids().to_pylist() == test[45:]
    assert Permutation.identity(base).with_take(3).row_ids().to_pylist() == [0, 1, 2]


# -- beyond LanceDB: repeat, unique, flatten ---------------------------------------------


def test_with_repeat(two_splits):
    base, perm, _, test = two_splits
    p = Permutation.from_tables(base, perm, "test").with_take(5).with_repeat(3)
    assert len(p) == 15
    expected = [1000 + r for r in test[:5]] * 3
    assert ids(p.take_offsets(list(range(15)))) == expected
    assert ids(p.take_offsets([14, 0, 5])) == [expected[14], expected[0], expected[5]]
    batches = list(p.with_format("python_col").iter(4))
    assert [len(b["id"]) for b in batches] == [4, 4, 4, 3]
    assert [i for b in batches for i in b["id"]] == expected
    assert [len(b["id"]) for b in p.with_format("python_col").with_batch_size(4)] == [
        4,
        4,
        4,
    ]
    with pytest.raises(
        IndexError,
        match="Offset 15 at position 0 is out of range for a permutation of 15 rows",
    ):
        p.take_offsets([15])
    with pytest.raises(ValueError, match="^times must be at least 1, got 0$"):
        p.with_repeat(0)
    assert len(p.with_repeat(1)) == 5


def test_unique(mem_db):
    base = base_table(mem_db, 100)
    perm = perm_table(mem_db, [[7, 3, 13, 17, 4]])
    p = Permutation.from_tables(base, perm)
    assert p.unique("label") == [7, 3, 4]
    assert Permutation.identity(base).unique("label") == list(range(10))
    with pytest.raises(ValueError, match="Cannot get unique values of column `nope`"):
        p.unique("nope")


def test_flatten(mem_db):
    point = pa.struct([("x", pa.int64()), ("y", pa.struct([("z", pa.float64())]))])
    base = mem_db.create_table(
        "s",
        pa.table(
            {
                "id": [1, 2, 3],
                "p": pa.array(
                    [{"x": 1, "y": {"z": 0.5}}, {"x": 2, "y": {"z": 1.5}}, None], point
                ),
                "tail": ["a", "b", "c"],
            }
        ),
    )
    p = Permutation.identity(base)
    flat = p.flatten()
    assert flat.column_names == ["id", "p.x", "p.y.z", "tail"]
    assert flat.schema.field("p.y.z").type == pa.float64()
    assert flat.take_offsets([1, 2]) == [
        {"id": 2, "p.x": 2, "p.y.z": 1.5, "tail": "b"},
        {"id": 3, "p.x": None, "p.y.z": None, "tail": "c"},
    ]
    renamed = p.rename_column("p", "q").flatten()
    assert renamed.column_names == ["id", "q.x", "q.y.z", "tail"]
    assert renamed.select_columns(["q.x"]).take_offsets([0]) == [{"q.x": 1}]
    assert p.select_columns(["id"]).flatten().column_names == ["id"]


# -- version pinning (beyond LanceDB: spec §4.3, §8 #15/#16) -----------------------------


@pytest.mark.parametrize("db_fixture", ["mem_db", "tmp_db"])
def test_writes_during_a_run_change_nothing(request, db_fixture):
    db = request.getfixturevalue(db_fixture)
    base = base_table(db, 20)
    perm = perm_table(db, [[19, 3, 7]])
    p = Permutation.from_tables(base, perm)
    identity = Permutation.identity(base)
    base.delete("id = 1003")
    base.add(pa.table({"id": [5000, 5001], "label": pa.array([0, 1], pa.int32())}))
    perm.add(
        pa.table(
            {"row_id": pa.array([0], pa.uint64()), "split_id": pa.array([0], pa.uint64())}
        )
    )
    assert len(base) == 21
    assert ids(p.take_offsets([0, 1, 2])) == [1019, 1003, 1007]
    assert len(p) == 3
    assert len(identity) == 20
    assert ids(identity.take_offsets([3, 19])) == [1003, 1019]
    rows = [i for b in identity.with_format("python_col").iter(6) for i in b["id"]]
    assert rows == [1000 + i for i in range(20)]
    # Derived permutations keep the pinned versions.
    assert ids(identity.with_skip(3).take_offsets([0])) == [1003]
    # A new permutation sees the new version.
    assert len(Permutation.identity(base)) == 21


def test_permutation_pins_the_handle_version_even_after_it_moves(tmp_db):
    base = base_table(tmp_db, 10)
    p = Permutation.identity(base)
    base.add(pa.table({"id": [7], "label": pa.array([7], pa.int32())}))
    assert len(p) == 10
    # A permutation that opens its reader after the handle moved (as after unpickling)
    # reads the pinned version through a separate handle, leaving the user's alone.
    restored = pickle.loads(pickle.dumps(p))
    assert len(restored) == 10
    assert ids(restored.take_offsets([9])) == [1009]
    ref = reference(base)
    assert ref.snapshot(1).num_rows == 10
    assert base.version == 2
    assert len(base) == 11


# -- per-process native state ------------------------------------------------------------


@pytest.mark.timeout(120)
def test_forked_child_reads_through_the_parents_reader(two_splits):
    """The native reader survives fork (DESIGN.md decision 9): a forked child reads
    through the parent's reader, without reopening anything."""
    base, perm, _, test = two_splits
    p = Permutation.from_tables(base, perm, "test").with_skip(2)
    assert ids(p.take_offsets([0])) == [1000 + test[2]]
    reader = p._reader
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            got = ids(p.take_offsets([0, 47]))
            same = p._reader is reader
            os.write(write_fd, json.dumps([got, len(p), same]).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        got, length, same = json.loads(pipe.read() or "null")
    assert os.waitpid(pid, 0)[1] == 0
    assert got == [1000 + test[2], 1000 + test[49]]
    assert length == 48
    assert same is True


def test_state_is_plain(two_splits):
    base, perm, _, _ = two_splits
    p = Permutation.from_tables(base, perm, "test").with_skip(3).with_take(4)
    assert (p.split, p.offset, p.limit, p.batch_size) == (1, 3, 4, 100)
    assert p.selection == {"id": "id", "label": "label"}
    assert p.transform_fn is Transforms.arrow2python
    assert p.base_version == base.version
    assert p.permutation_version == perm.version
    # Every format's transform pickles by name (upstream's polars closure did not).
    for fmt in [
        "python",
        "python_col",
        "numpy",
        "pandas",
        "arrow",
        "polars",
        "torch",
        "torch_row",
        "torch_col",
    ]:
        try:
            transform = p.with_format(fmt).transform_fn
        except ImportError:
            continue
        assert pickle.loads(pickle.dumps(transform)) is transform
    assert (
        pickle.loads(pickle.dumps(Transforms.arrow2polars())) is Transforms.arrow2polars()
    )


# -- properties --------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 60),
    splits=st.integers(1, 3),
)
def test_property_reads_agree_with_row_ids(data, n, splits):
    db = riffledb.connect("memory://")
    base = base_table(db, n)
    order = data.draw(st.permutations(list(range(n))))
    assignment = data.draw(st.lists(st.integers(0, splits - 1), min_size=n, max_size=n))
    groups = [
        [r for r, s in zip(order, assignment, strict=True) if s == k]
        for k in range(splits)
    ]
    perm = perm_table(db, groups)
    k = data.draw(st.sampled_from([k for k in range(splits) if groups[k]]))
    group = groups[k]
    skip = data.draw(st.integers(0, len(group)))
    take = data.draw(st.integers(0, len(group) - skip))
    p = Permutation.from_tables(base, perm, k).with_skip(skip).with_take(take)
    expected = [1000 + r for r in group[skip : skip + take]]
    assert len(p) == take
    assert p.row_ids().to_pylist() == group[skip : skip + take]
    offsets = data.draw(st.lists(st.integers(0, take - 1), max_size=20)) if take else []
    # take_offsets == the base rows of the permutation's row ids, in the requested order.
    assert ids(p.take_offsets(offsets)) == [expected[o] for o in offsets]
    assert base.take_row_ids([group[skip + o] for o in offsets]).to_arrow()[
        "id"
    ].to_pylist() == [expected[o] for o in offsets]
    batch_size = data.draw(st.integers(1, 25))
    batches = list(p.with_format("python_col").iter(batch_size))
    sizes = [len(b["id"]) for b in batches]
    assert all(s == batch_size for s in sizes[:-1])
    assert sum(sizes) == take
    # Iteration concatenated == take of all offsets.
    assert [i for b in batches for i in b["id"]] == ids(p.take_offsets(list(range(take))))
    dropped = list(p.with_format("python_col").with_batch_size(batch_size))
    assert [len(b["id"]) for b in dropped] == [batch_size] * (take // batch_size)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), n=st.integers(1, 40))
def test_property_identity_matches_table_take(data, n):
    db = riffledb.connect("memory://")
    base = base_table(db, n)
    p = Permutation.identity(base)
    offsets = data.draw(st.lists(st.integers(0, n - 1), max_size=30))
    assert (
        ids(p.take_offsets(offsets))
        == base.take_offsets(offsets).to_arrow()["id"].to_pylist()
    )


def test_no_warnings_on_plain_use(two_splits):
    base, perm, _, _ = two_splits
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = Permutation.from_tables(base, perm, "test").with_skip(1).with_take(2)
        list(p)
        p[0]


# -- with the builder --------------------------------------------------------------------


def test_builder_output_reads_in_permutation_table_order(mem_db):
    from riffledb.permutation import PermutationBuilder, permutation_builder

    base = base_table(mem_db, 200)
    perm = (
        permutation_builder(base)
        .split_random(ratios=[0.9, 0.1], split_names=["train", "test"], seed=3)
        .shuffle(seed=4)
        .execute()
    )
    assert isinstance(permutation_builder(base), PermutationBuilder)
    stored = perm.to_arrow()
    perms = Permutations(base, perm)
    assert perms.split_names == ["train", "test"]
    for k, name in enumerate(["train", "test"]):
        row_ids = [
            r
            for r, s in zip(
                stored["row_id"].to_pylist(), stored["split_id"].to_pylist(), strict=True
            )
            if s == k
        ]
        p = perms[name]
        assert len(p) == len(row_ids) == [180, 20][k]
        rows = [i for b in p.with_format("python_col").iter(16) for i in b["id"]]
        assert rows == [1000 + r for r in row_ids]
        assert p.row_ids().to_pylist() == row_ids
