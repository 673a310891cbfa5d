"""What test_pickle.py runs in its children."""

from __future__ import annotations

import os
import pickle

from .data import all_rows


def read_unpickled(blob: bytes) -> tuple[int, list[dict], int]:
    """Unpickles a permutation and reads it: ``(len, every row, this pid)``."""
    permutation = pickle.loads(blob)
    return len(permutation), all_rows(permutation), os.getpid()
