"""The two-step write API without Ray: ``Table.write_fragments`` in workers, one
``Table.commit_fragments`` (issue 11, item 6)."""

import datetime
import json
import multiprocessing as mp
import os
import pickle

import pyarrow as pa
import pytest

import riffledb
from riffledb import FragmentDescription
from riffledb.errors import InvalidError, RiffledbTypeError

POOL_TIMEOUT = 120


def ids_table(start: int, n: int) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(start, start + n), pa.int64()),
            "label": pa.array([i % 10 for i in range(start, start + n)], pa.int32()),
        }
    )


@pytest.fixture
def table(db):
    return db.create_table("t", ids_table(0, 10))


def ids(table) -> list[int]:
    return table.to_arrow()["id"].to_pylist()


def test_nothing_is_visible_until_the_commit(table):
    descriptions = table.write_fragments(ids_table(10, 5))
    assert len(descriptions) == 1
    (description,) = descriptions
    assert description.table_name == "t"
    assert description.num_rows == 5
    assert description.base_version == 1
    assert len(description.files) == 1 and description.files[0].startswith("data/")
    assert description.schema == table.schema
    table.checkout_latest()
    assert table.version == 1 and len(table) == 10

    assert table.commit_fragments(descriptions) == 2
    assert table.version == 2
    assert ids(table) == list(range(15))
    assert table.list_versions()[-1]["metadata"] == {"operation": "append"}


def test_accepts_what_add_accepts(table):
    descriptions = []
    for data in (
        ids_table(10, 2),
        ids_table(12, 2).to_batches()[0],
        ids_table(14, 2).to_reader(),
        [{"id": 16, "label": 6}, {"id": 17, "label": 7}],
        {"id": [18, 19], "label": [8, 9]},
        iter(ids_table(20, 2).to_batches()),
        ids_table(22, 2).to_pandas(),
    ):
        descriptions += table.write_fragments(data)
    assert sum(d.num_rows for d in descriptions) == 14
    assert table.commit_fragments(descriptions) == 2
    assert ids(table) == list(range(24))


def test_data_is_matched_as_add_matches_it(table):
    # Columns reordered and a safe cast: as add does.
    data = pa.table({"label": pa.array([1], pa.int64()), "id": pa.array([10])})
    table.commit_fragments(table.write_fragments(data))
    assert ids(table) == list(range(11))
    bad = pa.table({"id": ["x"]})
    with pytest.raises(ValueError) as from_add:
        table.add(bad)
    with pytest.raises(ValueError) as from_write:
        table.write_fragments(bad)
    assert str(from_write.value) == str(from_add.value)


def test_overwrite_replaces_rows_and_schema(table):
    data = pa.table({"name": ["a", "b"]})
    descriptions = table.write_fragments(data, schema=data.schema)
    with pytest.raises(InvalidError, match="it was written with the schema"):
        table.commit_fragments(descriptions)
    assert table.commit_fragments(descriptions, mode="overwrite") == 2
    assert table.to_arrow() == data
    with pytest.raises(InvalidError, match="expected 'append' or 'overwrite'"):
        table.commit_fragments(descriptions, mode="create")


def test_empty_data_gives_a_description_of_no_file(table):
    (description,) = table.write_fragments([])
    assert description.files == () and description.num_rows == 0
    assert table.commit_fragments([description]) == 2
    assert len(table) == 10
    assert table.commit_fragments([description], mode="overwrite") == 3
    assert len(table) == 0 and table.schema == ids_table(0, 0).schema


def test_large_writes_give_one_description_per_file(tmp_db):
    table = tmp_db.create_table("t", ids_table(0, 1))
    descriptions = table.write_fragments(ids_table(1, (1 << 20) + 5))
    assert [d.num_rows for d in descriptions] == [1 << 20, 5]
    assert len({d.files[0] for d in descriptions}) == 2
    table.commit_fragments(descriptions)
    assert len(table) == (1 << 20) + 6


def test_descriptions_pickle_and_travel_as_json(table):
    (description,) = table.write_fragments(ids_table(10, 3))
    text = description.to_json()
    assert "\n" not in text and json.loads(text)["kind"] == "riffledb.written_fragments"
    assert len(pickle.dumps(description)) < 2048
    assert pickle.loads(pickle.dumps(description)) == description
    assert FragmentDescription.from_json(text) == description
    assert hash(FragmentDescription.from_json(text)) == hash(description)
    assert "rows=3" in repr(description)
    table.commit_fragments([pickle.loads(pickle.dumps(description))])
    assert ids(table) == list(range(13))


def test_committing_twice_is_rejected(table):
    descriptions = table.write_fragments(ids_table(10, 5))
    table.commit_fragments(descriptions)
    path = descriptions[0].files[0]
    for mode in ("append", "overwrite"):
        with pytest.raises(InvalidError, match=f"'{path}'.*version 2 already references"):
            table.commit_fragments(descriptions, mode=mode)
    assert table.version == 2
    assert ids(table) == list(range(15))
    # Also once the newest version no longer references it.
    table.optimize()
    with pytest.raises(InvalidError, match="version 2 already references"):
        table.commit_fragments(descriptions)
    assert ids(table) == list(range(15))


def test_an_edited_base_version_does_not_hide_a_commit(table):
    """The reviewer's repro: committed at version 2, overwritten at 3, committed again
    with "base_version": 3 in the JSON. It was accepted and the overwritten rows came
    back; every listed version is read now."""
    (description,) = table.write_fragments(ids_table(10, 5))
    table.commit_fragments([description])
    table.add(ids_table(100, 3), mode="overwrite")
    assert table.version == 3

    def edited(base_version: int) -> FragmentDescription:
        doc = json.loads(description.to_json())
        doc["base_version"] = base_version
        return FragmentDescription.from_json(json.dumps(doc))

    path = description.files[0]
    with pytest.raises(InvalidError) as again:
        table.commit_fragments([edited(3)])
    assert str(again.value) == (
        f"Cannot commit fragment file '{path}' to table 't': version 2 already "
        "references it (were these descriptions committed before?)"
    )
    with pytest.raises(InvalidError) as above:
        table.commit_fragments([edited(4)], mode="overwrite")
    assert str(above.value) == (
        f"Cannot commit fragment file '{path}' to table 't': its description's "
        "'base_version' is 4, above the table's newest version (3)"
    )
    assert table.version == 3
    assert ids(table) == [100, 101, 102]


def test_foreign_and_inconsistent_descriptions_are_rejected(db, table):
    other = db.create_table("u", ids_table(0, 1))
    foreign = other.write_fragments(ids_table(1, 1))
    with pytest.raises(InvalidError, match="it was written for table 'u'"):
        table.commit_fragments(foreign)
    mine = table.write_fragments(ids_table(10, 1))
    with pytest.raises(InvalidError, match="the descriptions name it twice"):
        table.commit_fragments(mine + mine)
    narrow = pa.schema([("id", pa.int64())])
    other_schema = table.write_fragments(pa.table({"id": [11]}), schema=narrow)
    with pytest.raises(InvalidError, match="written with different schemas"):
        table.commit_fragments(mine + other_schema, mode="overwrite")
    with pytest.raises(InvalidError) as empty:
        table.commit_fragments([])
    assert str(empty.value) == "No fragment descriptions to commit to table 't'"
    with pytest.raises(RiffledbTypeError, match="at position 1"):
        table.commit_fragments([mine[0], mine[0].to_json()])
    with pytest.raises(RiffledbTypeError, match="must be a list of FragmentDescription"):
        table.commit_fragments(mine[0])
    assert table.version == 1


def test_missing_and_tampered_files_are_rejected(tmp_db):
    table = tmp_db.create_table("t", ids_table(0, 10))
    (description,) = table.write_fragments(ids_table(10, 5))
    doc = json.loads(description.to_json())
    doc["fragments"][0]["physical_rows"] = 6
    tampered = FragmentDescription.from_json(json.dumps(doc))
    path = description.files[0]
    with pytest.raises(InvalidError, match=f"'{path}' does not match its description"):
        table.commit_fragments([tampered])
    os.remove(os.path.join(tmp_db.uri, "t.riffle", path))
    with pytest.raises(InvalidError, match=f"'{path}' does not exist in the table"):
        table.commit_fragments([description])
    assert table.version == 1


class _Forged:
    """Pickles as a FragmentDescription of any text (what a hostile pickle holds)."""

    def __init__(self, text: str):
        self.text = text

    def __reduce__(self):
        return (FragmentDescription.from_json, (self.text,))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("table"), "missing key 'table'"),
        (lambda d: d.update(kind="x"), "'kind' is 'x'"),
        (lambda d: d.update(base_version=-1), "'base_version' is -1"),
        (lambda d: d.update(schema="!!"), "'schema' is not valid base64"),
        (lambda d: d.update(fragments={}), "'fragments' must be an array"),
        (
            lambda d: d["fragments"][0].update(path="../../etc/passwd"),
            "'fragments[0].path' is '../../etc/passwd'",
        ),
        (
            lambda d: d["fragments"][0].update(path="_versions/1.json"),
            "'fragments[0].path' is '_versions/1.json', must name a file in the table's",
        ),
        (
            lambda d: d["fragments"][0].update(physical_rows="5"),
            "'fragments[0].physical_rows' must be an integer",
        ),
        (
            lambda d: d["fragments"][0].update(batches=0),
            "'fragments[0].batches' is 0",
        ),
        (
            lambda d: d["fragments"][0].update(crc32c="nothex!!"),
            "'fragments[0].crc32c' is 'nothex!!'",
        ),
    ],
)
def test_malformed_descriptions_name_the_field(tmp_db, change, message):
    table = tmp_db.create_table("t", ids_table(0, 1))
    (description,) = table.write_fragments(ids_table(1, 1))
    doc = json.loads(description.to_json())
    change(doc)
    with pytest.raises(InvalidError, match="Invalid fragment description: ") as error:
        FragmentDescription.from_json(json.dumps(doc))
    assert message in str(error.value)
    # Unpickling checks the text too.
    forged = pickle.dumps(_Forged(json.dumps(doc)))
    with pytest.raises(InvalidError, match="Invalid fragment description"):
        pickle.loads(forged)


@pytest.mark.parametrize("text", ["", "{", "[]", "null", "{}", "x" * 10000, "[" * 1000])
def test_garbage_is_rejected(text):
    with pytest.raises(InvalidError, match="Invalid fragment description: "):
        FragmentDescription.from_json(text)


def test_garbage_of_the_wrong_type_is_a_type_error():
    with pytest.raises(RiffledbTypeError):
        FragmentDescription.from_json(b"{}")


def test_uncommitted_files_are_removed_after_the_grace_period(tmp_db):
    table = tmp_db.create_table("t", ids_table(0, 10))
    (description,) = table.write_fragments(ids_table(10, 5))
    file = os.path.join(tmp_db.uri, "t.riffle", description.files[0])
    zero = datetime.timedelta(0)
    assert table.cleanup_old_versions(zero).files_removed == 0
    assert os.path.exists(file)
    eight_days_ago = (datetime.datetime.now() - datetime.timedelta(days=8)).timestamp()
    os.utime(file, (eight_days_ago, eight_days_ago))
    assert table.cleanup_old_versions(zero).files_removed == 1
    assert not os.path.exists(file)
    with pytest.raises(InvalidError, match="does not exist in the table"):
        table.commit_fragments([description])
    assert ids(table) == list(range(10))


def test_module_helpers_take_a_uri(tmp_db):
    tmp_db.create_table("t", ids_table(0, 10))
    descriptions = riffledb.write_fragments(tmp_db.uri, "t", ids_table(10, 2))
    assert riffledb.commit_fragments(tmp_db.uri, "t", descriptions) == 2
    assert ids(tmp_db.open_table("t")) == list(range(12))


# -- workers in other processes ---------------------------------------------------------


def _write_in_worker(args):
    """Runs in a spawn worker: writes rows through a table that was pickled to it."""
    table, start, n = args
    return table.write_fragments(ids_table(start, n))


def _write_by_uri(args):
    uri, start, n = args
    return riffledb.write_fragments(uri, "t", ids_table(start, n))


@pytest.mark.slow
def test_spawned_workers_write_and_one_commit_publishes(tmp_db):
    table = tmp_db.create_table("t", ids_table(0, 100))
    jobs = [(table, 100 + 50 * k, 50) for k in range(6)]
    jobs += [(tmp_db.uri, 1000 + 50 * k, 50) for k in range(2)]
    with mp.get_context("spawn").Pool(2) as pool:
        by_table = pool.map_async(_write_in_worker, jobs[:6])
        by_uri = pool.map_async(_write_by_uri, jobs[6:])
        results = by_table.get(POOL_TIMEOUT) + by_uri.get(POOL_TIMEOUT)
    descriptions = [d for result in results for d in result]
    assert len(descriptions) == 8
    table.checkout_latest()
    assert table.version == 1  # the workers committed nothing
    assert table.commit_fragments(descriptions) == 2
    expected = list(range(400)) + list(range(1000, 1100))
    assert sorted(ids(table)) == expected
    assert len(table.list_versions()) == 2
    with pytest.raises(InvalidError, match="already references"):
        table.commit_fragments(descriptions[3:4])
