"""Native handles are released at interpreter exit, even from objects Python never frees.

CPython does not promise to free every object when the interpreter exits, and in some
processes it does not: in a spawn ``DataLoader`` worker the dataset stays referenced by
torch's ``_worker_info`` and by multiprocessing's ``current_process()._args``, module
globals whose dicts outlive their modules at finalisation, so the dataset is never
freed (a plain Python dataset's ``__del__`` never runs there either). The native objects
it holds would then still be alive when nanobind checks for leaks, the last thing the
interpreter does, and each worker would print "nanobind: leaked N instances!".

So every object that holds native handles registers itself here, and an ``atexit``
callback, registered when riffledb is imported (so it runs after the callbacks registered
later, which may still use riffledb objects), asks the objects still alive to drop their
handles. An object used after that reopens what it can (a directory table) or raises an
error saying it was released.
"""

from __future__ import annotations

import atexit
import weakref
from collections.abc import Callable
from typing import Any

# release function -> the live objects it releases. A WeakSet per function: registering
# costs one weak reference, and nothing is left behind when an object is freed.
_live: dict[Callable[[Any], None], weakref.WeakSet] = {}


def release_at_exit(obj: Any, release: Callable[[Any], None]) -> None:
    """Calls ``release(obj)`` at interpreter exit if ``obj`` is still alive then.

    ``release`` must not hold ``obj`` (pass a module-level function, not a bound
    method), or ``obj`` would never be freed.
    """
    live = _live.get(release)
    if live is None:
        live = _live.setdefault(release, weakref.WeakSet())
    live.add(obj)


@atexit.register
def _release_all() -> None:
    # Last registered kind first: tables are released before their connections.
    for release, live in reversed(list(_live.items())):
        while True:
            try:
                objects = list(live)
                break
            except RuntimeError:  # a daemon thread registered an object meanwhile
                continue
        for obj in objects:
            release(obj)
    # Then shut down the AWS SDK if an s3:// database initialized it (after the handles
    # above, which hold S3 clients, are gone). The SDK is pyarrow's too, and this is
    # pyarrow.fs's own atexit call (idempotent; S3 is unusable in this process after it).
    from . import _riffledb

    _riffledb.finalize_s3()
