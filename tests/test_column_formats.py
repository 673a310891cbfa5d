"""riffledb's own formats ``"numpy_dict"`` and ``"torch_dict"``: a dict of batch-first
columns, gathered by the native take straight into arrays when every column has a NumPy
form (numbers, booleans, fixed-size lists of numbers, no nulls), through Arrow and
``riffledb.util.batch_to_numpy_dict`` / ``batch_to_torch_dict`` otherwise. Both routes
give the same dict; the native one's arrays are writable and share no memory."""

import pickle

import numpy as np
import pyarrow as pa
import pytest
from harness.hang import run_python

from riffledb.permutation import Permutation, Permutations, permutation_builder
from riffledb.util import batch_to_numpy_dict, batch_to_torch_dict

torch = pytest.importorskip("torch")

N = 12
DIM = 4


def _data() -> pa.Table:
    ids = np.arange(N, dtype=np.int64)
    return pa.table(
        {
            "id": pa.array(ids),
            "label": pa.array((ids % 3).astype(np.int32)),
            "vec": pa.FixedSizeListArray.from_arrays(
                pa.array(np.arange(N * DIM, dtype=np.float32)), DIM
            ),
            "flag": pa.array([i % 2 == 0 for i in range(N)]),
            "half": pa.array(np.arange(N, dtype=np.float16)),
            "u32": pa.array(np.arange(N, dtype=np.uint32) * 7),
            "grid": pa.FixedSizeListArray.from_arrays(
                pa.FixedSizeListArray.from_arrays(
                    pa.array(np.arange(N * 6, dtype=np.int16)), 3
                ),
                2,
            ),
        }
    )


@pytest.fixture(params=["memory", "disk"])
def table(request, mem_db, tmp_db):
    db = mem_db if request.param == "memory" else tmp_db
    table = db.create_table("t", _data().slice(0, 5))
    table.add(_data().slice(5))  # two fragments
    return table


@pytest.fixture
def split(table):
    """The 9 rows of split 0 of a shuffled 3:1 split (fixed seed)."""
    perm = (
        permutation_builder(table)
        .split_sequential(counts=[9, 3])
        .shuffle(seed=5)
        .execute()
    )
    return Permutations(table, perm)[0]


def _expected_rows(permutation: Permutation, offsets: list[int]) -> pa.RecordBatch:
    return permutation.with_format("arrow").take_offsets(offsets)


def _assert_numpy_columns(out: dict, batch: pa.RecordBatch) -> None:
    assert list(out) == batch.schema.names
    n = batch.num_rows
    assert out["id"].dtype == np.int64 and out["id"].shape == (n,)
    assert out["label"].dtype == np.int32 and out["label"].shape == (n,)
    assert out["vec"].dtype == np.float32 and out["vec"].shape == (n, DIM)
    assert out["flag"].dtype == np.bool_ and out["flag"].shape == (n,)
    assert out["half"].dtype == np.float16 and out["half"].shape == (n,)
    assert out["u32"].dtype == np.uint32 and out["u32"].shape == (n,)
    assert out["grid"].dtype == np.int16 and out["grid"].shape == (n, 2, 3)
    ids = batch.column("id").to_pylist()
    assert out["id"].tolist() == ids
    assert out["label"].tolist() == [i % 3 for i in ids]
    assert out["vec"].tolist() == [[i * DIM + k for k in range(DIM)] for i in ids]
    assert out["flag"].tolist() == [i % 2 == 0 for i in ids]
    assert out["half"].tolist() == [float(i) for i in ids]
    assert out["u32"].tolist() == [7 * i for i in ids]
    assert out["grid"].tolist() == [
        [[i * 6 + 3 * j + k for k in range(3)] for j in range(2)] for i in ids
    ]


def test_numpy_dict_take(split):
    offsets = [8, 0, 3, 3, 5]
    out = split.with_format("numpy_dict").take_offsets(offsets)
    _assert_numpy_columns(out, _expected_rows(split, offsets))
    # Gathered straight into arrays (a view of an Arrow batch would be read-only).
    assert all(array.flags.writeable for array in out.values())


def test_numpy_dict_matches_the_transform_on_the_batch(split):
    offsets = [2, 7, 1]
    native = split.with_format("numpy_dict").__getitems__(offsets)
    converted = batch_to_numpy_dict(_expected_rows(split, offsets))
    assert list(native) == list(converted)
    for name in native:
        assert native[name].dtype == converted[name].dtype
        np.testing.assert_array_equal(native[name], converted[name])


def test_torch_dict_take(split):
    offsets = [8, 0, 3, 3, 5]
    out = split.with_format("torch_dict").take_offsets(offsets)
    expected = _expected_rows(split, offsets)
    assert all(isinstance(v, torch.Tensor) for v in out.values())
    assert out["vec"].shape == (5, DIM) and out["vec"].dtype == torch.float32
    assert out["grid"].shape == (5, 2, 3) and out["grid"].dtype == torch.int16
    assert out["flag"].dtype == torch.bool
    assert out["half"].dtype == torch.float16
    assert out["u32"].dtype == torch.uint32
    _assert_numpy_columns({k: v.numpy() for k, v in out.items()}, expected)


def test_torch_dict_matches_the_transform_on_the_batch(split):
    offsets = [4, 4, 0]
    native = split.with_format("torch_dict")[0]
    assert {k: v.shape for k, v in native.items()} == {
        "id": (1,),
        "label": (1,),
        "vec": (1, DIM),
        "flag": (1,),
        "half": (1,),
        "u32": (1,),
        "grid": (1, 2, 3),
    }
    native = split.with_format("torch_dict").__getitems__(offsets)
    converted = batch_to_torch_dict(_expected_rows(split, offsets))
    assert list(native) == list(converted)
    for name in native:
        assert native[name].dtype == converted[name].dtype
        assert torch.equal(native[name], converted[name])


def test_with_transform_of_the_helper_is_the_format(split):
    out = split.with_transform(batch_to_torch_dict).take_offsets([1, 2])
    assert (
        out["id"].tolist()
        == split.with_format("torch_dict").take_offsets([1, 2])["id"].tolist()
    )


def test_native_columns_are_writable_and_do_not_alias(split):
    # The same stored column selected twice: two columns, each with its own memory.
    twice = split._copy(selection={"a": "id", "b": "id", "vec": "vec"})
    out = twice.with_format("numpy_dict").take_offsets([0, 1, 2])
    assert list(out) == ["a", "b", "vec"]
    assert all(a.flags.writeable for a in out.values())
    before = out["b"].copy()
    out["a"][:] = -1
    np.testing.assert_array_equal(out["b"], before)
    again = twice.with_format("numpy_dict").take_offsets([0, 1, 2])
    np.testing.assert_array_equal(again["a"], before)  # the table is untouched
    tensors = twice.with_format("torch_dict").take_offsets([0, 1, 2])
    tensors["vec"] += 1  # writable tensors: no warning, no shared memory
    assert not torch.equal(
        tensors["vec"], twice.with_format("torch_dict").take_offsets([0, 1, 2])["vec"]
    )


def test_empty_take(split):
    out = split.with_format("numpy_dict").take_offsets([])
    assert {k: v.shape for k, v in out.items()} == {
        "id": (0,),
        "label": (0,),
        "vec": (0, DIM),
        "flag": (0,),
        "half": (0,),
        "u32": (0,),
        "grid": (0, 2, 3),
    }
    tensors = split.with_format("torch_dict").take_offsets([])
    assert tensors["vec"].shape == (0, DIM)


def test_offsets_as_arrays_and_out_of_range(split):
    p = split.with_format("numpy_dict")
    expected = p.take_offsets([3, 1])["id"].tolist()
    assert p.take_offsets(np.array([3, 1], dtype=np.int32))["id"].tolist() == expected
    assert p.take_offsets(torch.tensor([3, 1]))["id"].tolist() == expected
    assert p.take_offsets((3, 1))["id"].tolist() == expected
    with pytest.raises(IndexError, match="Offset 9 at position 1"):
        p.take_offsets([0, 9])
    with pytest.raises(IndexError, match="Offset -1 at position 0"):
        p.take_offsets([-1])


def test_skip_take_and_repeat(split):
    ids = split.with_format("numpy_dict").take_offsets(list(range(9)))["id"].tolist()
    p = split.with_skip(2).with_take(4).with_format("numpy_dict")
    assert p.take_offsets([0, 3])["id"].tolist() == [ids[2], ids[5]]
    repeated = p.with_repeat(3)
    assert repeated.take_offsets([0, 4, 11])["id"].tolist() == [ids[2], ids[2], ids[5]]
    with pytest.raises(IndexError, match="Offset 12 at position 0"):
        repeated.take_offsets([12])


@pytest.mark.parametrize("fmt", ["numpy_dict", "torch_dict"])
def test_iteration(split, fmt):
    ids = split.with_format("arrow").take_offsets(list(range(9))).column("id").to_pylist()
    p = split.with_format(fmt)
    batches = list(p.iter(4))
    assert [len(b["id"]) for b in batches] == [4, 4, 1]
    assert [int(i) for b in batches for i in b["id"]] == ids
    assert batches[0]["vec"].shape == (4, DIM)
    assert [len(b["id"]) for b in p.with_batch_size(4)] == [4, 4]  # __iter__ drops
    repeated = [int(i) for b in p.with_repeat(2).iter(5) for i in b["id"]]
    assert repeated == ids + ids
    assert list(p.with_skip(1).with_take(3).iter(2))[1]["id"].tolist() == [ids[3]]


def test_identity_permutation(table):
    p = (
        Permutation.identity(table)
        .select_columns(["id", "vec"])
        .with_format("torch_dict")
    )
    out = p.__getitems__([11, 0, 5])
    assert out["id"].tolist() == [11, 0, 5]
    assert out["vec"][0].tolist() == [44.0, 45.0, 46.0, 47.0]
    assert [b["id"].tolist() for b in p.iter(5)][-1] == [10, 11]


def test_expressions_and_rowid(split):
    p = split._copy(
        selection={"double": "label * 2", "_rowid": "_rowid", "id": "id"}
    ).with_format("numpy_dict")
    arrow = p.with_format("arrow").take_offsets([0, 1, 2])
    out = p.take_offsets([0, 1, 2])
    assert list(out) == ["double", "_rowid", "id"]
    assert out["_rowid"].dtype == np.uint64
    assert out["_rowid"].tolist() == arrow.column("_rowid").to_pylist()
    assert out["double"].tolist() == arrow.column("double").to_pylist()


def test_columns_without_a_numpy_form_go_through_arrow(mem_db):
    table = mem_db.create_table(
        "mixed",
        pa.table(
            {
                "id": pa.array([1, 2, 3], pa.int64()),
                "name": ["a", "b", "c"],
                "score": pa.array([1.5, None, 3.5]),
            }
        ),
    )
    p = Permutation.identity(table)
    out = p.with_format("numpy_dict").take_offsets([2, 0])
    assert out["id"].tolist() == [3, 1]
    assert out["name"].tolist() == ["c", "a"]
    assert out["score"].tolist() == [3.5, 1.5]
    with_null = p.with_format("numpy_dict").take_offsets([1])["score"]
    assert np.isnan(with_null[0])
    numbers = p.select_columns(["id", "score"]).with_format("torch_dict")
    assert numbers.take_offsets([0, 2])["score"].tolist() == [1.5, 3.5]
    with pytest.raises(TypeError, match="Column 'score'.*nulls"):
        numbers.take_offsets([1])
    with pytest.raises(TypeError, match="Column 'name'"):
        p.with_format("torch_dict").take_offsets([0])


def test_fixed_size_list_with_null_values_goes_through_arrow(mem_db):
    values = pa.array([1.0, None, 3.0, 4.0], pa.float32())
    table = mem_db.create_table(
        "nulls",
        pa.table({"v": pa.FixedSizeListArray.from_arrays(values, 2)}),
    )
    out = Permutation.identity(table).with_format("numpy_dict").take_offsets([1, 0])
    assert out["v"].shape == (2, 2)
    assert out["v"][0].tolist() == [3.0, 4.0]
    assert np.isnan(out["v"][1][1])


def test_timestamps_keep_their_numpy_type(mem_db):
    table = mem_db.create_table(
        "ts", pa.table({"t": pa.array([0, 86_400], pa.timestamp("s"))})
    )
    out = Permutation.identity(table).with_format("numpy_dict").take_offsets([1])
    assert out["t"].dtype == np.dtype("datetime64[s]")
    assert out["t"].tolist() == [np.datetime64(86_400, "s").item()]


@pytest.mark.parametrize("fmt", ["numpy_dict", "torch_dict"])
def test_format_pickles(split, fmt):
    p = split.with_format(fmt)
    clone = pickle.loads(pickle.dumps(p))
    assert clone.transform_fn is p.transform_fn
    assert (
        clone.take_offsets([4, 1])["id"].tolist() == p.take_offsets([4, 1])["id"].tolist()
    )


def test_dataloader_with_an_identity_collate(split):
    p = split.select_columns(["id", "vec"]).with_format("torch_dict")
    loader = torch.utils.data.DataLoader(
        p, batch_size=4, shuffle=True, collate_fn=_identity
    )
    batches = list(loader)
    assert [b["vec"].shape for b in batches] == [(4, DIM), (4, DIM), (1, DIM)]
    ids = sorted(int(i) for b in batches for i in b["id"])
    expected = split.with_format("arrow").take_offsets(list(range(9))).column("id")
    assert ids == sorted(expected.to_pylist())


def _identity(batch):
    return batch


def test_reads_do_not_import_pandas(tmp_path):
    """pyarrow's ``Array.to_numpy`` imports pandas on first use (a third of a second
    before a training loop's first batch): the numeric read paths avoid it."""
    import riffledb

    riffledb.connect(tmp_path).create_table("t", _data())
    code = f"""
import sys
import riffledb
from riffledb.permutation import Permutation
p = Permutation.identity(riffledb.connect({str(tmp_path)!r}).open_table("t"))
p = p.select_columns(["id", "label", "vec", "half", "u32", "grid"])
for fmt in ["torch_dict", "numpy_dict", "numpy", "arrow"]:
    p.with_format(fmt).__getitems__([3, 1])
    next(iter(p.with_format(fmt).iter(5)))
print(sorted(m for m in ("pandas", "pyarrow.compute") if m in sys.modules))
"""
    out = run_python(code, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_helpers_honour_a_sliced_batch(split):
    batch = _expected_rows(split, list(range(9))).slice(2, 3)
    ids = batch.column("id").to_pylist()
    vec = [[i * DIM + k for k in range(DIM)] for i in ids]
    grid = [[[i * 6 + 3 * j + k for k in range(3)] for j in range(2)] for i in ids]
    arrays = batch_to_numpy_dict(batch)
    assert arrays["vec"].tolist() == vec and arrays["grid"].tolist() == grid
    tensors = batch_to_torch_dict(batch)
    assert tensors["vec"].tolist() == vec and tensors["grid"].tolist() == grid
