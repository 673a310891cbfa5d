"""Argument checks for the public API: each raises a riffledb.errors class whose message
names the argument, before a value reaches the native module (whose own type errors list
C++ signatures instead of naming what was wrong)."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import InvalidError, RiffledbTypeError

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
