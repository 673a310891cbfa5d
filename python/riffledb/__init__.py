"""riffledb: an embedded table store for ML training data."""

import pyarrow as _pa  # noqa: F401  (loads libarrow before the extension needs it)

from . import _riffledb  # noqa: F401

__version__ = "0.1.0"
