"""Bad arguments to permutations raise riffledb errors naming the argument (issue #9 item
7), never nanobind's "incompatible function arguments" nor an AssertionError.
"""

import pyarrow as pa
import pytest

from riffledb import errors
from riffledb.permutation import Permutation, permutation_builder


@pytest.fixture
def tbl(mem_db):
    return mem_db.create_table("t", pa.table({"id": pa.array(range(10), pa.int64())}))


def _identity(tbl):
    return Permutation.identity(tbl)


# (id, call(tbl), class, text the message must contain)
CASES = [
    (
        "take_offsets-None",
        lambda t: _identity(t).take_offsets([None]),
        errors.RiffledbTypeError,
        "position 0",
    ),
    (
        "take_offsets-2**64",
        lambda t: _identity(t).take_offsets([2**64]),
        errors.RiffledbIndexError,
        str(2**64),
    ),
    (
        "take_offsets-float",
        lambda t: _identity(t).take_offsets([1, 1.7]),
        errors.RiffledbTypeError,
        "position 1",
    ),
    (
        "repeat-take_offsets-float",
        lambda t: _identity(t).with_repeat(3).take_offsets([1.7]),
        errors.RiffledbTypeError,
        "position 0",
    ),
    (
        "repeat-take_offsets-None",
        lambda t: _identity(t).with_repeat(3).take_offsets([None]),
        errors.RiffledbTypeError,
        "position 0",
    ),
    (
        "with_skip-2**70",
        lambda t: _identity(t).with_skip(2**70),
        errors.InvalidError,
        "skip",
    ),
    (
        "with_skip-float",
        lambda t: _identity(t).with_skip(1.5),
        errors.RiffledbTypeError,
        "skip",
    ),
    (
        "with_take-2**70",
        lambda t: _identity(t).with_take(2**70),
        errors.InvalidError,
        "limit",
    ),
    (
        "with_take-None",
        lambda t: _identity(t).with_take(None),
        errors.RiffledbTypeError,
        "limit",
    ),
    (
        "with_repeat-2**70",
        lambda t: _identity(t).with_repeat(2**70),
        errors.InvalidError,
        "times",
    ),
    ("getitem-float", lambda t: _identity(t)[1.5], errors.RiffledbTypeError, "float"),
    (
        "getitem-2**64",
        lambda t: _identity(t)[2**64],
        errors.RiffledbIndexError,
        str(2**64),
    ),
    (
        "with_format-None",
        lambda t: _identity(t).with_format(None),
        errors.RiffledbTypeError,
        "format",
    ),
    (
        "with_transform-None",
        lambda t: _identity(t).with_transform(None),
        errors.RiffledbTypeError,
        "transform",
    ),
    (
        "select_columns-None",
        lambda t: _identity(t).select_columns(None),
        errors.RiffledbTypeError,
        "columns",
    ),
    (
        "remove_columns-None",
        lambda t: _identity(t).remove_columns(None),
        errors.RiffledbTypeError,
        "columns",
    ),
    (
        "rename_column-None",
        lambda t: _identity(t).rename_column(None, "x"),
        errors.RiffledbTypeError,
        "old_name",
    ),
    (
        "rename_columns-None",
        lambda t: _identity(t).rename_columns(None),
        errors.RiffledbTypeError,
        "column_map",
    ),
    (
        "builder-filter-123",
        lambda t: permutation_builder(t).filter(123),
        errors.RiffledbTypeError,
        "filter",
    ),
    (
        "builder-shuffle-seed-2**70",
        lambda t: permutation_builder(t).shuffle(seed=2**70),
        OverflowError,  # as LanceDB's (pyo3's) u64 arguments
        "seed",
    ),
    (
        "builder-split_random-counts-None",
        lambda t: permutation_builder(t).split_random(counts=[None]),
        errors.RiffledbTypeError,
        "counts",
    ),
    (
        "from_tables-split-float",
        lambda t: Permutation.from_tables(t, None, 1.5),
        errors.RiffledbTypeError,
        "split",
    ),
]


@pytest.mark.parametrize(
    ("call", "cls", "text"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_bad_permutation_argument(tbl, call, cls, text):
    with pytest.raises(Exception) as info:
        call(tbl)
    error = info.value
    assert "incompatible function arguments" not in str(error)
    assert not isinstance(error, AssertionError)
    assert type(error) is cls, f"{type(error).__name__}: {error}"
    assert text in str(error)


def test_repeat_take_offsets_float_does_not_read_a_row(tbl):
    # Today the float is truncated and row 1 comes back.
    perm = _identity(tbl).with_repeat(3).with_format("arrow")
    with pytest.raises(TypeError):
        perm.take_offsets([1.7])
