"""An exception raised by the caller's data source reaches the caller as itself (the same
object, not a riffledb error carrying its text), and nothing is written."""

import pyarrow as pa
import pytest

from riffledb import errors

SCHEMA = pa.schema([("id", pa.int64())])


class SourceError(Exception):
    """Raised by the test's data sources; derives from nothing riffledb maps."""


def _batch(*ids):
    return pa.record_batch([pa.array(ids, pa.int64())], schema=SCHEMA)


def _raising(error, after):
    """A generator of `after` batches, then `error`."""

    def batches():
        for i in range(after):
            yield _batch(i)
        raise error

    return batches()


@pytest.fixture(params=["tmp", "mem"])
def db(request):
    return request.getfixturevalue(f"{request.param}_db")


def _sources(error, after):
    """Every shape of streamed input, each raising `error` after `after` batches."""
    return {
        "generator": _raising(error, after),
        "reader": pa.RecordBatchReader.from_batches(SCHEMA, _raising(error, after)),
        # A reader reached through __arrow_c_stream__ only (polars, DuckDB, ...).
        "c_stream": _CStream(
            pa.RecordBatchReader.from_batches(SCHEMA, _raising(error, after))
        ),
    }


class _CStream:
    def __init__(self, reader):
        self._reader = reader

    def __arrow_c_stream__(self, requested_schema=None):
        return self._reader.__arrow_c_stream__(requested_schema)


@pytest.mark.parametrize("shape", ["generator", "reader"])
@pytest.mark.parametrize("after", [0, 2])
@pytest.mark.parametrize("cls", [KeyError, SourceError, ValueError])
def test_create_table_raises_the_source_exception(db, shape, after, cls):
    error = cls("the source broke")
    source = _sources(error, after)[shape]
    with pytest.raises(cls) as info:
        db.create_table("t", source, schema=SCHEMA)
    assert info.value is error
    assert "t" not in db
    assert db.table_names() == []


def test_create_table_without_schema_raises_the_first_batch_exception(db):
    error = KeyError("no first batch")
    with pytest.raises(KeyError) as info:
        db.create_table("t", _raising(error, 0))
    assert info.value is error
    assert db.table_names() == []


def test_create_table_without_schema_takes_the_first_batch_schema(db):
    tbl = db.create_table("t", iter([_batch(1, 2), _batch(3)]))
    assert tbl.schema == SCHEMA
    assert tbl.to_arrow()["id"].to_pylist() == [1, 2, 3]


@pytest.mark.parametrize("shape", ["generator", "reader"])
@pytest.mark.parametrize("mode", ["append", "overwrite"])
def test_add_raises_the_source_exception_and_writes_nothing(db, shape, mode):
    tbl = db.create_table("t", _batch(7, 8))
    error = SourceError("midway")
    source = _sources(error, 2)[shape]
    with pytest.raises(SourceError) as info:
        tbl.add(source, mode=mode)
    assert info.value is error
    # The traceback reaches the generator's raise.
    frames = []
    tb = info.value.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert "batches" in frames
    assert tbl.version == 1
    assert tbl.to_arrow()["id"].to_pylist() == [7, 8]
    assert db.open_table("t").version == 1


def test_source_exception_keeps_its_own_context(db):
    tbl = db.create_table("t", _batch(1))

    def batches():
        yield _batch(2)
        try:
            {}["missing"]
        except KeyError as inner:
            raise SourceError("wrapped") from inner

    with pytest.raises(SourceError) as info:
        tbl.add(pa.RecordBatchReader.from_batches(SCHEMA, batches()))
    assert isinstance(info.value.__cause__, KeyError)
    assert not isinstance(info.value.__context__, errors.RiffledbError)


def test_c_stream_source_error_keeps_its_message(db):
    # Through the C stream interface only the message crosses: the caller gets what
    # pyarrow raises reading the stream (the class Arrow's error code maps to), with the
    # source's text.
    tbl = db.create_table("t", _batch(1))
    source = _sources(ValueError("c stream broke"), 1)["c_stream"]
    with pytest.raises(ValueError, match="c stream broke"):
        tbl.add(source)
    assert tbl.version == 1
    assert tbl.to_arrow()["id"].to_pylist() == [1]


def test_bad_batch_in_iterator_is_named_by_position(db):
    tbl = db.create_table("t", _batch(1))
    with pytest.raises(errors.RiffledbTypeError) as info:
        tbl.add(iter([_batch(2), {"id": [3]}]))
    assert str(info.value) == (
        "An iterable of data must yield pyarrow RecordBatches or Tables, got dict at "
        "position 1"
    )
    assert tbl.version == 1


def test_mismatched_batch_in_reader_is_invalid_error(db):
    tbl = db.create_table("t", _batch(1))
    other = pa.record_batch([pa.array(["x"])], names=["id"])

    def batches():
        yield other

    with pytest.raises(errors.InvalidError) as info:
        tbl.add(pa.RecordBatchReader.from_batches(other.schema, batches()))
    assert "Cannot cast column 'id' of the data (string) to int64" in str(info.value)
    assert tbl.version == 1
