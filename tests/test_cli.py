"""The ``riffledb`` command (issue #10, item 9): info, verify, restore; exit codes."""

import io
import json
import pathlib
import subprocess
import sys
import time

import pyarrow as pa
import pytest

import riffledb
from riffledb import cli


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def db_path(tmp_path) -> pathlib.Path:
    db = riffledb.connect(tmp_path)
    t = db.create_table("events", pa.table({"id": pa.array(range(100), pa.int64())}))
    t.add(pa.table({"id": pa.array(range(100, 150), pa.int64())}))
    t.delete("id < 10")
    db.create_table("other", pa.table({"x": [1.5, 2.5]}))
    return tmp_path


def test_info_json(db_path):
    code, out, _ = run("info", str(db_path), "--json")
    assert code == cli.EXIT_OK
    infos = {i["name"]: i for i in json.loads(out)}
    assert sorted(infos) == ["events", "other"]
    events = infos["events"]
    assert events["versions"] == 3
    assert events["latest_version"] == 3
    assert events["rows"] == 140
    assert events["damaged_versions"] == []
    assert events["data_files"] == 2
    assert events["versions_files"] == 3
    assert events["deletions_files"] == 1
    assert events["segments_files"] == 0  # lists of at most 8 entries stay inline
    assert events["data_bytes"] > 150 * 8
    assert "id: int64" in events["schema"]


def test_info_text_one_table(db_path):
    code, out, _ = run("info", str(db_path), "other")
    assert code == cli.EXIT_OK
    assert out.startswith("table other\n  versions: 1 (latest 1)\n  rows: 2\n")
    assert "x: double" in out


def test_verify_clean_then_damaged(db_path):
    code, out, err = run("verify", str(db_path))
    assert code == cli.EXIT_OK
    assert out.strip().endswith("checked 4 versions of 2 tables: no damage found")
    assert "[2/2] other: version 1/1" in err  # progress
    manifest = db_path / "events.riffle" / "_versions" / f"{2:020d}.json"
    manifest.write_bytes(b"not json")
    (fragment,) = (db_path / "other.riffle" / "data").glob("*.arrow")
    fragment.write_bytes(b"ARROW1" + b"\0" * 10)
    code, out, _ = run("verify", str(db_path))
    assert code == cli.EXIT_FAILED
    assert f"events version 2: Version 2 of table 'events' is damaged: {manifest}" in out
    assert "other version 1:" in out and str(fragment) in out
    assert out.strip().endswith("checked 2 versions of 2 tables: 2 damaged")


def test_restore(db_path):
    code, out, _ = run("restore", str(db_path), "events", "1")
    assert code == cli.EXIT_OK
    assert out == "restored events version 1 as version 4\n"
    assert len(riffledb.connect(db_path).open_table("events")) == 100


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["info", "DB", "nope"], cli.EXIT_USAGE, "Table 'nope' was not found"),
        (["restore", "DB", "nope", "1"], cli.EXIT_USAGE, "Table 'nope' was not found"),
        (["restore", "DB", "events", "99"], cli.EXIT_FAILED, "version 99"),
        (["restore", "DB", "events", "x"], cli.EXIT_USAGE, "invalid int value"),
        (["frobnicate", "DB"], cli.EXIT_USAGE, "invalid choice"),
        (["info", "memory:/"], cli.EXIT_FAILED, "memory:/"),
    ],
)
def test_errors_and_exit_codes(db_path, capsys, argv, code, message):
    argv = [str(db_path) if a == "DB" else a for a in argv]
    got, _, err = run(*argv)
    assert got == code
    assert message in err + capsys.readouterr().err


def test_console_script_module(db_path):
    """`python -m riffledb.cli` runs the same main (the console script calls it)."""
    result = subprocess.run(
        [sys.executable, "-m", "riffledb.cli", "info", str(db_path), "other"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("table other\n")


class TtyStringIO(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_tty(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), TtyStringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_optimize(db_path):
    code, out, err = run("optimize", str(db_path), "events")
    assert code == cli.EXIT_OK
    assert out == "optimized events: 2 fragments rewritten as 1 (version 4)\n"
    assert err == ""  # not a terminal: no progress line
    t = riffledb.connect(db_path).open_table("events")
    assert t.to_arrow()["id"].to_pylist() == list(range(10, 150))
    code, out, _ = run("optimize", str(db_path), "events")
    assert out == "optimized events: nothing to compact (version 4)\n"


def test_optimize_with_cleanup_and_progress(db_path):
    time.sleep(0.01)  # past the millisecond of the last commit
    code, out, err = run_tty(
        "optimize", str(db_path), "events", "--cleanup-older-than", "0"
    )
    assert code == cli.EXIT_OK
    assert out.startswith(
        "optimized events: 2 fragments rewritten as 1 (version 4); cleanup removed "
        "3 old versions, 3 files, "
    )
    assert "\roptimize events: rewriting rows 140/140 (100%)" in err
    assert "\roptimize events: removing files 3/3 (100%)" in err
    assert err.endswith("\n")
    assert len(riffledb.connect(db_path).open_table("events").list_versions()) == 1


def test_cleanup(db_path):
    code, out, _ = run("cleanup", str(db_path), "events")  # 7 days by default
    assert code == cli.EXIT_OK
    assert out == "cleaned up events: removed 0 old versions, 0 files, 0 bytes\n"
    time.sleep(0.01)
    code, out, err = run_tty("cleanup", str(db_path), "events", "--older-than", "0")
    assert code == cli.EXIT_OK
    # Appends and deletes carry their files forward: only manifests go.
    assert out == "cleaned up events: removed 2 old versions, 0 files, 0 bytes\n"
    assert "\rcleanup events: reading versions 3/3 (100%)" in err
    t = riffledb.connect(db_path).open_table("events")
    assert [v["version"] for v in t.list_versions()] == [3]
    assert len(t) == 140


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 604800), ("007d", 604800)],
)
def test_durations(text, seconds):
    assert cli.parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (
            ["cleanup", "DB", "events", "--older-than", "7"],
            cli.EXIT_USAGE,
            "invalid duration '7'",
        ),
        (
            ["cleanup", "DB", "events", "--older-than=-1d"],
            cli.EXIT_USAGE,
            "invalid duration",
        ),
        (
            ["cleanup", "DB", "events", "--older-than", "1.5h"],
            cli.EXIT_USAGE,
            "invalid duration",
        ),
        (["cleanup", "DB", "nope"], cli.EXIT_USAGE, "Table 'nope' was not found"),
        (["optimize", "DB", "nope"], cli.EXIT_USAGE, "Table 'nope' was not found"),
        (
            ["optimize", "DB", "events", "--target-rows", "0"],
            cli.EXIT_USAGE,
            "positive integer",
        ),
        (["optimize", "DB"], cli.EXIT_USAGE, "required"),
    ],
)
def test_maintenance_usage_errors(db_path, capsys, argv, code, message):
    argv = [str(db_path) if a == "DB" else a for a in argv]
    got, _, err = run(*argv)
    assert got == code
    assert message in err + capsys.readouterr().err


def test_cleanup_failure_exit_code(db_path):
    manifest = db_path / "events.riffle" / "_versions" / f"{3:020d}.json"
    manifest.write_bytes(b"junk")
    code, _, err = run("cleanup", str(db_path), "events", "--older-than", "0")
    assert code == cli.EXIT_FAILED
    assert "Cannot clean up table 'events': the files of version 3 are unknown" in err
