"""riffledb.errors: the hierarchy, and the class each failure raises (docs/errors.md)."""

import pickle

import pyarrow as pa
import pytest

import riffledb
from riffledb import errors

# Each class, the builtins it must also be (so existing `except` clauses keep working).
HIERARCHY = {
    errors.InvalidError: (ValueError,),
    errors.TableNotFoundError: (ValueError, errors.InvalidError),
    errors.TableExistsError: (ValueError, errors.InvalidError),
    errors.RiffledbTypeError: (TypeError,),
    errors.RiffledbKeyError: (KeyError,),
    errors.RiffledbIndexError: (IndexError,),
    errors.RiffledbIOError: (OSError,),
    errors.CorruptionError: (OSError, ValueError, errors.RiffledbIOError),
    errors.CommitOutcomeUnknownError: (OSError, errors.RiffledbIOError),
    errors.NotSupportedError: (NotImplementedError,),
    errors.RiffledbMemoryError: (MemoryError,),
    errors.InternalError: (RuntimeError,),
}


def test_every_exported_class_is_in_the_hierarchy_table():
    exported = {getattr(errors, name) for name in errors.__all__}
    assert exported == set(HIERARCHY) | {errors.RiffledbError}
    assert riffledb.RiffledbError is errors.RiffledbError


@pytest.mark.parametrize("cls", list(HIERARCHY), ids=lambda c: c.__name__)
def test_class_derives_from_base_and_builtins(cls):
    assert issubclass(cls, errors.RiffledbError)
    for parent in HIERARCHY[cls]:
        assert issubclass(cls, parent)
    assert cls.__module__ == "riffledb.errors"
    assert cls.__doc__


@pytest.mark.parametrize("cls", list(HIERARCHY), ids=lambda c: c.__name__)
def test_class_round_trips_as_torch_rebuilds_it(cls):
    # torch's DataLoader re-raises a worker's exception as type(e)(message); pickle is how
    # it crosses processes.
    error = cls("Table 't' was not found\nin database '/x'")
    assert str(error) == "Table 't' was not found\nin database '/x'"
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == str(error)
    assert str(type(error)(str(error))) == str(error)


def test_key_error_message_is_prose_not_a_repr():
    assert str(errors.RiffledbKeyError("No column 'a'")) == "No column 'a'"
    assert str(KeyError("No column 'a'")) == "\"No column 'a'\""


# ---------------------------------------------------------------------------------------
# what the status mapper raises (python/src/errors.cc)


@pytest.fixture(params=["tmp", "mem"])
def db(request):
    return request.getfixturevalue(f"{request.param}_db")


def _raised(call) -> BaseException:
    with pytest.raises(errors.RiffledbError) as info:
        call()
    return info.value


def test_table_not_found(db):
    for call in (lambda: db.open_table("ghost"), lambda: db.drop_table("ghost")):
        error = _raised(call)
        assert type(error) is errors.TableNotFoundError
        assert "Table 'ghost' was not found in database" in str(error)


def test_table_exists(db):
    data = pa.table({"id": [1]})
    db.create_table("t", data)
    error = _raised(lambda: db.create_table("t", data))
    assert type(error) is errors.TableExistsError
    assert "Table 't' already exists in database" in str(error)
    # exist_ok and overwrite are not errors.
    assert db.create_table("t", data, exist_ok=True).version == 1
    assert db.create_table("t", data, mode="overwrite").version == 2


def test_invalid_name_and_filter_are_invalid_error(db):
    error = _raised(lambda: db.create_table("a/b", pa.table({"id": [1]})))
    assert type(error) is errors.InvalidError
    assert "a/b" in str(error)
    tbl = db.create_table("t", pa.table({"id": [1]}))
    error = _raised(lambda: tbl.count_rows("nosuch > 1"))
    assert type(error) is errors.InvalidError
    assert "nosuch" in str(error)
    error = _raised(lambda: tbl.checkout(7))
    assert type(error) is errors.InvalidError
    assert "Version 7" in str(error)


def test_offset_out_of_range_is_index_error(db):
    tbl = db.create_table("t", pa.table({"id": [1, 2]}))
    error = _raised(lambda: tbl.take_offsets([0, 2]).to_arrow())
    assert type(error) is errors.RiffledbIndexError
    assert "2" in str(error)


def test_unsupported_uri_is_not_supported_error():
    error = _raised(lambda: riffledb.connect("gs://bucket/db"))
    assert type(error) is errors.NotSupportedError
    assert "gs://bucket/db" in str(error)


def test_database_path_that_is_a_file_is_io_error(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    error = _raised(lambda: riffledb.connect(path))
    assert type(error) is errors.RiffledbIOError
    assert str(path) in str(error)


def test_search_with_a_query_is_not_supported(mem_db):
    tbl = mem_db.create_table("t", pa.table({"id": [1]}))
    error = _raised(lambda: tbl.search([0.1, 0.2]))
    assert type(error) is errors.NotSupportedError


def test_corrupt_manifest_is_corruption_error(tmp_path):
    db = riffledb.connect(tmp_path)
    db.create_table("t", pa.table({"id": [1]}))
    (manifest,) = (tmp_path / "t.riffle" / "_versions").glob("*.json")
    manifest.write_text("{}")
    # The table opens (a damaged version never hides the others, issue #10); reading the
    # damaged version raises.
    error = _raised(lambda: db.open_table("t").to_arrow())
    assert type(error) is errors.CorruptionError
    assert isinstance(error, OSError) and isinstance(error, ValueError)
    assert manifest.name in str(error)


def test_corrupt_fragment_is_corruption_error(tmp_path):
    db = riffledb.connect(tmp_path)
    tbl = db.create_table("t", pa.table({"id": [1, 2, 3]}))
    (fragment,) = (tmp_path / "t.riffle" / "data").glob("*.arrow")
    fragment.write_bytes(fragment.read_bytes()[:-1])
    error = _raised(lambda: riffledb.connect(tmp_path).open_table("t").to_arrow())
    assert type(error) is errors.CorruptionError
    assert fragment.name in str(error)
    del tbl
