"""Untrusted input never crashes the process: corrupt files and garbage filters.

Each case runs in a child interpreter (harness.hang.run_python), so a segfault or abort
fails one test instead of killing the suite, and a hang fails it with the child's stacks;
the child reports what it raised as JSON on stdout.
"""

import json
import random
import textwrap

import pyarrow as pa
import pytest
from harness.hang import run_python

import riffledb

CHILD_TIMEOUT = 60

_READ_CHILD = textwrap.dedent(
    """
    import json, sys
    import riffledb

    db_path, name, op = sys.argv[1:4]
    try:
        tbl = riffledb.connect(db_path).open_table(name)
        if op.startswith("checkout:"):
            tbl.checkout(int(op.split(":")[1]))
            op = "scan"
        if op == "scan":
            tbl.to_arrow()
        elif op == "take":
            tbl.take_offsets([0]).to_arrow()
        elif op == "search":
            tbl.search().where("id >= 0").to_arrow()
        result = {"raised": None, "ids": tbl.to_arrow()["id"].to_pylist()}
    except (OSError, ValueError) as e:
        result = {"raised": type(e).__name__, "message": str(e)}
    print(json.dumps(result))
    """
)


def _run_child(script: str, *args: str) -> dict:
    # A hang prints the child's stacks on its stderr and exits 1 (harness.hang).
    proc = run_python(script, *args, timeout=CHILD_TIMEOUT)
    # A negative return code is a signal (SIGSEGV, SIGABRT): the process crashed.
    assert proc.returncode == 0, f"exit {proc.returncode}\nstderr:\n{proc.stderr}"
    assert "Fatal Python error" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Sanitizer" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _make_table(db_path, versions: int = 1):
    """A table with `versions` versions: a create of 3 rows then appends of 2 rows.

    Returns (manifests, fragments), each in version order.
    """
    db = riffledb.connect(db_path)
    root = db_path / "t.riffle"
    tbl = db.create_table("t", pa.table({"id": pa.array([0, 1, 2], pa.int64())}))
    fragments = sorted((root / "data").glob("*.arrow"))
    for v in range(1, versions):
        tbl.add(pa.table({"id": pa.array([10 * v, 10 * v + 1], pa.int64())}))
        new = set((root / "data").glob("*.arrow")) - set(fragments)
        assert len(new) == 1
        fragments.extend(new)
    # Manifest names are the zero-padded version (docs/format.md), so sorted order is
    # version order.
    manifests = sorted((root / "_versions").glob("*.json"))
    assert len(manifests) == versions
    assert len(fragments) == versions
    return manifests, fragments


def _garbage(path, rng: random.Random) -> None:
    size = max(path.stat().st_size, 64)
    path.write_bytes(bytes(rng.randrange(256) for _ in range(size)))


def _truncate(path, size) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


def _json_wrong_types(path, rng: random.Random) -> None:
    doc = json.loads(path.read_text())
    assert isinstance(doc, dict)
    path.write_text(json.dumps({k: "x" for k in doc}))


MANIFEST_CORRUPTIONS = {
    "empty": lambda p, rng: _truncate(p, 0),
    "half": lambda p, rng: _truncate(p, p.stat().st_size // 2),
    # The manifest ends with "}\n": dropping only the newline leaves the same, valid JSON,
    # so the truncation that must be caught removes the closing brace too.
    "minus_closing_brace": lambda p, rng: _truncate(p, p.stat().st_size - 2),
    "garbage": _garbage,
    "json_object": lambda p, rng: p.write_text("{}"),
    "json_null": lambda p, rng: p.write_text("null"),
    "json_array": lambda p, rng: p.write_text("[1, 2, 3]"),
    "json_wrong_types": _json_wrong_types,
}

FRAGMENT_CORRUPTIONS = {
    "empty": lambda p, rng: _truncate(p, 0),
    "half": lambda p, rng: _truncate(p, p.stat().st_size // 2),
    "minus_one_byte": lambda p, rng: _truncate(p, p.stat().st_size - 1),
    "garbage": _garbage,
    "deleted": lambda p, rng: p.unlink(),
}


def _assert_names_file(result: dict, path) -> None:
    assert result["raised"] is not None, f"no error reading corrupt {path.name}: {result}"
    assert path.name in result["message"], result


@pytest.mark.parametrize("corruption", sorted(MANIFEST_CORRUPTIONS))
def test_corrupt_manifest(tmp_path, corruption):
    manifests, _ = _make_table(tmp_path)
    MANIFEST_CORRUPTIONS[corruption](manifests[0], random.Random(corruption))
    result = _run_child(_READ_CHILD, str(tmp_path), "t", "scan")
    _assert_names_file(result, manifests[0])


@pytest.mark.parametrize("op", ["scan", "take", "search"])
@pytest.mark.parametrize("corruption", sorted(FRAGMENT_CORRUPTIONS))
def test_corrupt_fragment(tmp_path, corruption, op):
    _, fragments = _make_table(tmp_path)
    FRAGMENT_CORRUPTIONS[corruption](fragments[0], random.Random(corruption))
    result = _run_child(_READ_CHILD, str(tmp_path), "t", op)
    _assert_names_file(result, fragments[0])


def test_corrupt_latest_fragment_leaves_old_version_readable(tmp_path):
    _, fragments = _make_table(tmp_path, versions=2)
    _garbage(fragments[-1], random.Random(0))
    latest = _run_child(_READ_CHILD, str(tmp_path), "t", "scan")
    _assert_names_file(latest, fragments[-1])
    # Version 1 does not reference the appended fragment.
    v1 = _run_child(_READ_CHILD, str(tmp_path), "t", "checkout:1")
    assert v1 == {"raised": None, "ids": [0, 1, 2]}


def test_corrupt_old_manifest_is_reported_on_checkout(tmp_path):
    manifests, _ = _make_table(tmp_path, versions=2)
    _truncate(manifests[0], 3)
    result = _run_child(_READ_CHILD, str(tmp_path), "t", "checkout:1")
    _assert_names_file(result, manifests[0])


def test_corrupt_table_does_not_break_catalog(tmp_path):
    manifests, _ = _make_table(tmp_path)
    riffledb.connect(tmp_path).create_table("ok", pa.table({"id": [7]}))
    _truncate(manifests[0], 0)
    script = textwrap.dedent(
        """
        import json, sys
        import riffledb
        db = riffledb.connect(sys.argv[1])
        print(json.dumps({"names": db.table_names(),
                          "ok": db.open_table("ok").to_arrow()["id"].to_pylist()}))
        """
    )
    # Guess: listing names does not parse manifests, so a corrupt table is still listed.
    assert _run_child(script, str(tmp_path)) == {"names": ["ok", "t"], "ok": [7]}


# ---------------------------------------------------------------------------------------
# garbage filters


_FUZZ_CHILD = textwrap.dedent(
    """
    import json, random, sys
    import pyarrow as pa
    import riffledb

    tokens = ["id", "name", "`a b`", '"a b"', "_rowid", "_rowoffset", "=", "<", ">=",
              "!=", "<>", "AND", "OR", "NOT", "IN", "BETWEEN", "LIKE", "IS", "NULL",
              "CAST", "AS", "BIGINT", "(", ")", ",", "+", "-", "*", "/", "%", "'x'",
              "'", "1", "-1", "1.5", "1e400", "99999999999999999999999", "TRUE", "''",
              "\\\\", "\\x00", "é", ";", "--", "/*", "`", '"', "%", "_", "nosuch"]
    rng = random.Random(int(sys.argv[1]))
    db = riffledb.connect("memory://")
    tbl = db.create_table("t", pa.table({"id": [1, 2, 3], "name": ["a", "b", None],
                                         "a b": [1.0, 2.0, 3.0]}))
    outcomes = {"ok": 0, "ValueError": 0}
    for _ in range(int(sys.argv[2])):
        text = " ".join(rng.choice(tokens) for _ in range(rng.randint(0, 12)))
        if rng.random() < 0.2:
            n = rng.randint(0, 20)
            text = "".join(chr(rng.randrange(1, 0x250)) for _ in range(n))
        try:
            n = tbl.search().where(text).to_arrow().num_rows
            assert n == tbl.count_rows(text), text
            outcomes["ok"] += 1
        except ValueError:
            outcomes["ValueError"] += 1
    print(json.dumps(outcomes))
    """
)


@pytest.mark.parametrize("seed", [1, 2])
def test_garbage_filters_raise_value_error_only(seed):
    result = _run_child(_FUZZ_CHILD, str(seed), "400")
    assert result["ok"] + result["ValueError"] == 400
    assert result["ValueError"] > 0


# ---------------------------------------------------------------------------------------
# a failed call changes nothing


def test_failed_writes_leave_table_unchanged(db):
    data = pa.table({"id": pa.array([0, 1, 2], pa.int64())})
    tbl = db.create_table("t", data)
    failing = [
        lambda: tbl.add(pa.table({"other": [1]})),
        lambda: tbl.add(pa.table({"id": ["x"]})),
        lambda: tbl.delete("id >"),
        lambda: tbl.delete("ghost = 1"),
        lambda: tbl.take_offsets([3]).to_arrow(),
        lambda: db.create_table("t", data),
        lambda: tbl.checkout(5),
    ]
    for call in failing:
        with pytest.raises((ValueError, IndexError)):
            call()
        assert tbl.version == 1
        assert tbl.to_arrow().equals(data)
        assert [v["version"] for v in tbl.list_versions()] == [1]
    reopened = db.open_table("t")
    assert reopened.version == 1
    assert reopened.to_arrow().equals(data)
