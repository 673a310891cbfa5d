"""Soak mode for the kill, drop-race and corruption loops (`make soak`, scripts/soak.py).

A loop runs its usual number of rounds (short, for `make test`). With
RIFFLEDB_SOAK_SECONDS set, it runs rounds until that many seconds have passed instead,
and when RIFFLEDB_SOAK_REPORT names a file, it appends its counts there as one JSON line
when it ends, also when an assertion stopped it half-way. The test's assertions still
decide its outcome; the counts are what the soak prints::

    with SoakLoop("kill -9 mid-append", rounds=1) as loop:
        for round_ in loop:
            ...
            loop.add("kills")
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter

SECONDS_ENV = "RIFFLEDB_SOAK_SECONDS"
REPORT_ENV = "RIFFLEDB_SOAK_REPORT"


def soak_seconds() -> float | None:
    """The soak's time budget for one loop, or None outside a soak."""
    value = os.environ.get(SECONDS_ENV, "")
    return float(value) if value else None


class SoakLoop:
    """Round numbers 0, 1, ...: `rounds` of them, or while the soak's time lasts."""

    def __init__(self, name: str, rounds: int):
        self.name = name
        self.rounds = rounds
        self.done = 0
        self.counts: Counter[str] = Counter()
        seconds = soak_seconds()
        self._deadline = None if seconds is None else time.monotonic() + seconds

    def __iter__(self):
        while True:
            if self._deadline is None:
                if self.done >= self.rounds:
                    return
            elif self.done > 0 and time.monotonic() >= self._deadline:
                return
            yield self.done
            self.done += 1

    def add(self, counter: str, n: int = 1) -> None:
        self.counts[counter] += n

    def __enter__(self) -> SoakLoop:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        report = os.environ.get(REPORT_ENV)
        if not report:
            return
        line = {"loop": self.name, "rounds": self.done, **self.counts}
        if kind is not None:
            # The hang detector's failures (harness.hang) say "hung" or "hang".
            if re.search(r"\b(hung|hang)\b", str(value), re.IGNORECASE):
                line["hangs"] = line.get("hangs", 0) + 1
            line["failed"] = f"{kind.__name__}: {str(value)[:2000]}"
        with open(report, "a") as out:
            out.write(json.dumps(line) + "\n")
