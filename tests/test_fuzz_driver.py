"""The mutation driver of the C++ fuzz targets (cpp/src/riffledb/testing/fuzz_driver.cc)
and the soak's fuzz loop (scripts/fuzz.py): a seed reruns the same inputs, a timed run
stops on time, and a crash leaves the input that caused it where the output says."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, "build", "release", "cpp", "request_fuzz")
CORPUS = os.path.join(
    ROOT, "cpp", "src", "riffledb", "remote", "testdata", "fuzz", "request_fuzz"
)

pytestmark = pytest.mark.skipif(
    not os.path.exists(TARGET), reason="build/release has no request_fuzz"
)


def summary(output: str) -> tuple[str, int]:
    """(seed, mutations) of the driver's last line."""
    found = re.search(r"seed (\d+): \d+ corpus inputs, (\d+) mutations", output)
    assert found, output
    return found.group(1), int(found.group(2))


def test_fixed_runs_and_timed_runs(tmp_path):
    fixed = subprocess.run(
        [TARGET, CORPUS, "--iterations=500", "--seed=7", f"--crash-dir={tmp_path}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert summary(fixed.stdout) == ("7", 500)
    report = tmp_path / "report.jsonl"
    # It stops on time: a run past the timeout is a hang (TimeoutExpired), not a result.
    timed = subprocess.run(
        [TARGET, CORPUS, "--seconds=1", f"--crash-dir={tmp_path}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "RIFFLEDB_SOAK_REPORT": str(report)},
    )
    seed, mutations = summary(timed.stdout)
    assert mutations > 0
    (line,) = [json.loads(x) for x in report.read_text().splitlines()]
    assert line == {
        "loop": "fuzz request_fuzz",
        "rounds": mutations,
        "fuzz_inputs": mutations + len(os.listdir(CORPUS)),
        "seed": seed,
    }
    assert os.listdir(tmp_path) == ["report.jsonl"]  # no crash file


def test_unknown_options_are_refused(tmp_path):
    run = subprocess.run([TARGET, CORPUS, "--second=1"], capture_output=True, text=True)
    assert run.returncode == 2
    assert "unknown option --second=1" in run.stderr


def test_a_crash_leaves_its_input(tmp_path):
    # A fatal signal while it runs stands for a crash of the target: the handler writes
    # the input being run, names it, reports it, and the process dies of the signal.
    report = tmp_path / "report.jsonl"
    proc = subprocess.Popen(
        [TARGET, CORPUS, "--seconds=60", "--seed=5", f"--crash-dir={tmp_path}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RIFFLEDB_SOAK_REPORT": str(report)},
    )
    assert proc.stdout.readline() == "fuzz driver: request_fuzz, seed 5\n"
    time.sleep(0.5)
    proc.send_signal(signal.SIGSEGV)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGSEGV
    found = re.search(r"CRASH; the input is in (\S+)", err)
    assert found, err
    path = found.group(1)
    assert re.fullmatch(re.escape(str(tmp_path)) + r"/crash-request_fuzz-5-\d+", path)
    assert os.path.isfile(path)
    (line,) = [json.loads(x) for x in report.read_text().splitlines()]
    assert line["crash"] == 1 and line["input"] == path


def test_the_soak_loop_runs_every_target(tmp_path):
    report = tmp_path / "report.jsonl"
    run = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "scripts", "fuzz.py"),
            "--seconds",
            "1.5",
            "--only",
            "request_fuzz,expr_parser_fuzz",
            "--seed",
            "3",
            "--crash-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "RIFFLEDB_SOAK_REPORT": str(report)},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [json.loads(x) for x in report.read_text().splitlines()]
    assert [(x["loop"], x["seed"]) for x in lines] == [
        ("fuzz request_fuzz", "3"),
        ("fuzz expr_parser_fuzz", "3"),
    ]
    missing = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "fuzz.py"), "--only", "nope_fuzz"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1
    assert "not built" in missing.stderr and "nope_fuzz" in missing.stderr
