"""The permutation pickle state (riffledb.permutation_state): its layout round-trips, and
a state dict that riffledb did not write is refused when unpickling, naming the key.

How pickled permutations read (sizes, laziness, version pins) is in test_pickle.py.
"""

import dataclasses
import functools
import pickle

import pyarrow as pa
import pytest
from harness.data import all_rows, open_table

from riffledb.errors import InvalidError, RiffledbTypeError
from riffledb.permutation import Permutation, Permutations, permutation_builder
from riffledb.permutation_state import FORMAT_VERSION, PermutationState, SplitData


def data(n):
    return pa.table({"id": pa.array(range(n), pa.int64())})


def train_split(table):
    built = (
        permutation_builder(table)
        .split_random(ratios=[0.8, 0.2], seed=1, split_names=["train", "test"])
        .execute()
    )
    return Permutations(table, built)["train"]


def hand_made(table):
    rows = pa.table(
        {
            "row_id": pa.array([3, 1, 2, 7, 9, 8, 0, 4], pa.uint64()),
            "split_id": pa.array([0, 0, 1, 0, 0, 0, 0, 0]),
        }
    )
    from riffledb import connect

    return Permutation.from_tables(table, connect("memory://").create_table("p", rows))


@pytest.fixture
def state(tmp_db):
    """A valid state (a builder split: recipe form) to break one key at a time."""
    return train_split(tmp_db.create_table("t", data(50))).__getstate__()


def unpickle(state):
    restored = Permutation.__new__(Permutation)
    restored.__setstate__(state)
    return restored


# -- the layout --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["recipe", "row_ids", "identity", "memory", "factory"])
def test_state_dict_round_trips_through_the_state_object(tmp_db, mem_db, kind):
    table = tmp_db.create_table("t", data(50))
    if kind == "recipe":
        p = train_split(table)
    elif kind == "row_ids":
        p = hand_made(table)
    elif kind == "identity":
        p = Permutation.identity(table)
    elif kind == "memory":
        p = train_split(mem_db.create_table("m", data(50)))
    else:
        p = train_split(table).with_connection_factory(
            functools.partial(open_table, tmp_db.uri)
        )
    p = p.with_skip(1).with_take(5).with_repeat(3).with_batch_size(2)
    state = p.__getstate__()
    checked = PermutationState.from_dict(state)
    assert checked.to_dict() == state
    assert state["format_version"] == FORMAT_VERSION == 2
    assert (checked.offset, checked.limit, checked.repeat, checked.batch_size) == (
        1,
        5,
        3,
        2,
    )
    expected_data = {
        "recipe": SplitData,
        "row_ids": SplitData,
        "identity": type(None),
        "memory": type(None),  # the split's rows became the base table
        "factory": SplitData,
    }[kind]
    assert type(checked.permutation_data) is expected_data
    assert all_rows(unpickle(state)) == all_rows(p)


def test_state_object_is_frozen(state):
    checked = PermutationState.from_dict(state)
    with pytest.raises(dataclasses.FrozenInstanceError):
        checked.split = 1


def test_split_data_forms(tmp_db):
    table = tmp_db.create_table("t", data(50))
    recipe = PermutationState.from_dict(train_split(table).__getstate__())
    split = recipe.permutation_data
    assert split.recipe and split.digest and split.row_ids is None
    assert split.split_names == ["train", "test"]
    ids = PermutationState.from_dict(hand_made(table).__getstate__()).permutation_data
    assert ids.recipe is None and ids.split_names is None
    assert (
        ids.row_ids
        == pa.array([3, 1, 7, 9, 8, 0, 4], pa.uint64()).buffers()[1].to_pybytes()
    )


# -- checks on the way in ----------------------------------------------------------------


def test_state_must_be_a_dict():
    with pytest.raises(RiffledbTypeError, match="must be a dict, got list"):
        unpickle([("split", 0)])


@pytest.mark.parametrize("version", [1, 3, "2", 2.5, True, None])
def test_unknown_format_version(state, version):
    state["format_version"] = version
    with pytest.raises(
        InvalidError,
        match=rf"key 'format_version' is {version!r}: this riffledb reads only "
        r"format version 2",
    ):
        unpickle(state)


@pytest.mark.parametrize(
    "key",
    [
        "format_version",
        "base_table_name",
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
    ],
)
def test_missing_key_is_named(state, key):
    del state[key]
    with pytest.raises(InvalidError, match=rf"^permutation pickle state key '{key}' is "):
        unpickle(state)


def test_missing_base_names_both_ways_to_reopen(state):
    del state["base_table_state"]
    with pytest.raises(
        InvalidError,
        match="over table 't': the state has neither a base_table_state nor a "
        "connection_factory",
    ):
        unpickle(state)


def test_unknown_key_is_named(state):
    state["shuffle_seed"] = 3
    with pytest.raises(InvalidError, match="key 'shuffle_seed' is unknown"):
        unpickle(state)


@pytest.mark.parametrize(
    ("key", "value", "error", "message"),
    [
        ("base_table_name", 5, TypeError, "'base_table_name' must be a str, got int 5"),
        ("base_table_state", "t", TypeError, "'base_table_state' must be a dict"),
        ("base_version", "1", TypeError, "'base_version' must be an integer or None"),
        ("base_version", 0, ValueError, r"'base_version' must be in \[1, "),
        ("split", -1, ValueError, r"'split' must be in \[0, "),
        ("split", 1.0, TypeError, "'split' must be an integer, got float"),
        ("selection", {}, TypeError, "'selection' must be a non-empty dict"),
        ("selection", ["id"], TypeError, "'selection' must be a non-empty dict"),
        ("selection", {"id": 1}, TypeError, "'selection' must map str to str"),
        ("batch_size", 0, ValueError, r"'batch_size' must be in \[1, "),
        ("batch_size", "8", TypeError, "'batch_size' must be an integer, got str"),
        ("transform_fn", None, TypeError, "'transform_fn' must be callable, got "),
        ("offset", -1, ValueError, r"'offset' must be in \[0, "),
        ("limit", 2**63, ValueError, r"'limit' must be in \[0, 9223372036854775807\]"),
        ("repeat", 0, ValueError, r"'repeat' must be in \[1, "),
        ("binary_views", "yes", TypeError, "'binary_views' must be a bool"),
        ("connection_factory", "f", TypeError, "'connection_factory' must be callable"),
        ("base_table_id", 7, TypeError, "'base_table_id' must be a str"),
        ("base_table_id", "ab", ValueError, "'base_table_id' is set, but the state is"),
    ],
)
def test_wrong_value_is_named(state, key, value, error, message):
    state[key] = value
    with pytest.raises(error, match=message):
        unpickle(state)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ([1, 2], TypeError, "'permutation_data' must be a dict, a pyarrow.Table or None"),
        ({"split_names": None}, ValueError, "must have a 'recipe' or a 'row_ids' key"),
        (
            {"row_ids": b"\0" * 7, "split_names": None},
            ValueError,
            r"'permutation_data.row_ids' must hold uint64 values \(a multiple of 8 "
            r"bytes\), got 7 bytes",
        ),
        (
            {"row_ids": [1, 2], "split_names": None},
            TypeError,
            "'permutation_data.row_ids' must be bytes, got list",
        ),
        (
            {"row_ids": b"", "split_names": None, "digest": "x"},
            ValueError,
            "'permutation_data.digest' is unknown",
        ),
        ({"recipe": "{}", "split_names": None}, ValueError, "'permutation_data.digest' "),
        (
            {"recipe": b"{}", "digest": "d", "split_names": None},
            TypeError,
            "'permutation_data.recipe' must be a str, got bytes",
        ),
        (
            {"recipe": "{}", "digest": "d", "split_names": ["a", 1]},
            TypeError,
            "'permutation_data.split_names' must be a list of str, got int 1 at "
            "position 1",
        ),
    ],
)
def test_wrong_permutation_data_is_named(state, value, error, message):
    state["permutation_data"] = value
    with pytest.raises(error, match=message):
        unpickle(state)


def test_checks_run_when_unpickling_not_on_first_use(state):
    state["batch_size"] = -3
    blob = pickle.dumps(state)
    with pytest.raises(ValueError, match="'batch_size'"):
        unpickle(pickle.loads(blob))


def test_row_ids_accept_a_bytearray(tmp_db):
    table = tmp_db.create_table("t", data(50))
    p = hand_made(table)
    state = p.__getstate__()
    state["permutation_data"]["row_ids"] = bytearray(state["permutation_data"]["row_ids"])
    assert all_rows(unpickle(state)) == all_rows(p)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"kind": "cloud"}, ValueError, "Unknown table pickle state kind: 'cloud'"),
        # A remote base table pickles as its connection (riffledb.remote.table).
        ({"kind": "remote"}, ValueError, "key 'base_table_state.connection' is missing"),
        ({"uri": None}, TypeError, "'base_table_state' key 'uri' must be str, got"),
        ({"version": "3"}, TypeError, "key 'version' must be int, got str"),
        ({"version": True}, TypeError, "key 'version' must be int, got bool"),
        ({"name": 1}, TypeError, "key 'name' must be str, got int"),
        ({"path": "/x"}, ValueError, "of kind 'local' has an unknown key 'path'"),
    ],
)
def test_wrong_base_table_state_is_named(state, change, error, message):
    state["base_table_state"] = {**state["base_table_state"], **change}
    with pytest.raises(error, match=message):
        unpickle(state)


def test_base_table_state_missing_a_key(state):
    del state["base_table_state"]["uri"]
    with pytest.raises(ValueError, match="of kind 'local' is missing the key 'uri'"):
        unpickle(state)
    state["base_table_state"] = "t"
    with pytest.raises(TypeError, match="'base_table_state' must be a dict, got str"):
        unpickle(state)


def test_table_pickle_state_is_checked_too(tmp_db):
    table = tmp_db.create_table("t", data(5))
    state = table.__getstate__()
    state["kind"] = "remote"
    with pytest.raises(ValueError, match=r"kind: 'remote' \(in table pickle state\)"):
        table.__new__(type(table)).__setstate__(state)
    restored = pickle.loads(pickle.dumps(Permutation.identity(tmp_db.open_table("t"))))
    assert len(restored) == 5
