"""Permutation formats and the batch converters of riffledb.util (spec §5, §10 #13).

The ``"numpy"`` format is one 2-D array (rows, features), matching LanceDB's behaviour
(its docstring's "dict of arrays" was wrong); ``batch_to_numpy_dict`` gives per-column
arrays.
"""

import pickle

import numpy as np
import pyarrow as pa
import pytest

from riffledb.permutation import Permutation, Transforms
from riffledb.util import (
    batch_to_numpy,
    batch_to_numpy_dict,
    batch_to_tensor,
    batch_to_tensor_dict,
    batch_to_tensor_rows,
    tbl_to_tensor,
)

EMB = pa.list_(pa.float32(), 3)


@pytest.fixture
def perm(mem_db):
    """10 rows: a int64 = i, b float64 = i / 2, read in reverse order."""
    table = mem_db.create_table(
        "t",
        pa.table({"a": pa.array(range(10), pa.int64()), "b": [i / 2 for i in range(10)]}),
    )
    return Permutation.identity(table)


@pytest.fixture
def emb_perm(mem_db):
    """Embeddings: id uint8, emb fixed_size_list<float32, 3> = [i, i + .5, -i]."""
    table = mem_db.create_table(
        "e",
        pa.table(
            {
                "id": pa.array(range(6), pa.uint8()),
                "emb": pa.array([[i, i + 0.5, -i] for i in range(6)], EMB),
            }
        ),
    )
    return Permutation.identity(table)


def test_python(perm):
    assert perm.with_format("python").take_offsets([3, 1]) == [
        {"a": 3, "b": 1.5},
        {"a": 1, "b": 0.5},
    ]


def test_python_col(perm):
    assert perm.with_format("python_col").take_offsets([3, 1]) == {
        "a": [3, 1],
        "b": [1.5, 0.5],
    }


def test_arrow(perm):
    batch = perm.with_format("arrow").take_offsets([3, 1])
    assert isinstance(batch, pa.RecordBatch)
    assert batch.equals(
        pa.record_batch({"a": pa.array([3, 1], pa.int64()), "b": [1.5, 0.5]})
    )


def test_numpy_is_2d_rows_by_columns(perm):
    array = perm.select_columns(["a"]).with_format("numpy").take_offsets(list(range(10)))
    assert array.shape == (10, 1)
    assert array.dtype == np.int64
    assert array[:, 0].tolist() == list(range(10))
    mixed = perm.with_format("numpy").take_offsets([3, 1])
    assert mixed.shape == (2, 2)
    assert mixed.dtype == np.float64  # int64 and float64 promote
    assert mixed.tolist() == [[3.0, 1.5], [1.0, 0.5]]
    same = perm._copy(selection={"a": "a", "c": "a * 2"}).with_format("numpy")
    out = same.take_offsets([4])
    assert out.dtype == np.int64
    assert out.tolist() == [[4, 8]]


def test_numpy_strings_give_object(mem_db):
    table = mem_db.create_table("s", pa.table({"a": [1, 2], "s": ["x", "y"]}))
    out = Permutation.identity(table).with_format("numpy").take_offsets([1, 0])
    assert out.dtype == object
    assert out.tolist() == [[2, "y"], [1, "x"]]


def test_numpy_embeddings_expand_to_features(emb_perm):
    out = emb_perm.with_format("numpy").take_offsets([2, 0])
    assert out.shape == (2, 4)
    assert out.dtype == np.float32
    assert out.tolist() == [[2, 2, 2.5, -2], [0, 0, 0.5, 0]]
    only = emb_perm.select_columns(["emb"]).with_format("numpy").take_offsets([5])
    assert only.shape == (1, 3)
    assert only.dtype == np.float32


def test_numpy_single_numeric_column_is_zero_copy(perm):
    batch = perm.select_columns(["a"]).with_format("arrow").take_offsets([5, 6, 7])
    out = batch_to_numpy(batch)
    assert out.ctypes.data == batch.column(0).buffers()[1].address
    assert out.shape == (3, 1)


def test_numpy_dict_is_per_column_and_zero_copy(emb_perm):
    batch = emb_perm.with_format("arrow").take_offsets([1, 4])
    out = batch_to_numpy_dict(batch)
    assert list(out) == ["id", "emb"]
    assert out["id"].dtype == np.uint8
    assert out["id"].tolist() == [1, 4]
    assert out["emb"].shape == (2, 3)
    assert out["emb"].tolist() == [[1, 1.5, -1], [4, 4.5, -4]]
    values = batch.column(1).flatten()
    assert out["emb"].ctypes.data == values.buffers()[1].address + values.offset * 4


def test_pandas(perm):
    pd = pytest.importorskip("pandas")
    df = perm.with_format("pandas").take_offsets([3, 1])
    assert isinstance(df, pd.DataFrame)
    assert df.to_dict("list") == {"a": [3, 1], "b": [1.5, 0.5]}
    assert str(df["a"].dtype) == "int64"


def test_polars_and_pickling(perm):
    pl = pytest.importorskip("polars")
    with_polars = perm.with_format("polars")
    df = with_polars.take_offsets([3, 1])
    assert isinstance(df, pl.DataFrame)
    assert df.to_dict(as_series=False) == {"a": [3, 1], "b": [1.5, 0.5]}
    # Upstream bug (§8 #12): the polars transform was a closure and did not pickle.
    transform = pickle.loads(pickle.dumps(with_polars.transform_fn))
    assert transform(pa.record_batch({"x": [1]})).to_dict(as_series=False) == {"x": [1]}
    assert Transforms.arrow2polars() is with_polars.transform_fn


# -- torch -------------------------------------------------------------------------------


def test_torch_is_row_dicts_of_views_keeping_dtypes(perm):
    torch = pytest.importorskip("torch")
    rows = perm.with_format("torch").take_offsets([3, 1])
    assert len(rows) == 2
    assert list(rows[0]) == ["a", "b"]
    assert rows[0]["a"].shape == ()
    assert rows[0]["a"].dtype == torch.int64
    assert rows[0]["b"].dtype == torch.float64
    assert [(r["a"].item(), r["b"].item()) for r in rows] == [(3, 1.5), (1, 0.5)]
    collated = torch.utils.data.default_collate(rows)
    assert collated["a"].tolist() == [3, 1]
    assert collated["b"].dtype == torch.float64


def test_torch_is_zero_copy(perm):
    pytest.importorskip("torch")
    batch = perm.with_format("arrow").take_offsets([3, 1, 4])
    rows = batch_to_tensor_dict(batch)
    address = batch.column(0).buffers()[1].address
    assert rows[0]["a"].data_ptr() == address
    assert rows[2]["a"].data_ptr() == address + 2 * 8


def test_torch_embeddings_are_2d(emb_perm):
    torch = pytest.importorskip("torch")
    rows = emb_perm.with_format("torch").take_offsets([2, 0])
    assert rows[0]["id"].dtype == torch.uint8
    assert rows[0]["emb"].shape == (3,)
    assert rows[0]["emb"].dtype == torch.float32
    collated = torch.utils.data.default_collate(rows)
    assert collated["emb"].shape == (2, 3)
    assert collated["emb"].tolist() == [[2, 2.5, -2], [0, 0.5, 0]]
    assert collated["id"].tolist() == [2, 0]
    batch = emb_perm.with_format("arrow").take_offsets([1, 2])
    emb = batch_to_tensor_dict(batch)[0]["emb"]
    values = batch.column(1).flatten()
    assert emb.data_ptr() == values.buffers()[1].address + values.offset * 4


def test_torch_row(perm):
    torch = pytest.importorskip("torch")
    rows = perm.with_format("torch_row").take_offsets([3, 1])
    assert [r.tolist() for r in rows] == [[3.0, 1.5], [1.0, 0.5]]
    assert rows[0].dtype == torch.float64
    ints = perm.select_columns(["a"]).with_format("torch_row").take_offsets([2])
    assert ints[0].dtype == torch.int64
    assert ints[0].tolist() == [2]
    assert torch.utils.data.default_collate(rows).shape == (2, 2)


def test_torch_row_embeddings_and_nulls(emb_perm, mem_db):
    torch = pytest.importorskip("torch")
    rows = emb_perm.with_format("torch_row").take_offsets([2])
    assert rows[0].dtype == torch.float32
    assert rows[0].tolist() == [2, 2, 2.5, -2]
    table = mem_db.create_table("n", pa.table({"a": pa.array([1, None], pa.int32())}))
    rows = Permutation.identity(table).with_format("torch_row").take_offsets([1, 0])
    assert torch.isnan(rows[0][0])
    assert rows[1].tolist() == [1.0]


def test_torch_col(perm):
    torch = pytest.importorskip("torch")
    out = perm.with_format("torch_col").take_offsets([3, 1, 2])
    assert out.shape == (2, 3)
    assert out.dtype == torch.float64
    assert out.tolist() == [[3, 1, 2], [1.5, 0.5, 1.0]]
    ints = perm.select_columns(["a"]).with_format("torch_col").take_offsets([3, 1])
    assert ints.dtype == torch.int64
    assert ints.tolist() == [[3, 1]]


def test_torch_col_embeddings(emb_perm):
    torch = pytest.importorskip("torch")
    out = emb_perm.with_format("torch_col").take_offsets([2, 0])
    assert out.shape == (4, 2)
    assert out.dtype == torch.float32
    assert out.tolist() == [[2, 0], [2, 0], [2.5, 0.5], [-2, 0]]


@pytest.mark.parametrize("fmt", ["torch", "torch_col"])
def test_torch_unsupported_columns_raise_naming_the_column(mem_db, fmt):
    pytest.importorskip("torch")
    table = mem_db.create_table(
        "u",
        pa.table({"s": ["x", "y"], "n": pa.array([1, None], pa.int64())}),
    )
    p = Permutation.identity(table).with_format(fmt)
    with pytest.raises(TypeError, match="^Column 's' of type string cannot be converted"):
        p.take_offsets([0])
    with pytest.raises(
        TypeError,
        match="^Column 'n' of type int64 cannot be converted to a tensor: it has nulls",
    ):
        p.select_columns(["n"]).take_offsets([1])
    assert p.select_columns(["n"]).take_offsets([0]) is not None


def test_torch_bool_columns_are_copied_to_bool_tensors(mem_db):
    torch = pytest.importorskip("torch")
    table = mem_db.create_table("b", pa.table({"flag": [True, False, True]}))
    rows = Permutation.identity(table).with_format("torch").take_offsets([1, 2])
    assert rows[0]["flag"].dtype == torch.bool
    assert [r["flag"].item() for r in rows] == [False, True]


def test_torch_keeps_narrow_and_unsigned_dtypes(mem_db):
    torch = pytest.importorskip("torch")
    table = mem_db.create_table(
        "d",
        pa.table(
            {
                "i8": pa.array([1, 2], pa.int8()),
                "u32": pa.array([3, 4], pa.uint32()),
                "f16": pa.array([np.float16(0.5), np.float16(1.5)], pa.float16()),
            }
        ),
    )
    rows = Permutation.identity(table).with_format("torch").take_offsets([1])
    assert [rows[0][k].dtype for k in ["i8", "u32", "f16"]] == [
        torch.int8,
        torch.uint32,
        torch.float16,
    ]


def test_tensor_helpers_on_empty_batches():
    torch = pytest.importorskip("torch")
    empty = pa.record_batch({"a": pa.array([], pa.int64())})
    assert batch_to_tensor_dict(empty) == []
    assert batch_to_tensor_rows(empty) == []
    assert batch_to_tensor(empty).shape == (1, 0)
    assert tbl_to_tensor(pa.table({"a": [1, 2]})).tolist() == [[1, 2]]
    assert batch_to_numpy(empty).shape == (0, 1)
    assert torch is not None


def test_every_format_is_accepted(perm):
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
            out = perm.with_format(fmt).take_offsets([0, 1])
        except ImportError:
            continue
        assert out is not None
