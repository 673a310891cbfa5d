"""riffledb.ray on a real local Ray cluster (issue 11, item 6): RiffleDatasink writes a
dataset in one commit, RiffleDatasource / read_riffledb read tables, filtered scans and
permutation splits in parallel.

One cluster (2 CPUs, no dashboard) serves the whole module. Nothing from this module is
sent to Ray workers (they could not import it): datasets come from ``ray.data.range`` and
``ray.data.from_arrow``.
"""

import os

import pyarrow as pa
import pyarrow.compute as pc
import pytest

ray = pytest.importorskip(
    "ray", reason="riffledb.ray needs Ray Data: pip install 'riffledb[ray]'"
)

import riffledb  # noqa: E402
from riffledb.permutation import Permutation, Permutations, permutation_builder  # noqa: E402

rray = pytest.importorskip("riffledb.ray")

# Ray's own DataContext warns about its deprecated settings when it is first used.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")

ROWS = 10_000


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    yield
    ray.shutdown()


def blocks(start: int, n: int, parts: int) -> list[pa.Table]:
    """``n`` rows (id, label, name) from ``start`` in ``parts`` tables, one block each."""
    ids = pa.array(range(start, start + n), pa.int64())
    table = pa.table(
        {
            "id": ids,
            "label": pc.cast(pc.divide(ids, 1000), pa.int32()),
            "name": pc.cast(ids, pa.string()),
        }
    )
    step = -(-n // parts)
    return [table.slice(k * step, step) for k in range(parts)]


def to_arrow(ds) -> pa.Table:
    return pa.concat_tables(ray.get(ds.to_arrow_refs()))


def sorted_ids(table) -> list[int]:
    return sorted(table.to_arrow()["id"].to_pylist())


def test_create_writes_every_block_in_one_commit(tmp_path):
    sink = rray.RiffleDatasink(tmp_path, "t", mode="create")
    ray.data.from_arrow(blocks(0, ROWS, 8)).write_datasink(sink)
    table = riffledb.connect(tmp_path).open_table("t")
    # Version 1 is the empty table made before the tasks ran; one commit holds every
    # task's files.
    assert sink.committed_version == 2
    assert [v["version"] for v in table.list_versions()] == [1, 2]
    assert table.count_rows() == ROWS
    assert sorted_ids(table) == list(range(ROWS))
    assert table.schema == blocks(0, 1, 1)[0].schema
    data = table.to_arrow().sort_by("id")
    assert data == pa.concat_tables(blocks(0, ROWS, 8))
    fragment_ids = set(
        pc.shift_right(table.search().with_row_id().to_arrow()["_rowid"], 32).to_pylist()
    )
    assert len(fragment_ids) > 1  # several tasks wrote


def test_create_from_range_and_refuses_an_existing_table(tmp_path):
    sink = rray.RiffleDatasink(tmp_path, "t", mode="create")
    ray.data.range(ROWS, override_num_blocks=4).write_datasink(sink)
    table = riffledb.connect(tmp_path).open_table("t")
    assert sorted_ids(table) == list(range(ROWS))
    with pytest.raises(Exception, match="already exists"):
        ray.data.range(10).write_datasink(
            rray.RiffleDatasink(tmp_path, "t", mode="create")
        )
    table.checkout_latest()
    assert table.version == 2 and table.count_rows() == ROWS


def test_append_adds_one_version(tmp_path):
    db = riffledb.connect(tmp_path)
    table = db.create_table("t", pa.concat_tables(blocks(0, 100, 1)))
    # Columns in another order: matched by name, as Table.add does.
    parts = [t.select(["name", "label", "id"]) for t in blocks(100, ROWS, 5)]
    sink = rray.RiffleDatasink(str(tmp_path), "t")
    ray.data.from_arrow(parts).write_datasink(sink)
    table.checkout_latest()
    assert sink.committed_version == table.version == 2
    assert sorted_ids(table) == list(range(ROWS + 100))
    assert table.list_versions()[-1]["metadata"] == {"operation": "append"}


def test_append_to_a_missing_table_fails_before_writing(tmp_path):
    riffledb.connect(tmp_path)
    with pytest.raises(Exception, match="not found|does not exist"):
        ray.data.range(10).write_datasink(rray.RiffleDatasink(tmp_path, "nope"))
    assert not (tmp_path / "nope.riffle").exists()


def test_overwrite_replaces_rows_and_schema(tmp_path):
    db = riffledb.connect(tmp_path)
    table = db.create_table("t", pa.concat_tables(blocks(0, 100, 1)))
    sink = rray.RiffleDatasink(tmp_path, "t", mode="overwrite")
    ray.data.range(ROWS, override_num_blocks=4).write_datasink(sink)
    table.checkout_latest()
    assert table.version == 2
    assert table.schema == pa.schema([("id", pa.int64())])
    assert sorted_ids(table) == list(range(ROWS))
    # Overwrite of a missing table creates it.
    ray.data.range(5).write_datasink(rray.RiffleDatasink(tmp_path, "u", mode="overwrite"))
    assert sorted_ids(db.open_table("u")) == list(range(5))


def test_a_failing_task_commits_nothing(tmp_path):
    db = riffledb.connect(tmp_path)
    table = db.create_table("t", pa.concat_tables(blocks(0, 100, 1)))
    bad = pa.table({"id": ["not a number"], "label": [1], "name": ["x"]})
    ds = ray.data.from_arrow(blocks(100, 1000, 3) + [bad])
    with pytest.raises(Exception, match="id"):
        ds.write_datasink(rray.RiffleDatasink(tmp_path, "t"))
    table.checkout_latest()
    assert table.version == 1
    assert [v["version"] for v in table.list_versions()] == [1]
    assert sorted_ids(table) == list(range(100))


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A table of ROWS rows in 10 fragments with some rows deleted, and a permutation
    table "perm" (train / test, shuffled) stored beside it."""
    path = tmp_path_factory.mktemp("db")
    db = riffledb.connect(path)
    parts = blocks(0, ROWS, 10)
    table = db.create_table("t", parts[0])
    for part in parts[1:]:
        table.add(part)
    table.delete("id % 11 = 4")
    permutation = (
        permutation_builder(table)
        .split_random(ratios=[0.7, 0.3], seed=7, split_names=["train", "test"])
        .shuffle(seed=3)
        .execute()
    )
    db.create_table("perm", permutation.to_arrow())
    return path, table


def test_read_a_table(stored):
    path, table = stored
    ds = rray.read_riffledb(path, "t", override_num_blocks=4)
    assert ds.count() == len(table)
    assert to_arrow(ds) == table.to_arrow()


def test_read_a_filtered_scan_and_columns(stored):
    path, table = stored
    ds = rray.read_riffledb(
        path, "t", filter="label >= 3 AND id % 2 = 0", columns=["name", "id"]
    )
    expected = (
        table.search()
        .where("label >= 3 AND id % 2 = 0")
        .select(["name", "id"])
        .to_arrow()
    )
    assert to_arrow(ds) == expected


def test_read_pins_the_version(tmp_path):
    db = riffledb.connect(tmp_path)
    table = db.create_table("t", blocks(0, 2000, 1)[0])
    source = rray.RiffleDatasource(tmp_path, "t")
    table.add(blocks(2000, 10, 1)[0])
    assert ray.data.read_datasource(source).count() == 2000
    assert rray.read_riffledb(tmp_path, "t", version=2).count() == 2010


def test_read_a_permutation_split_by_name(stored):
    path, table = stored
    perm_table = riffledb.connect(path).open_table("perm")
    expected = Permutations(table, perm_table)["test"].with_format("arrow")
    ds = rray.read_riffledb(path, "t", permutation="perm", split="test")
    rows = to_arrow(ds)
    assert rows == pa.Table.from_batches(list(expected.iter(4096)))
    assert rows.num_rows == len(expected)


def test_read_a_permutation_view(stored):
    path, table = stored
    perm_table = riffledb.connect(path).open_table("perm")
    view = (
        Permutation.from_tables(table, perm_table, "train")
        .with_skip(100)
        .with_take(3000)
        .select_columns(["id", "label"])
    )
    ds = rray.read_riffledb(path, "t", permutation=view, override_num_blocks=3)
    expected = pa.Table.from_batches(list(view.with_format("arrow").iter(1000)))
    assert to_arrow(ds) == expected


def test_a_permutation_object_must_match_table_and_version(stored):
    """table_name= and version= were silently ignored with a Permutation object."""
    path, table = stored
    perm_table = riffledb.connect(path).open_table("perm")
    view = Permutation.from_tables(table, perm_table, "train")
    with pytest.raises(riffledb.errors.InvalidError) as error:
        rray.RiffleDatasource(path, "perm", permutation=view)
    assert str(error.value) == (
        "table_name is 'perm', but the permutation reads table 't'"
    )
    with pytest.raises(riffledb.errors.InvalidError) as error:
        rray.RiffleDatasource(path, "t", permutation=view, version=1)
    assert str(error.value) == (
        f"version is 1, but the permutation reads version {table.version} of table 't'"
    )
    source = rray.RiffleDatasource(path, "t", permutation=view, version=table.version)
    assert ray.data.read_datasource(source).count() == len(view)


def test_bad_arguments_are_refused_in_the_driver(stored):
    path, _ = stored
    with pytest.raises(ValueError, match="nope"):
        rray.RiffleDatasource(path, "t", columns=["nope"])
    with pytest.raises(ValueError):
        rray.RiffleDatasource(path, "t", filter="id >")
    with pytest.raises(riffledb.errors.NotSupportedError):
        rray.RiffleDatasource(path, "t", permutation="perm", filter="id > 3")
    with pytest.raises(ValueError, match="split"):
        rray.RiffleDatasource(path, "t", split="train")
    with pytest.raises(ValueError, match="mode"):
        rray.RiffleDatasink(path, "t", mode="upsert")
    with pytest.raises(ValueError, match="a memory:// database lives in one process"):
        rray.RiffleDatasink("memory://", "t")


def test_an_empty_dataset_creates_an_empty_table(tmp_path):
    schema = pa.schema([("id", pa.int64())])
    sink = rray.RiffleDatasink(tmp_path, "t", mode="create", schema=schema)
    ray.data.range(0).write_datasink(sink)
    assert sink.committed_version == 1
    table = riffledb.connect(tmp_path).open_table("t")
    assert table.schema == schema and len(table) == 0
    # Appending nothing commits nothing.
    append = rray.RiffleDatasink(tmp_path, "t")
    ray.data.range(0).write_datasink(append)
    assert append.committed_version is None
    table.checkout_latest()
    assert table.version == 1 and len(table) == 0


def test_an_empty_dataset_without_a_schema_cannot_create(tmp_path):
    # ray.data.range(0) has no block: Ray calls neither on_write_start nor any task.
    with pytest.raises(riffledb.errors.InvalidError) as error:
        ray.data.range(0).write_datasink(
            rray.RiffleDatasink(tmp_path, "t", mode="create")
        )
    assert str(error.value) == (
        "Cannot create table 't': the dataset gave no schema (it has no blocks, or "
        "blocks without one); pass schema= to RiffleDatasink"
    )
    assert not (tmp_path / "t.riffle").exists()
    # Nor an overwrite of a missing table.
    with pytest.raises(riffledb.errors.InvalidError, match="Cannot create table 'u'"):
        ray.data.range(0).write_datasink(
            rray.RiffleDatasink(tmp_path, "u", mode="overwrite")
        )
    assert not (tmp_path / "u.riffle").exists()


def test_an_empty_dataset_appended_to_a_missing_table_fails(tmp_path):
    riffledb.connect(tmp_path)
    with pytest.raises(riffledb.errors.TableNotFoundError):
        ray.data.range(0).write_datasink(rray.RiffleDatasink(tmp_path, "nope"))
    assert not (tmp_path / "nope.riffle").exists()


def test_an_empty_overwrite_removes_every_row(tmp_path):
    """It kept the old rows (and committed nothing) when no schema= was given."""
    db = riffledb.connect(tmp_path)
    table = db.create_table("t", pa.concat_tables(blocks(0, 100, 1)))
    sink = rray.RiffleDatasink(tmp_path, "t", mode="overwrite")
    ray.data.range(0).write_datasink(sink)
    table.checkout_latest()
    assert sink.committed_version == table.version == 2
    assert len(table) == 0
    assert table.schema == blocks(0, 1, 1)[0].schema  # the table's own
    assert table.list_versions()[-1]["metadata"] == {"operation": "overwrite"}
    # With schema=, that schema.
    narrow = pa.schema([("id", pa.int64())])
    sink = rray.RiffleDatasink(tmp_path, "t", mode="overwrite", schema=narrow)
    ray.data.range(0).write_datasink(sink)
    table.checkout_latest()
    assert sink.committed_version == table.version == 3
    assert len(table) == 0 and table.schema == narrow


def test_blocks_without_rows_overwrite_with_the_datasets_schema(tmp_path):
    # Ray runs on_write_start (with the blocks' schema) and the tasks, which write no
    # file: their descriptions of no file carry the schema.
    from ray.data.expressions import col

    db = riffledb.connect(tmp_path)
    table = db.create_table("t", pa.concat_tables(blocks(0, 100, 1)))
    sink = rray.RiffleDatasink(tmp_path, "t", mode="overwrite")
    ray.data.range(10).filter(expr=col("id") < 0).write_datasink(sink)
    table.checkout_latest()
    assert sink.committed_version == table.version == 2
    assert len(table) == 0 and table.schema == pa.schema([("id", pa.int64())])


@pytest.mark.parametrize("landed", [False, True], ids=["not landed", "landed"])
def test_a_commit_of_unknown_outcome_is_retried_once(tmp_path, monkeypatch, landed):
    """The final commit fails with CommitOutcomeUnknownError, having committed (or not):
    the sink commits the same descriptions again, and the rows land once."""
    db = riffledb.connect(tmp_path)
    table = db.create_table("t", pa.concat_tables(blocks(0, 100, 1)))
    real = riffledb.table.Table.commit_fragments
    calls = []

    def flaky(self, descriptions, mode="append"):
        calls.append(len(descriptions))
        if len(calls) == 1:
            if landed:
                real(self, descriptions, mode=mode)
            raise riffledb.errors.CommitOutcomeUnknownError("lost reply")
        return real(self, descriptions, mode=mode)

    monkeypatch.setattr(riffledb.table.Table, "commit_fragments", flaky)
    sink = rray.RiffleDatasink(tmp_path, "t")
    ds = ray.data.from_arrow(blocks(100, 1000, 4))
    if landed:
        with pytest.raises(riffledb.errors.InvalidError) as error:
            ds.write_datasink(sink)
        assert "to table 't': version 2 already references it" in str(error.value)
        assert isinstance(
            error.value.__context__, riffledb.errors.CommitOutcomeUnknownError
        )
        assert sink.committed_version is None
    else:
        ds.write_datasink(sink)
        assert sink.committed_version == 2
    assert len(calls) == 2 and calls[0] == calls[1] >= 4
    table.checkout_latest()
    assert table.version == 2
    assert sorted_ids(table) == list(range(1100))


def test_write_and_read_an_s3_table():
    """A Ray write to ``s3://`` lands in one commit and reads back exactly; the sink
    tells Ray that every node may write (the moto server on loopback stands in for S3)."""
    pytest.importorskip("moto", reason="needs moto[server] (requirements-dev)")
    from harness.s3_server import BUCKET, S3Server

    server = S3Server()
    try:
        uri = f"s3://{BUCKET}/ray-{os.getpid()}"
        options = server.storage_options()
        sink = rray.RiffleDatasink(uri, "t", mode="create", storage_options=options)
        assert sink.supports_distributed_writes
        ray.data.from_arrow(blocks(0, ROWS, 4)).write_datasink(sink)
        table = riffledb.connect(uri, storage_options=options).open_table("t")
        assert sink.committed_version == 2
        assert [v["version"] for v in table.list_versions()] == [1, 2]
        assert sorted_ids(table) == list(range(ROWS))
        read = to_arrow(
            rray.read_riffledb(uri, "t", filter="label = 3", storage_options=options)
        )
        assert sorted(read["id"].to_pylist()) == list(range(3000, 4000))
    finally:
        server.stop()
