"""Runs every fuzz target of build/release (`*_fuzz`, built with the mutation driver
cpp/src/riffledb/testing/fuzz_driver.cc) over its seed corpus with random mutations
for a share of the time: the long version of the smoke fuzz `make test` runs.

    python scripts/fuzz.py --seconds 600 [--seed S] [--only request_fuzz,...]

The time is split evenly among the targets; each prints its seed (random unless
--seed) and how many inputs it ran. A crashing input is written to --crash-dir
(build/soak/fuzz-crashes) and named in the output; `build/release/cpp/TARGET FILE`
reproduces it. `make soak` runs this as its "fuzz" loop (RIFFLEDB_SOAK_SECONDS gives the
time; each target appends its counts to RIFFLEDB_SOAK_REPORT). Exits 1 if a target
failed.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "release", "cpp")


def targets() -> dict[str, str]:
    """Target name -> its corpus directory, for the targets that are built."""
    found = {}
    for source in sorted(glob.glob(os.path.join(ROOT, "cpp/src/riffledb/*/*_fuzz.cc"))):
        name = os.path.basename(source)[: -len(".cc")]
        if os.path.exists(os.path.join(BUILD, name)):
            found[name] = os.path.join(os.path.dirname(source), "testdata", "fuzz", name)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_seconds = float(os.environ.get("RIFFLEDB_SOAK_SECONDS") or 60)
    parser.add_argument("--seconds", type=float, default=default_seconds, help="in total")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--only", default="")
    parser.add_argument(
        "--crash-dir", default=os.path.join(ROOT, "build", "soak", "fuzz-crashes")
    )
    args = parser.parse_args(argv)
    found = targets()
    names = [n for n in args.only.split(",") if n] or list(found)
    missing = sorted(set(names) - set(found))
    if missing or not names:
        print(f"fuzz: not built in {BUILD}: {missing or 'any target'}", file=sys.stderr)
        return 1
    share = args.seconds / len(names)
    failed = []
    for name in names:
        command = [
            os.path.join(BUILD, name),
            found[name],
            f"--seconds={share:.1f}",
            f"--crash-dir={args.crash_dir}",
        ]
        if args.seed is not None:
            command.append(f"--seed={args.seed}")
        print(f"fuzz: {name} for {share:.0f} s", flush=True)
        code = subprocess.call(command, cwd=ROOT)
        if code != 0:
            failed.append(name)
            print(f"fuzz: {name} FAILED (exit {code})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
