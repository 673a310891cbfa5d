"""Native handles are released at interpreter exit, even from objects Python never frees.

CPython does not promise to free every object when the interpreter exits, and in some
processes it does not: in a spawn ``DataLoader`` worker the dataset stays referenced by
torch's ``_worker_info`` and by multiprocessing's ``current_process()._args``, module
globals whose dicts outlive their modules at finalisation, so the dataset is never
freed (a plain Python dataset's ``__del__`` never runs there either). The native objects
it holds would then still be alive when nanobind checks for leaks, the last thing the
interpreter does, and each worker would print "nanobind: leaked N instances!".

So every object that holds native handles registers itself here, and an ``atexit``
callback (``weakref.finalize``'s, which runs before the interpreter tears modules down)
asks the objects still alive to drop their handles. An object used after that reopens
what it can (a directory table) or raises an error saying it was released.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any


def release_at_exit(obj: Any, release: Callable[[Any], None]) -> None:
    """Calls ``release(obj)`` at interpreter exit if ``obj`` is still alive then.

    ``release`` must not hold ``obj`` (pass a function, not a bound method), or ``obj``
    would never be freed.
    """
    weakref.finalize(obj, _release, weakref.ref(obj), release)


def _release(ref: weakref.ref, release: Callable[[Any], None]) -> None:
    # Also called when the object is freed normally: then there is nothing to release.
    obj = ref()
    if obj is not None:
        release(obj)
