"""The load test of ``riffledb serve`` (benchmarks/remote_load.py), briefly: 2 client
processes for 3 s of takes and appends; no error, no wrong take, no lost or duplicated
row. Its throughput is printed, never asserted."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import remote_load  # noqa: E402


def test_load_loses_no_rows_and_takes_right(tmp_path, capsys):
    out = tmp_path / "load.json"
    code = remote_load.main(
        ["--clients", "2", "--seconds", "3", "--rows", "5000", "--json", str(out)]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = __import__("json").loads(out.read_text())
    assert report["takes"] > 0 and report["appends"] > 0, report
    assert report["lost"] == report["duplicated"] == report["wrong_takes"] == 0
