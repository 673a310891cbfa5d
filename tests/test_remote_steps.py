"""``make bench-remote-steps`` (benchmarks/remote_steps.py), briefly: a few takes of a
small table, local and remote, every answer checked against its offsets by the script;
the table it prints has a row per take kind and a number per step. Times are printed,
never asserted."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import remote_steps  # noqa: E402

NUMBER = r"\d+\.\d"


def test_steps_of_local_and_remote_takes(capsys):
    code = remote_steps.main(["--rows", "2560", "--takes", "5", "--rounds", "2"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    lines = printed.splitlines()
    assert lines[0] == (
        "One take of 256 rows at a time, 2,560 rows, 2 rounds of 5: medians in µs"
    )
    assert lines[1] == "| take | index | call | import | table | check | all |"
    steps = rf"\| {NUMBER} \| {NUMBER} \| {NUMBER} \| {NUMBER} \| {NUMBER} \| {NUMBER} \|"
    assert re.fullmatch(rf"\| local {steps}", lines[3]), lines[3]
    assert re.fullmatch(rf"\| remote {steps}", lines[4]), lines[4]
    assert re.fullmatch(
        rf"\| bare exchange \| \| {NUMBER} \| \| \| \| {NUMBER} \|", lines[5]
    )
    assert len(lines) == 6


def test_a_round_stays_within_the_servers_keep_alive_limit(capsys):
    with pytest.raises(SystemExit) as exit:
        remote_steps.main(["--takes", "1000"])
    assert exit.value.code == 2
    assert "--takes must be 1 to 999" in capsys.readouterr().err
