"""One adapter per system, all with the same small interface (see ``base.py``)."""

NAMES = ("riffledb", "lancedb", "hf", "numpy")
