"""Every public method, called with arguments of the wrong type or out of range, raises a
riffledb error naming the argument, never nanobind's "incompatible function arguments"
(a TypeError listing C++ signatures)."""

import numpy as np
import pyarrow as pa
import pytest

import riffledb
from riffledb import _riffledb, errors
from riffledb._args import index_array
from riffledb.permutation import Permutation

BAD = {
    "None": None,
    "2**64": 2**64,
    "2**70": 2**70,
    "-1": -1,
    "1.5": 1.5,
    "'x'": "x",
    "[None]": [None],
    "object()": object(),
}

DATA = pa.table({"id": pa.array([0, 1, 2], pa.int64())})


class Ctx:
    def __init__(self, db, tmp_path):
        self.db = db
        self.tmp_path = tmp_path
        self.tbl = db.create_table("t", DATA)


# (method, call(ctx, value), the argument's name, the BAD labels that are valid values)
CASES = [
    ("connect", lambda c, v: riffledb.connect(v), "uri", {"'x'"}),
    (
        "table_names",
        lambda c, v: c.db.table_names(page_token=v),
        "page_token",
        {"None", "'x'"},
    ),
    ("table_names", lambda c, v: c.db.table_names(limit=v), "limit", {"None"}),
    ("__contains__", lambda c, v: v in c.db, "table name", {"'x'"}),
    ("create_table", lambda c, v: c.db.create_table(v, DATA), "name", {"'x'"}),
    ("create_table", lambda c, v: c.db.create_table("n", v), "data", set()),
    (
        "create_table",
        lambda c, v: c.db.create_table("n", DATA, schema=v),
        "schema",
        {"None"},
    ),
    ("create_table", lambda c, v: c.db.create_table("n", DATA, mode=v), "mode", set()),
    (
        "create_table",
        lambda c, v: c.db.create_table("n", DATA, exist_ok=v),
        "exist_ok",
        set(),
    ),
    ("open_table", lambda c, v: c.db.open_table(v), "name", set()),
    ("drop_table", lambda c, v: c.db.drop_table(v), "name", set()),
    (
        "drop_table",
        lambda c, v: c.db.drop_table("ghost", ignore_missing=v),
        "ignore_missing",
        set(),
    ),
    ("checkout", lambda c, v: c.tbl.checkout(v), "version", set()),
    ("count_rows", lambda c, v: c.tbl.count_rows(v), "filter", {"None"}),
    ("search", lambda c, v: c.tbl.search(v), "query", {"None"}),
    ("head", lambda c, v: c.tbl.head(v), "n", set()),
    ("take_offsets", lambda c, v: c.tbl.take_offsets(v).to_arrow(), "offsets", set()),
    ("take_row_ids", lambda c, v: c.tbl.take_row_ids(v).to_arrow(), "row_ids", set()),
    ("__getitems__", lambda c, v: c.tbl.__getitems__(v), "offsets", set()),
    ("add", lambda c, v: c.tbl.add(v), "data", set()),
    ("add", lambda c, v: c.tbl.add(DATA, mode=v), "mode", set()),
    ("delete", lambda c, v: c.tbl.delete(v), "where", set()),
    ("Query.where", lambda c, v: c.tbl.search().where(v), "where", {"'x'"}),
    ("Query.select", lambda c, v: c.tbl.search().select(v), "columns", {"None"}),
    ("Query.limit", lambda c, v: c.tbl.search().limit(v), "limit", {"None"}),
    ("Query.offset", lambda c, v: c.tbl.search().offset(v), "offset", set()),
    ("Query.to_reader", lambda c, v: c.tbl.search().to_reader(v), "batch_size", {"None"}),
    (
        "Query.to_batches",
        lambda c, v: list(c.tbl.search().to_batches(v)),
        "batch_size",
        {"None"},
    ),
    (
        "TakeQuery.select",
        lambda c, v: c.tbl.take_offsets([0]).select(v),
        "columns",
        set(),
    ),
]


@pytest.fixture(params=["tmp", "mem"])
def ctx(request, tmp_path, monkeypatch):
    # connect("x") makes a directory "x" in the working directory.
    monkeypatch.chdir(tmp_path)
    return Ctx(request.getfixturevalue(f"{request.param}_db"), tmp_path)


@pytest.mark.parametrize("label", list(BAD))
@pytest.mark.parametrize(
    ("method", "call", "argument", "valid"),
    CASES,
    ids=[f"{case[0]}-{case[2]}" for case in CASES],
)
def test_bad_argument(ctx, method, call, argument, valid, label):
    value = BAD[label]
    if label in valid:
        call(ctx, value)
        return
    with pytest.raises(Exception) as info:
        call(ctx, value)
    error = info.value
    message = str(error)
    assert "incompatible function arguments" not in message
    assert isinstance(error, errors.RiffledbError), f"{type(error).__name__}: {message}"
    # A bad string value (an unknown table or column) is named by its value instead.
    assert argument in message or (isinstance(value, str) and f"'{value}'" in message), (
        message
    )
    # Nothing was written by a failed call.
    assert ctx.tbl.version == 1
    assert ctx.db.table_names() == ["t"]


@pytest.mark.parametrize("position", [0, 2])
def test_take_offsets_float_is_type_error_naming_position(mem_db, position):
    tbl = mem_db.create_table("t", DATA)
    offsets = [0, 1, 1]
    offsets[position] = 1.7
    with pytest.raises(errors.RiffledbTypeError) as info:
        tbl.take_offsets(offsets)
    assert (
        str(info.value) == f"offsets must be integers, got float at position {position}"
    )


@pytest.mark.parametrize(
    ("call", "cls", "message"),
    [
        (
            lambda t: t.take_offsets([None]),
            errors.RiffledbTypeError,
            "offsets must be integers, got NoneType at position 0",
        ),
        (
            lambda t: t.take_offsets([0, 2**64]).to_arrow(),
            errors.RiffledbIndexError,
            f"Offset {2**64} at position 1 is out of the 64-bit integer range",
        ),
        (
            lambda t: t.take_offsets([2**63]).to_arrow(),
            errors.RiffledbIndexError,
            "Offset 9223372036854775808 at position 0 is out of the 64-bit integer range",
        ),
        (
            lambda t: t.take_row_ids([2**64]).to_arrow(),
            errors.RiffledbIndexError,
            f"Row id {2**64} at position 0 is out of the 64-bit integer range",
        ),
        (
            lambda t: t.search().limit(2**70),
            errors.InvalidError,
            f"limit must be in [0, {2**63 - 1}], got {2**70}",
        ),
        (
            lambda t: t.search().limit(-1),
            errors.InvalidError,
            f"limit must be in [0, {2**63 - 1}], got -1",
        ),
        (
            lambda t: t.search().limit(1.5),
            errors.RiffledbTypeError,
            "limit must be an integer or None, got float 1.5",
        ),
        (
            lambda t: t.checkout(2**64),
            errors.InvalidError,
            f"version must be in [0, {2**64 - 1}], got {2**64}",
        ),
        (
            lambda t: t.checkout(True),
            errors.RiffledbTypeError,
            "version must be an integer, got bool True",
        ),
        (
            lambda t: t.count_rows(123),
            errors.RiffledbTypeError,
            "filter must be a str or None, got int 123",
        ),
        (
            lambda t: t.delete(b"id > 1"),
            errors.RiffledbTypeError,
            "where must be a str, got bytes b'id > 1'",
        ),
        (
            lambda t: t.search().select(["id", 3]),
            errors.RiffledbTypeError,
            "columns must be a list of str, got int 3 at position 1",
        ),
        (
            lambda t: t.search().select({"y": 3}),
            errors.RiffledbTypeError,
            "columns must map output names (str) to SQL (str), got str 'y': int 3",
        ),
    ],
)
def test_exact_messages(mem_db, call, cls, message):
    tbl = mem_db.create_table("t", DATA)
    with pytest.raises(cls) as info:
        call(tbl)
    assert str(info.value) == message


def test_numpy_integers_are_integers(mem_db):
    tbl = mem_db.create_table("t", DATA)
    assert tbl.search().limit(np.int64(2)).offset(np.uint8(1)).to_arrow()[
        "id"
    ].to_pylist() == [1, 2]
    tbl.checkout(np.int32(1))
    assert tbl.head(np.int16(1)).num_rows == 1
    mem_db.drop_table("t", ignore_missing=np.bool_(False))
    assert mem_db.table_names() == []


def test_connect_rejects_bytes_and_nul():
    with pytest.raises(errors.RiffledbTypeError) as info:
        riffledb.connect(b"/tmp/db")
    assert str(info.value) == "uri must be a str or os.PathLike, got bytes b'/tmp/db'"
    with pytest.raises(errors.InvalidError) as info:
        riffledb.connect("/tmp/a\0b")
    assert str(info.value) == (
        "Invalid database URI '/tmp/a\\0b': it contains a NUL byte at position 6"
    )


def test_connect_unknown_keyword_is_type_error():
    with pytest.raises(errors.RiffledbTypeError, match="unexpected keyword arguments"):
        riffledb.connect("memory://", nosuch=1)


_TAKE_PATHS = {
    "table": lambda t, offsets: t.take_offsets(offsets).to_arrow(),
    "table_getitems": lambda t, offsets: t.__getitems__(offsets),
    "permutation": lambda t, offsets: Permutation.identity(t).take_offsets(offsets),
    "permutation_repeat": lambda t, offsets: (
        Permutation.identity(t).with_repeat(3).take_offsets(offsets)
    ),
    "permutation_getitems": lambda t, offsets: (
        Permutation.identity(t).with_skip(1).__getitems__(offsets)
    ),
}


@pytest.mark.parametrize("path", sorted(_TAKE_PATHS))
@pytest.mark.parametrize(
    ("offsets", "cls", "message"),
    [
        ([1.7], errors.RiffledbTypeError, "got float at position 0"),
        ([0, 1.0], errors.RiffledbTypeError, "got float at position 1"),
        ([True], errors.RiffledbTypeError, "got bool at position 0"),
        ([0, False], errors.RiffledbTypeError, "got bool at position 1"),
        (np.array([0.0, 1.5]), errors.RiffledbTypeError, "got float at position 0"),
        (np.array([True]), errors.RiffledbTypeError, "got bool at position 0"),
        ([0, None], errors.RiffledbTypeError, "got NoneType at position 1"),
        (
            [0, 2**64],
            errors.RiffledbIndexError,
            f"Offset {2**64} at position 1 is out of the 64-bit integer range",
        ),
        (
            np.array([2**63], np.uint64),
            errors.RiffledbIndexError,
            f"Offset {2**63} at position 0 is out of the 64-bit integer range",
        ),
    ],
)
def test_take_offsets_one_check_for_every_path(mem_db, path, offsets, cls, message):
    # Regression: with_repeat(3).take_offsets([1.7]) returned row 1, and a permutation
    # took [True] as row 1 where a table raised: one check (riffledb._args.index_array,
    # bad_index) now gives every take path the same error.
    tbl = mem_db.create_table("t", DATA)
    with pytest.raises(cls) as info:
        _TAKE_PATHS[path](tbl, offsets)
    if cls is errors.RiffledbTypeError:
        message = f"offsets must be integers, {message}"
    assert str(info.value) == message


class _Int(int):
    pass


class _List(list):
    pass


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        ([], np.int64),
        ([], np.uint64),
        ([5, 0, 5, 3], np.int64),
        ([-(2**63), 2**63 - 1, -1], np.int64),
        ([0, 2**63, 2**64 - 1], np.uint64),
        (np.random.default_rng(3).integers(0, 10**9, 1000).tolist(), np.int64),
    ],
)
def test_index_array_takes_a_list_of_ints_natively(values, dtype):
    # A list of exact ints is converted in one native pass (the DataLoader's batch of
    # indices); the array is the one the general path makes from the same items.
    unsigned = dtype == np.uint64
    fast = _riffledb.exact_int_list(values, unsigned)
    assert fast is not None
    assert index_array(values, "offsets", dtype).dtype == dtype
    general = index_array(tuple(values), "offsets", dtype)
    assert fast.dtype == general.dtype == dtype
    assert fast.tolist() == general.tolist() == values
    assert (
        fast.flags.c_contiguous and fast.flags.writeable and fast.flags.owndata is False
    )
    before = list(values)
    if values:
        fast[0] = 7  # its own memory: the list is not changed
        assert fast[0] == 7 and values == before


@pytest.mark.parametrize(
    ("values", "unsigned"),
    [
        ((1, 2), False),  # not a list
        (_List([1, 2]), False),  # a list subclass
        ([1, True], False),  # a bool is not an index
        ([1, np.int64(2)], False),  # NumPy integers: the general path converts them
        ([1, _Int(2)], False),  # an int subclass
        ([1, 2.0], False),
        ([1, "2"], False),
        ([2**63], False),  # past int64
        ([-1], True),  # a negative row id
        ([2**64], True),  # past uint64
    ],
)
def test_index_array_leaves_anything_else_to_the_general_path(values, unsigned):
    assert _riffledb.exact_int_list(values, unsigned) is None


def test_index_array_general_path_still_takes_numpy_integers_in_a_list():
    keys = index_array([1, np.int64(2), np.uint8(3)], "offsets")
    assert keys.dtype == np.int64 and keys.tolist() == [1, 2, 3]


def test_index_array_takes_row_ids_past_int64_beside_small_ones():
    # Regression: NumPy reads (0, 2**63) as float64, and the general path refused these
    # valid row ids with "must be a flat sequence of 64-bit integers".
    for values in ((0, 2**63, 2**64 - 1), [0, np.uint64(2**63)]):
        keys = index_array(values, "row_ids", np.uint64)
        assert keys.dtype == np.uint64
        assert keys.tolist() == [int(v) for v in values]
    with pytest.raises(errors.RiffledbIndexError, match="Row id -1 at position 1"):
        index_array((0, -1, 2**63), "row_ids", np.uint64)
    # Offsets mixing ints and NumPy uint64 (read as float64 too).
    keys = index_array([1, np.uint64(2)], "offsets")
    assert keys.dtype == np.int64 and keys.tolist() == [1, 2]
    with pytest.raises(errors.RiffledbTypeError, match="got bool at position 1"):
        index_array((0, True, 2**63), "row_ids", np.uint64)


def test_index_array_takes_the_native_path_for_a_list_of_ints(monkeypatch):
    import riffledb._args as args

    calls = []
    native = args._riffledb.exact_int_list

    def spy(values, unsigned):
        calls.append(unsigned)
        return native(values, unsigned)

    monkeypatch.setattr(args._riffledb, "exact_int_list", spy)
    assert index_array([3, 1], "offsets").tolist() == [3, 1]
    assert index_array([3, 1], "row_ids", np.uint64).dtype == np.uint64
    assert index_array((3, 1), "offsets").tolist() == [3, 1]  # a tuple: NumPy's path
    assert calls == [False, True]
