"""Recovery (issue #10, item 4): a damaged or foreign manifest never hides the intact
versions; list_versions marks it, checkout / open_table(version=) reach the others,
restore(n) commits a version equal to n. Errors name the file and the version."""

import pathlib

import pyarrow as pa
import pytest

import riffledb
from riffledb.errors import CorruptionError, InvalidError


def _ids(start: int, n: int) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64())})


def _manifest(db_path: pathlib.Path, version: int) -> pathlib.Path:
    return db_path / "t.riffle" / "_versions" / f"{version:020d}.json"


DAMAGE = {
    "garbage": (3, b'{"format_version": 1, "ver'),
    "non-utf8": (3, b'{"op\xff\xfe": 1}'),
    "foreign": (4, b"hello"),
}


@pytest.fixture(params=sorted(DAMAGE))
def damaged(tmp_path, request):
    """Versions 1..3 holding 10, 20, 30 rows; then one manifest damaged. Yields
    (db path, damaged version, newest intact version)."""
    db = riffledb.connect(tmp_path)
    t = db.create_table("t", _ids(0, 10))
    t.add(_ids(10, 10))
    t.add(_ids(20, 10))
    version, content = DAMAGE[request.param]
    _manifest(tmp_path, version).write_bytes(content)
    return tmp_path, version, version - 1


def test_open_lists_and_names_the_damage(damaged):
    path, bad, good = damaged
    t = riffledb.connect(path).open_table("t")
    assert t.version == bad
    with pytest.raises(CorruptionError) as info:
        t.count_rows()
    message = str(info.value)
    assert f"Version {bad} of table 't' is damaged" in message
    assert str(_manifest(path, bad)) in message
    assert "restore(n)" in message
    versions = t.list_versions()
    assert [v["version"] for v in versions] == list(range(1, bad + 1))
    assert [("damaged" in v) for v in versions] == [False] * (bad - 1) + [True]
    assert str(_manifest(path, bad)) in versions[-1]["damaged"]
    assert versions[-1]["timestamp"] is None
    assert versions[0]["metadata"] == {"operation": "create"}
    with pytest.raises(CorruptionError, match=f"Version {bad} of table 't'"):
        t.add(_ids(100, 1))


def test_checkout_and_open_at_a_version_reach_intact_versions(damaged):
    path, bad, good = damaged
    db = riffledb.connect(path)
    t = db.open_table("t")
    t.checkout(good)
    assert t.to_arrow()["id"].to_pylist() == list(range(10 * good))
    pinned = db.open_table("t", version=good)
    assert len(pinned) == 10 * good
    with pytest.raises(CorruptionError, match=str(_manifest(path, bad))):
        db.open_table("t", version=bad)


def test_restore_commits_an_intact_version(damaged):
    path, bad, good = damaged
    db = riffledb.connect(path)
    t = db.open_table("t")
    assert t.restore(good) == bad + 1
    assert t.version == bad + 1
    assert t.to_arrow()["id"].to_pylist() == list(range(10 * good))
    fresh = db.open_table("t")
    assert len(fresh) == 10 * good
    fresh.add(_ids(500, 5))
    assert len(fresh) == 10 * good + 5
    versions = fresh.list_versions()
    assert versions[bad]["metadata"] == {"operation": "restore"}
    assert "damaged" in versions[bad - 1]


def test_restore_defaults_to_the_checked_out_version(tmp_path):
    t = riffledb.connect(tmp_path).create_table("t", _ids(0, 3))
    t.add(_ids(3, 3))
    t.checkout(1)
    assert t.restore() == 3
    assert len(t) == 3
    t.add(_ids(6, 1))  # no longer detached
    assert len(t) == 4


def test_restore_refuses_missing_and_damaged(damaged):
    path, bad, good = damaged
    t = riffledb.connect(path).open_table("t")
    with pytest.raises(InvalidError, match="version 99 of table 't': it does not exist"):
        t.restore(99)
    with pytest.raises(CorruptionError):
        t.restore(bad)
    with pytest.raises(TypeError, match="version"):
        t.restore("2")


def test_non_utf8_manifest_error_is_readable(tmp_path):
    """Regression: a non-UTF-8 byte in a manifest gave UnicodeDecodeError without the
    file's name."""
    db = riffledb.connect(tmp_path)
    db.create_table("t", _ids(0, 3))
    _manifest(tmp_path, 1).write_bytes(b'{"version": "\xff\xfe"}')
    t = db.open_table("t")
    with pytest.raises(CorruptionError) as info:
        len(t)
    assert str(_manifest(tmp_path, 1)) in str(info.value)
