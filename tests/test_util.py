"""riffledb.util.tbl_to_tensor (spec §5): pa.Table -> (num_columns, num_rows) tensor."""

import pickle
import re

import pyarrow as pa
import pytest

from riffledb.util import tbl_to_tensor

torch = pytest.importorskip("torch")

TOO_LARGE = "Single batch was too large to fit into a one-chunk table"


def test_shape_values_dtype():
    tbl = pa.table({"a": pa.array(range(10), pa.int64()), "b": pa.array(range(10, 20))})
    t = tbl_to_tensor(tbl)
    assert isinstance(t, torch.Tensor)
    assert t.shape == (2, 10)
    assert t.dtype == torch.int64
    assert t.tolist() == [list(range(10)), list(range(10, 20))]


@pytest.mark.parametrize(
    ("arrow_type", "torch_dtype"),
    [
        (pa.int8(), torch.int8),
        (pa.int16(), torch.int16),
        (pa.int32(), torch.int32),
        (pa.int64(), torch.int64),
        (pa.uint8(), torch.uint8),
        (pa.float16(), torch.float16),
        (pa.float32(), torch.float32),
        (pa.float64(), torch.float64),
    ],
)
def test_dtypes(arrow_type, torch_dtype):
    tbl = pa.table({"a": pa.array([1, 2, 3]).cast(arrow_type)})
    t = tbl_to_tensor(tbl)
    assert t.dtype == torch_dtype
    assert t.shape == (1, 3)
    assert t.tolist() == [[1, 2, 3]]


def test_single_column_single_row():
    assert tbl_to_tensor(pa.table({"a": [7.5]})).tolist() == [[7.5]]


def test_result_does_not_alias_input_after_mutation():
    tbl = pa.table({"a": pa.array([1.0, 2.0]), "b": pa.array([3.0, 4.0])})
    t = tbl_to_tensor(tbl)
    t[0, 0] = 100.0  # torch.stack copies, so the Arrow buffer is untouched
    assert tbl["a"].to_pylist() == [1.0, 2.0]


def test_multi_chunk_column_raises():
    tbl = pa.Table.from_batches(
        [pa.record_batch({"a": [1, 2]}), pa.record_batch({"a": [3, 4]})]
    )
    assert tbl["a"].num_chunks == 2
    with pytest.raises(Exception, match=re.escape(TOO_LARGE)):
        tbl_to_tensor(tbl)


def test_combined_chunks_work():
    tbl = pa.Table.from_batches(
        [pa.record_batch({"a": [1, 2]}), pa.record_batch({"a": [3, 4]})]
    ).combine_chunks()
    assert tbl_to_tensor(tbl).tolist() == [[1, 2, 3, 4]]


def test_nulls_raise_type_error():
    with pytest.raises(TypeError, match="no nulls"):
        tbl_to_tensor(pa.table({"a": pa.array([1, None, 3], pa.int64())}))


@pytest.mark.parametrize(
    "arr",
    [
        pa.array([True, False]),
        pa.array(["a", "b"]),
        pa.array([[1], [2]]),
    ],
    ids=["bool", "string", "list"],
)
def test_non_numeric_raise_type_error(arr):
    with pytest.raises(TypeError):
        tbl_to_tensor(pa.table({"a": arr}))


def test_is_picklable_by_name():
    # DataLoader workers under spawn receive the collate_fn pickled by name.
    assert pickle.loads(pickle.dumps(tbl_to_tensor)) is tbl_to_tensor


def test_missing_torch_raises_import_error(monkeypatch):
    # torch is imported lazily, at call time (spec §1.3); a None entry in sys.modules
    # makes `import torch` raise ImportError as if it were not installed.
    monkeypatch.setitem(__import__("sys").modules, "torch", None)
    with pytest.raises(ImportError, match="torch"):
        tbl_to_tensor(pa.table({"a": [1, 2]}))


def test_table_head_to_tensor(mem_db):
    tbl = mem_db.create_table("t", pa.table({"x": range(5), "y": [0.5] * 5}))
    t = tbl_to_tensor(tbl.__getitems__([4, 2]).combine_chunks())
    # int64 and float64 columns: torch.stack promotes to float64.
    assert t.dtype == torch.float64
    assert t.tolist() == [[4.0, 2.0], [0.5, 0.5]]
