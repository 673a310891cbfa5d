"""Argument checks for the public API: each raises a riffledb.errors class whose message
names the argument, before a value reaches the native module (whose own type errors list
C++ signatures instead of naming what was wrong)."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from . import _riffledb
from .errors import InvalidError, RiffledbIndexError, RiffledbTypeError

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


def describe(value: Any) -> str:
    """``type value`` for a message, the value shortened if its repr is long."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def check_int(
    value: Any,
    name: str,
    *,
    minimum: int = 0,
    maximum: int = INT64_MAX,
    none_ok: bool = False,
) -> int | None:
    """``value`` as an ``int`` in ``[minimum, maximum]`` (or None when ``none_ok``).

    Integers of any kind (``int``, NumPy integers, anything with ``__index__``) are
    accepted; ``bool`` is not, nor is a float even when it is whole.

    Raises:
        RiffledbTypeError: not an integer.
        InvalidError: outside the range.
    """
    if value is None and none_ok:
        return None
    if isinstance(value, bool):
        raise RiffledbTypeError(f"{name} must be an integer, got {describe(value)}")
    try:
        number = operator.index(value)
    except TypeError:
        expected = "an integer or None" if none_ok else "an integer"
        raise RiffledbTypeError(
            f"{name} must be {expected}, got {describe(value)}"
        ) from None
    if not minimum <= number <= maximum:
        raise InvalidError(f"{name} must be in [{minimum}, {maximum}], got {number}")
    return number


def check_str(value: Any, name: str, *, none_ok: bool = False) -> str | None:
    """``value`` if it is a ``str`` (or None when ``none_ok``).

    Raises:
        RiffledbTypeError: anything else.
    """
    if value is None and none_ok:
        return None
    if not isinstance(value, str):
        expected = "a str or None" if none_ok else "a str"
        raise RiffledbTypeError(f"{name} must be {expected}, got {describe(value)}")
    return value


def check_bool(value: Any, name: str) -> bool:
    """``value`` as a ``bool``: a bool, a NumPy bool or the integers 0 and 1.

    Raises:
        RiffledbTypeError: anything else (None is not False here: it is more often a
            mistake than a choice).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, np.bool_) or (
        hasattr(value, "__index__") and operator.index(value) in (0, 1)
    ):
        return bool(value)
    raise RiffledbTypeError(f"{name} must be a bool, got {describe(value)}")


def check_str_list(value: Any, name: str) -> list[str]:
    """``value`` as a list of ``str``: any iterable of them except a single ``str``.

    Raises:
        RiffledbTypeError: not an iterable, a str, or an item that is not a str (the
            message gives its position).
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise RiffledbTypeError(f"{name} must be a list of str, got {describe(value)}")
    items = list(value)
    for position, item in enumerate(items):
        if not isinstance(item, str):
            raise RiffledbTypeError(
                f"{name} must be a list of str, got {describe(item)} "
                f"at position {position}"
            )
    return items


def bad_index(
    items: Iterable[Any], what: str, *, unsigned: bool = False
) -> Exception | None:
    """The error for the first of ``items`` (offsets, or row ids if ``unsigned``) that is
    not a 64-bit integer, naming its position: the one message for every take path
    (``Table.take_offsets`` / ``take_row_ids``, ``Permutation.take_offsets``). Error path
    only: call it once a cheaper check has failed.

    Returns:
        RiffledbTypeError for an item that is not an integer (``bool`` and whole floats
        included), RiffledbIndexError for one out of range, None if every item is fine.
    """
    noun = "Row id" if unsigned else "Offset"
    low, high = (0, UINT64_MAX) if unsigned else (-INT64_MAX - 1, INT64_MAX)
    for position, value in enumerate(items):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            return RiffledbTypeError(
                f"{what} must be integers, got {type(value).__name__} at position "
                f"{position}"
            )
        value = int(value)
        if unsigned and value < 0:
            return RiffledbIndexError(
                f"{noun} {value} at position {position} is negative"
            )
        if not low <= value <= high:
            return RiffledbIndexError(
                f"{noun} {value} at position {position} is out of the 64-bit integer "
                "range"
            )
    return None


def _raise_bad_index(items: Iterable[Any], what: str, unsigned: bool) -> None:
    raise bad_index(items, what, unsigned=unsigned) or RiffledbTypeError(
        f"{what} must be a flat sequence of 64-bit integers"
    )


def index_array(values: Any, what: str, dtype: type = np.int64) -> np.ndarray:
    """Offsets (``dtype`` int64) or row ids (uint64) as a contiguous 1-D NumPy array,
    without per-element Python work on valid input (no copy when ``values`` already is a
    matching array). Any sequence, NumPy array, Arrow array or tensor is accepted.

    Raises:
        RiffledbTypeError: not a flat sequence, or an item that is not an integer (see
            :func:`bad_index`).
        InvalidError: more than one dimension.
        RiffledbIndexError: an item outside the 64-bit range of ``dtype``, or a negative
            row id.
    """
    unsigned = dtype == np.uint64
    if type(values) is list and (unsigned or dtype == np.int64):
        # The common case (a DataLoader's batch of indices, a tolist()) in one native
        # pass; None for anything the general path below must convert or report.
        keys = _riffledb.exact_int_list(values, unsigned)
        if keys is not None:
            return keys
    original = None
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = values.to_numpy(zero_copy_only=False)
    elif not isinstance(values, np.ndarray):
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            if not hasattr(values, "__iter__") or isinstance(values, (str, bytes)):
                raise RiffledbTypeError(
                    f"{what} must be a sequence of integers, got {type(values).__name__}"
                )
            values = list(values)
        if len(values) == 0:
            return np.empty(0, dtype=dtype)
        original = values
        try:
            values = np.asarray(values)
        except (ValueError, TypeError) as error:
            raise RiffledbTypeError(
                f"{what} must be a flat sequence of integers"
            ) from error
    if values.ndim != 1:
        raise InvalidError(f"{what} must be one-dimensional, got shape {values.shape}")
    if values.dtype.kind not in "iu":
        if len(values) == 0:
            return np.empty(0, dtype=dtype)
        items = original if original is not None else values.tolist()
        if bad_index(items, what, unsigned=unsigned) is None:
            # Valid keys that NumPy read as float64 (row ids [0, 2**63], offsets
            # [1, np.uint64(2)]: no integer type holds both); bools were refused by
            # bad_index.
            values = np.array([int(item) for item in items], dtype=dtype)
        else:
            _raise_bad_index(items, what, unsigned)
    if original is not None and bool in map(type, original):
        # NumPy reads [1, True] as integers: a bool is a mistake, as it is alone.
        _raise_bad_index(original, what, unsigned)
    if unsigned and values.dtype.kind == "i" and len(values) and values.min() < 0:
        _raise_bad_index(values.tolist(), what, True)
    if not unsigned and values.dtype == np.uint64 and len(values):
        if values.max() > INT64_MAX:
            _raise_bad_index(values.tolist(), what, False)
    return np.ascontiguousarray(values, dtype=dtype)


def offsets_for_take(values: Any, what: str = "offsets") -> np.ndarray | list:
    """Offsets as a native take accepts them in one call: a list as it is (the native
    side converts a list of Python ints without NumPy and refuses anything else, bools
    included; the caller then reports :func:`bad_index`), anything else through
    :func:`index_array`."""
    if type(values) is list and (not values or type(values[0]) is int):
        return values
    return index_array(values, what, np.int64)


def check_storage_options(options: Any) -> dict[str, str]:
    """``storage_options`` as a new ``dict[str, str]`` (empty for None).

    Raises:
        RiffledbTypeError: not a mapping, or a key or value that is not a ``str`` (the
            message names the key, never a value: values may be secrets).
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise RiffledbTypeError(
            f"storage_options must be a dict of str to str, got {type(options).__name__}"
        )
    checked: dict[str, str] = {}
    for key, value in options.items():
        if not isinstance(key, str):
            raise RiffledbTypeError(
                f"storage_options keys must be str, got {describe(key)}"
            )
        if not isinstance(value, str):
            raise RiffledbTypeError(
                f"storage_options[{key!r}] must be a str, got {type(value).__name__}"
            )
        checked[key] = value
    return checked
