"""riffledb.util.one_buffer_collate: a batch crosses from a DataLoader worker to the main
process as one shared-memory buffer; the loop gets the same dict of tensors."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest
from harness.data import rows
from harness.hang import run_in_child

import riffledb

torch = pytest.importorskip("torch")
from riffledb.util import one_buffer_collate  # noqa: E402

N = 300


@pytest.fixture
def db_uri(tmp_path):
    table = rows(0, N, emb_dim=4)
    flags = pa.array(np.arange(N) % 2 == 0)
    riffledb.connect(tmp_path).create_table("data", table.append_column("even", flags))
    return str(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("fmt", ["torch_dict", "numpy_dict"])
def test_workers_send_one_buffer_per_batch(db_uri, method, fmt):
    from harness import streaming_scenarios

    result = run_in_child(
        streaming_scenarios.one_buffer_epoch,
        db_uri,
        method,
        fmt,
        what=f"one_buffer_collate with 2 {method} workers",
    )
    assert sorted(result["ids"]) == list(range(N))
    assert result["layouts"] == [
        (
            ("id", "torch.int64", ()),
            ("x", "torch.float64", ()),
            ("emb", "torch.float32", (4,)),
            ("even", "torch.bool", ()),
        )
    ]
    assert all(result["shared"]) and len(result["shared"]) == 10
    assert result["values"]
    assert result["left_in_dev_shm"] == []


def test_in_the_main_process_it_is_the_dict_itself():
    batch = {"a": np.arange(3), "b": torch.ones(3, 2)}
    out = one_buffer_collate(batch)
    assert list(out) == ["a", "b"]
    assert out["a"].tolist() == [0, 1, 2] and out["b"] is batch["b"]
    arrow = one_buffer_collate(pa.record_batch({"a": [1, 2]}))
    assert arrow["a"].tolist() == [1, 2]
    assert one_buffer_collate(pa.table({"a": [5, 6]}))["a"].tolist() == [5, 6]


def test_the_packed_form_round_trips_through_pickle_and_leaves_no_segment():
    import pickle

    from riffledb.formats import _SENT, _pack

    tensors = {"a": torch.tensor([7, 8, 9]), "b": torch.tensor([[1.5], [2.5], [3.5]])}
    packed = _pack(torch, tensors)
    assert os.path.exists(f"/dev/shm{packed.name}") and packed.name in _SENT
    data = pickle.dumps(packed)
    assert len(data) < 1000  # a name and a layout, not the data
    out = pickle.loads(data)
    assert out["a"].tolist() == [7, 8, 9] and out["b"].tolist() == [[1.5], [2.5], [3.5]]
    assert out["a"].untyped_storage().data_ptr() == out["b"].untyped_storage().data_ptr()
    assert not os.path.exists(f"/dev/shm{packed.name}")


def test_segment_names_are_random_and_the_list_of_them_bounded():
    from riffledb.formats import _SENT, _pack, _remove_unattached

    names = [_pack(torch, {"a": torch.arange(2)}).name for _ in range(1100)]
    assert len(set(names)) == 1100
    assert all(name.startswith(f"/riffledb-{os.getpid()}-") for name in names)
    assert len(_SENT) == 1024 and list(_SENT) == names[-1024:]
    import _posixshmem

    for name in names[:76]:  # older than the list: a main process would have them
        _posixshmem.shm_unlink(name)
    _remove_unattached()
    assert not any(os.path.exists(f"/dev/shm{name}") for name in names)


def test_segments_nobody_attached_are_removed_at_exit():
    from riffledb.formats import _SENT, _pack, _remove_unattached

    names = [_pack(torch, {"a": torch.arange(4)}).name for _ in range(3)]
    assert all(os.path.exists(f"/dev/shm{name}") for name in names)
    _remove_unattached()
    assert not any(os.path.exists(f"/dev/shm{name}") for name in names)
    assert not _SENT


@pytest.mark.parametrize(
    "batch, message",
    [
        ([{"a": 1}], "takes a whole batch as a dict of columns .* got list"),
        ({"s": np.array(["x", "y"], dtype=object)}, "column 's' is not numeric"),
        ({"u": np.array(["ab", "c"])}, r"column 'u' is not numeric or boolean \(<U2\)"),
    ],
)
def test_bad_batches(batch, message):
    with pytest.raises(TypeError, match=message):
        one_buffer_collate(batch)
