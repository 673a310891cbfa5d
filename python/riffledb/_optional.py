"""Optional dependencies (torch, pandas, polars), imported when first needed."""

from __future__ import annotations

import importlib
from types import ModuleType


def attempt_import_or_raise(module: str, mitigation: str | None = None) -> ModuleType:
    """Imports an optional dependency, or raises ImportError saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        hint = mitigation or module
        raise ImportError(f"Please install {hint}") from error
