"""s3:// databases on an S3 server on loopback (moto, harness.s3_server).

The server checks every request's SigV4 signature and handles conditional PUTs
atomically, as S3 does. Covered: connecting with storage options or the environment,
every table operation, permutations, pickling into spawn workers, processes appending to
one table at once (no lost commit), a conflicting write landing between a commit's checks
and its conditional PUT, drops, and the errors of bad options and credentials (without
the secret in them). Not timed: exact expectations only.
"""

from __future__ import annotations

import os
import pickle
import uuid

import pyarrow as pa
import pytest

pytest.importorskip("moto", reason="the s3:// tests need moto[server] (requirements-dev)")
pytest.importorskip("boto3", reason="the s3:// tests need boto3 (requirements-dev)")

from harness.data import all_rows  # noqa: E402
from harness.hang import Child, run_in_child  # noqa: E402
from harness.pickle_scenarios import read_unpickled  # noqa: E402
from harness.s3_scenarios import (  # noqa: E402
    APPENDS,
    append_in_forked_child,
    appender_scenarios,
    read_pickled_table,
)
from harness.s3_server import BUCKET, S3Server  # noqa: E402

import riffledb  # noqa: E402
from riffledb.errors import InvalidError, RiffledbTypeError  # noqa: E402
from riffledb.permutation import Permutations, permutation_builder  # noqa: E402

ROWS = 100


def data(n: int = ROWS, start: int = 0) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "x": pa.array([i / 2 for i in ids], pa.float64()),
        }
    )


@pytest.fixture(scope="module")
def s3():
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def prefix() -> str:
    """A fresh prefix in the bucket: each test has a database of its own."""
    return f"db-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def uri(prefix) -> str:
    return f"s3://{BUCKET}/{prefix}"


@pytest.fixture
def s3_db(s3, uri):
    return riffledb.connect(uri, storage_options=s3.storage_options())


@pytest.fixture
def s3_env(s3, monkeypatch):
    """The test server's credentials and endpoint in the environment, where
    `riffledb.connect` without options and `riffledb serve` find them."""
    options = s3.storage_options()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", options["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", options["aws_secret_access_key"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", options["endpoint"])
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("AWS_REGION", options["region"])


def manifest_key(prefix: str, table: str, version: int) -> str:
    return f"{prefix}/{table}.riffle/_versions/{version:020d}.json"


# -- connecting ------------------------------------------------------------------------


def test_connect_names_the_bucket_and_prefix(s3, prefix):
    db = riffledb.connect(
        f"s3://{BUCKET}/{prefix}/", storage_options=s3.storage_options()
    )
    assert db.uri == f"s3://{BUCKET}/{prefix}"
    assert db.table_names() == []
    assert db.storage_options == s3.storage_options()
    assert s3.secret_access_key not in repr(db)


def test_connect_from_the_environment(s3, s3_env, uri, monkeypatch):
    db = riffledb.connect(uri)
    db.create_table("t", data(5))
    # Options win over the environment: a wrong key in the environment is not used.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    again = riffledb.connect(uri, storage_options=s3.storage_options())
    assert again.open_table("t").count_rows() == 5


# -- tables ----------------------------------------------------------------------------


def test_table_operations(s3_db, s3, uri, prefix):
    table = s3_db.create_table("t", data())
    assert s3_db.table_names() == ["t"]
    assert "t" in s3_db
    assert table.version == 1
    assert table.count_rows() == ROWS
    assert table.to_arrow().equals(data())

    table.add(data(20, start=ROWS))
    assert table.version == 2
    assert table.count_rows() == ROWS + 20
    assert table.take_offsets([119, 0, 57]).to_arrow()["id"].to_pylist() == [119, 0, 57]
    # Row ids: fragment 1 holds the appended rows.
    rowids = [(1 << 32) + 3, 5]
    assert table.take_row_ids(rowids).to_arrow()["id"].to_pylist() == [103, 5]
    assert table.search().where("id >= 110").to_arrow()["id"].to_pylist() == list(
        range(110, 120)
    )
    assert table.count_rows("x < 5") == 10

    table.delete("id % 2 = 0")
    assert table.version == 3
    assert table.count_rows() == (ROWS + 20) // 2
    assert table.take_offsets([0, 1]).to_arrow()["id"].to_pylist() == [1, 3]
    assert [v["version"] for v in table.list_versions()] == [1, 2, 3]
    assert [v["metadata"]["operation"] for v in table.list_versions()] == [
        "create",
        "append",
        "delete",
    ]

    table.checkout(2)
    assert table.count_rows() == ROWS + 20
    table.checkout_latest()
    assert table.version == 3

    # Another connection sees the same table.
    other = riffledb.connect(uri, storage_options=s3.storage_options()).open_table("t")
    assert other.version == 3
    assert other.to_arrow().equals(table.to_arrow())
    table.verify()

    keys = s3.keys(f"{prefix}/t.riffle/")
    assert [k for k in keys if "/_versions/" in k and k.endswith(".json")] == [
        manifest_key(prefix, "t", v) for v in (1, 2, 3)
    ]
    assert sum(k.endswith(".arrow") and "/data/" in k for k in keys) == 2
    # One deletion file per fragment with deleted rows.
    assert sum(k.endswith(".arrow") and "/_deletions/" in k for k in keys) == 2


def requests_since(s3, mark: int, prefix: str) -> list[tuple[str, str]]:
    """The requests the server had since ``mark`` that name ``prefix``, each as
    ``("LIST", listed prefix)`` or ``(method, key)``, in order."""
    from urllib.parse import parse_qs

    seen = []
    for method, path, query in s3.requests[mark:]:
        if path == f"/{BUCKET}" and method == "GET":
            listed = parse_qs(query).get("prefix", [""])[0]
            if listed.startswith(prefix):
                seen.append(("LIST", listed))
        elif path.startswith(f"/{BUCKET}/{prefix}"):
            seen.append((method, path[len(BUCKET) + 2 :]))
    return seen


def test_connect_and_open_send_few_requests(s3_db, s3, uri, prefix, tmp_path):
    """Each request to S3 is a round trip: connecting lists the database once (no HEAD,
    no second listing), opening lists the table's versions once and reads the newest
    manifest, which arrow::fs does as a HEAD and a GET (no type lookup before it); the
    deletion file, whose size the manifest gives, is one GET; the data files are read
    through the cache, with GETs only. 12 requests, then 7."""
    table = s3_db.create_table("t", data(10))
    table.add(data(10, start=10))
    table.delete("id < 3")
    mark = len(s3.requests)
    # A cache of its own: the data files are fetched, not found cached by the writes.
    options = s3.storage_options(cache_dir=str(tmp_path / "cache"))
    db = riffledb.connect(uri, storage_options=options)
    assert requests_since(s3, mark, prefix) == [("LIST", f"{prefix}/")]
    mark = len(s3.requests)
    opened = db.open_table("t")
    assert opened.count_rows() == 17
    seen = requests_since(s3, mark, prefix)
    manifest = manifest_key(prefix, "t", 3)
    assert [r for r in seen if "/data/" not in r[1] and "/_deletions/" not in r[1]] == [
        ("LIST", f"{prefix}/t.riffle/_versions/"),
        ("HEAD", manifest),
        ("GET", manifest),
    ]
    deletions = [r for r in seen if "/_deletions/" in r[1]]
    assert [method for method, _ in deletions] == ["GET"]
    data_requests = [r for r in seen if "/data/" in r[1]]
    assert data_requests and all(method == "GET" for method, _ in data_requests)
    assert sorted(opened.to_arrow()["id"].to_pylist()) == list(range(3, 20))


def test_a_damaged_deletion_file_on_s3_is_told(s3_db, s3, prefix):
    """Read without asking its size first (one GET of the size the manifest gives), a
    deletion file that lost its tail is still found damaged: the CRC of what the GET
    brought is not the manifest's."""
    table = s3_db.create_table("t", data(10))
    table.delete("id < 3")
    (key,) = [
        k for k in s3.keys(f"{prefix}/t.riffle/_deletions/") if k.endswith(".arrow")
    ]
    body = s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    s3.client.put_object(Bucket=BUCKET, Key=key, Body=body[:-5])
    db = riffledb.connect(f"s3://{BUCKET}/{prefix}", storage_options=s3.storage_options())
    with pytest.raises(Exception, match=key.rsplit("/", 1)[1]) as raised:
        db.open_table("t").to_arrow()
    assert "checksum mismatch" in str(raised.value)
    assert raised.type.__name__ == "CorruptionError"


def test_opening_a_missing_table_is_not_found_on_s3(s3_db):
    s3_db.create_table("t", data(3))
    with pytest.raises(ValueError, match="Table 'missing' was not found"):
        s3_db.open_table("missing")
    assert s3_db.open_table("t").count_rows() == 3


def test_create_existing_table_fails(s3_db):
    s3_db.create_table("t", data(3))
    with pytest.raises(riffledb.errors.TableExistsError, match="'t' already exists"):
        s3_db.create_table("t", data(3))
    assert s3_db.create_table("t", data(9), exist_ok=True).count_rows() == 3
    assert s3_db.create_table("t", data(9), mode="overwrite").count_rows() == 9


def test_drop_table_deletes_its_objects(s3_db, s3, prefix):
    s3_db.create_table("t", data(10)).add(data(5, start=10))
    s3_db.create_table("keep", data(3))
    s3_db.drop_table("t")
    assert s3_db.table_names() == ["keep"]
    assert s3.keys(f"{prefix}/t.riffle/") == []
    with pytest.raises(riffledb.errors.TableNotFoundError, match="'t' was not found"):
        s3_db.open_table("t")
    with pytest.raises(riffledb.errors.TableNotFoundError):
        s3_db.drop_table("t")
    s3_db.drop_table("t", ignore_missing=True)
    # The name is free again.
    assert s3_db.create_table("t", data(4)).count_rows() == 4
    assert s3_db.open_table("keep").count_rows() == 3


def test_writer_of_a_dropped_table_is_told(s3_db):
    table = s3_db.create_table("t", data(10))
    s3_db.drop_table("t")
    with pytest.raises(riffledb.errors.TableNotFoundError, match="was dropped"):
        table.add(data(1, start=10))
    assert s3_db.table_names() == []


# -- permutations and pickling ---------------------------------------------------------


def test_permutation_reads_the_same_rows_as_on_disk(s3_db, tmp_path):
    local = riffledb.connect(tmp_path).create_table("t", data())
    remote = s3_db.create_table("t", data())
    splits = {}
    for name, table in (("local", local), ("s3", remote)):
        perm = (
            permutation_builder(table)
            .split_random(ratios=[0.8, 0.2], seed=1, split_names=["train", "test"])
            .shuffle(seed=2)
            .execute()
        )
        splits[name] = Permutations(table, perm)["train"]
    assert len(splits["s3"]) == 80
    assert all_rows(splits["s3"]) == all_rows(splits["local"])
    assert splits["s3"].take_offsets([0, 79]) == splits["local"].take_offsets([0, 79])


def test_pickled_table_reopens_in_a_spawn_worker(s3_db, s3, uri):
    table = s3_db.create_table("t", data(10))
    table.add(data(5, start=10))
    state = table.__getstate__()
    assert state["uri"] == uri
    assert state["storage_options"] == s3.storage_options()
    blob = pickle.dumps(table)
    rows, version, pid = run_in_child(
        read_pickled_table, blob, what="reading a pickled s3:// table", timeout=60
    )
    assert pid != os.getpid()
    assert version == 2
    assert rows == table.to_arrow().to_pylist()


def test_pickled_permutation_reads_in_a_spawn_worker(s3_db):
    table = s3_db.create_table("t", data())
    perm = (
        permutation_builder(table)
        .split_random(ratios=[0.8, 0.2], seed=1, split_names=["train", "test"])
        .shuffle(seed=2)
        .execute()
    )
    train = Permutations(table, perm)["train"].with_skip(3).with_take(50)
    n, rows, pid = run_in_child(
        read_unpickled,
        pickle.dumps(train),
        what="reading a pickled permutation of an s3:// table",
        timeout=60,
    )
    assert (n, pid != os.getpid()) == (50, True)
    assert rows == all_rows(train)


# -- concurrent writers ----------------------------------------------------------------

WRITERS = 4


def test_processes_appending_at_once_lose_no_commit(s3_db, s3, uri):
    import multiprocessing as mp

    table = s3_db.create_table("t", pa.table({"id": pa.array([-1], pa.int64())}))
    go = mp.get_context("spawn").Event()
    writers = [
        Child(
            appender_scenarios,
            uri,
            s3.storage_options(),
            w,
            go,
            what=f"s3 writer {w}",
            timeout=120,
        )
        for w in range(WRITERS)
    ]
    go.set()
    outcomes = [w.outcome() for w in writers]
    assert [o.get("append") for o in outcomes] == [APPENDS] * WRITERS
    assert [o.exitcode for o in outcomes] == [0] * WRITERS

    table.checkout_latest()
    total = 1 + WRITERS * APPENDS
    assert table.version == total
    assert [v["version"] for v in table.list_versions()] == list(range(1, total + 1))
    ids = table.to_arrow()["id"].to_pylist()
    expected = [-1] + [1000 * (w + 1) + k for w in range(WRITERS) for k in range(APPENDS)]
    assert sorted(ids) == sorted(expected)
    # Each writer's appends are in its commit order.
    for w in range(WRITERS):
        mine = [i for i in ids if 1000 * (w + 1) <= i < 1000 * (w + 2)]
        assert mine == [1000 * (w + 1) + k for k in range(APPENDS)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_fork_children_write_through_an_inherited_table(s3_db):
    """Children forked after the parent used the table build their own S3 client (the
    parent's connection pool is never shared) and commit one after another."""
    import multiprocessing as mp

    table = s3_db.create_table("t", pa.table({"id": pa.array([1, 2, 3], pa.int64())}))
    assert table.count_rows() == 3
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    children = [
        ctx.Process(target=append_in_forked_child, args=(table, queue)) for _ in range(3)
    ]
    for child in children:
        child.start()
    results = [queue.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)
    assert [c.exitcode for c in children] == [0, 0, 0]
    assert sorted(results) == [(4, 2), (5, 3), (6, 4)]
    table.checkout_latest()
    assert sorted(table.to_arrow()["id"].to_pylist()[3:]) == sorted(
        c.pid for c in children
    )


def test_a_conflicting_put_makes_the_commit_retry(s3_db, s3, prefix):
    """Another writer's manifest lands under the name a commit is about to create, after
    the commit's checks and before its conditional PUT: the PUT fails (412), the commit
    rebases on that version and commits the next one, and the other object is intact."""
    table = s3_db.create_table("t", data(10))
    other = s3_db.open_table("t")
    other.add(data(5, start=10))  # version 2, then taken back below
    key = manifest_key(prefix, "t", 2)
    theirs = s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    s3.client.delete_object(Bucket=BUCKET, Key=key)
    table.checkout_latest()
    assert table.version == 1

    # The raw PUT, by boto3, runs when the server receives riffledb's conditional PUT.
    s3.before_conditional_put(
        key, lambda: s3.client.put_object(Bucket=BUCKET, Key=key, Body=theirs)
    )
    table.add(data(3, start=100))
    assert table.version == 3
    assert s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == theirs
    ids = table.to_arrow()["id"].to_pylist()
    assert ids == list(range(15)) + [100, 101, 102]
    assert [v["version"] for v in table.list_versions()] == [1, 2, 3]


# -- errors ----------------------------------------------------------------------------


def test_wrong_secret_is_refused_without_showing_it(s3, uri):
    wrong = "Wr0ngSecretThatMustNotLeak/xyz"
    with pytest.raises(OSError) as failure:
        db = riffledb.connect(
            uri, storage_options=s3.storage_options(aws_secret_access_key=wrong)
        )
        db.create_table("t", data(1))
    assert wrong not in str(failure.value)
    assert s3.secret_access_key not in str(failure.value)


def test_unknown_option_is_named(uri):
    with pytest.raises(InvalidError, match="Unknown storage option 'aws_secret_key'"):
        riffledb.connect(uri, storage_options={"aws_secret_key": "s3cr3t"})


def test_plain_http_needs_allow_http(s3, uri):
    options = s3.storage_options()
    del options["allow_http"]
    with pytest.raises(InvalidError, match="allow_http"):
        riffledb.connect(uri, storage_options=options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"allow_http": True},
            r"storage_options\['allow_http'\] must be a str, got bool",
        ),
        ({1: "x"}, "storage_options keys must be str, got int 1"),
        ([("region", "x")], "storage_options must be a dict of str to str, got list"),
    ],
)
def test_storage_option_types_are_checked(uri, options, message):
    with pytest.raises(RiffledbTypeError, match=message):
        riffledb.connect(uri, storage_options=options)


def test_secret_of_wrong_type_is_not_shown(uri):
    with pytest.raises(RiffledbTypeError) as failure:
        riffledb.connect(uri, storage_options={"aws_secret_access_key": b"s3cr3t-bytes"})
    assert "s3cr3t" not in str(failure.value)


@pytest.mark.parametrize(
    "bad", ["s3://", "s3://bucket//db", "s3://bucket/../db", "s3://bucket/db?region=x"]
)
def test_malformed_s3_uris(bad):
    with pytest.raises(InvalidError, match="Invalid database URI"):
        riffledb.connect(bad)


def test_fork_workers_read_while_the_parent_is_inside_the_s3_client(s3_db, s3, uri):
    """DataLoader ``fork`` workers read an s3:// permutation while a parent thread is
    reading the same table from S3 (fresh connections, fragment downloads) in a loop:
    every row is delivered exactly once and no worker hangs (each batch has a deadline).
    Each process builds its own S3 client (DESIGN decision 9), so a worker never uses a
    connection the parent was in the middle of."""
    import threading

    torch = pytest.importorskip("torch")
    from riffledb.permutation import Permutation

    table = s3_db.create_table("t", data(250))
    for k in range(1, 8):  # 8 fragments: workers open (download) them after the fork
        table.add(data(250, start=250 * k))
    rows = 8 * 250
    stop = threading.Event()
    reads: list[int] = []
    errors: list[BaseException] = []

    def read_in_a_loop():
        try:
            while not stop.is_set():
                fresh = riffledb.connect(uri, storage_options=s3.storage_options())
                reads.append(fresh.open_table("t").count_rows("id % 3 = 0"))
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    reader = threading.Thread(target=read_in_a_loop, daemon=True)
    reader.start()
    try:
        permutation = Permutation.identity(
            riffledb.connect(uri, storage_options=s3.storage_options()).open_table("t")
        ).with_format("torch")
        for _ in range(2):  # two epochs: the second forks new workers again
            loader = torch.utils.data.DataLoader(
                permutation,
                batch_size=64,
                shuffle=True,
                num_workers=2,
                multiprocessing_context="fork",
                timeout=60,
            )
            ids = [i for batch in loader for i in batch["id"].tolist()]
            assert sorted(ids) == list(range(rows))
    finally:
        stop.set()
        reader.join(timeout=60)
    assert not errors, errors[0]
    assert reads and set(reads) == {sum(1 for i in range(rows) if i % 3 == 0)}


def test_optimize_and_cleanup_on_s3(s3_db, s3, prefix):
    """Maintenance on object storage: optimize merges the small fragments and drops the
    deleted rows without moving the row offsets' values; cleanup then removes the old
    versions and exactly the objects only they referenced."""
    import datetime

    table = s3_db.create_table("t", data(20))
    for k in range(1, 5):
        table.add(data(20, start=20 * k))
    table.delete("id % 10 = 0")
    expected = [i for i in range(100) if i % 10 != 0]
    assert table.to_arrow()["id"].to_pylist() == expected
    # Files only: deleting an object makes arrow::fs leave a "data/" marker object, so
    # that the directory still exists.
    data_keys = lambda: [  # noqa: E731
        k for k in s3.keys(f"{prefix}/t.riffle/data/") if not k.endswith("/")
    ]
    before = data_keys()
    assert len(before) == 5

    stats = table.optimize()
    assert (stats.compaction.fragments_removed, stats.compaction.fragments_added) == (
        5,
        1,
    )
    assert table.to_arrow()["id"].to_pylist() == expected
    assert len(data_keys()) == 6  # the old files stay until a cleanup

    removed = table.cleanup_old_versions(
        older_than=datetime.timedelta(0), delete_unverified=True
    )
    # Versions 1 (create), 2..5 (adds) and 6 (delete) go; 7 (the optimize) stays. So do
    # the 5 data files and the 5 deletion files only they referenced.
    assert (removed.old_versions, removed.files_removed) == (6, 10)
    assert [v["version"] for v in table.list_versions()] == [7]
    after = data_keys()
    assert len(after) == 1 and after[0] not in before
    fresh = riffledb.connect(
        f"s3://{BUCKET}/{prefix}", storage_options=s3.storage_options()
    )
    assert fresh.open_table("t").to_arrow()["id"].to_pylist() == expected


# -- serving an s3:// database (riffledb serve) -----------------------------------------


def remote_table(server, name: str):
    db = riffledb.connect("db://s3", api_key="", host_override=server.url)
    return db.open_table(name)


def test_serving_s3_looks_for_new_versions_once_an_interval(
    s3_db, s3, s3_env, uri, prefix
):
    """A take through `riffledb serve s3://...` used to ask the bucket for the newest
    version first: two HEADs and a LIST per take. Between version checks (here 10
    minutes) takes send the bucket nothing about versions; another writer's append is not
    seen yet; an append through the server is, at once, with the other's."""
    from harness.remote_server import RiffledbServer

    s3_db.create_table("t", data(10))
    server = RiffledbServer(uri, "--version-check-interval-ms", "600000")
    try:
        table = remote_table(server, "t")
        assert table.take_offsets([0]).to_arrow()["id"].to_pylist() == [0]
        mark = len(s3.requests)
        for i in range(20):
            got = table.take_offsets([i % 10, 9 - i % 10]).to_arrow()
            assert got["id"].to_pylist() == [i % 10, 9 - i % 10]
        assert [r for r in requests_since(s3, mark, prefix) if "_versions" in r[1]] == []
        s3_db.open_table("t").add(data(5, start=10))  # another writer
        assert table.count_rows() == 10
        table.add(data(5, start=15))  # through the server
        assert table.count_rows() == 20
        assert sorted(table.to_arrow()["id"].to_pylist()) == list(range(20))
    finally:
        assert server.stop() == 0


def test_serving_s3_with_checks_at_every_request_sees_other_writers_at_once(
    s3_db, s3, s3_env, uri, prefix
):
    from harness.remote_server import RiffledbServer

    s3_db.create_table("t", data(10))
    server = RiffledbServer(uri, "--version-check-interval-ms", "0")
    try:
        table = remote_table(server, "t")
        assert table.count_rows() == 10
        mark = len(s3.requests)
        assert table.take_offsets([3]).to_arrow()["id"].to_pylist() == [3]
        asked = [r for r in requests_since(s3, mark, prefix) if "_versions" in r[1]]
        assert asked, "a check at every request asks the bucket"
        s3_db.open_table("t").add(data(5, start=10))
        assert table.count_rows() == 15
        assert table.take_offsets([12]).to_arrow()["id"].to_pylist() == [12]
    finally:
        assert server.stop() == 0


def test_the_version_check_interval_defaults_by_where_the_database_is(s3_db, tmp_path):
    """1 s on object storage (a check is several requests), every request (0) for a
    directory, where it is two stats."""
    from riffledb import _riffledb
    from riffledb.db import native_database

    for db, expected in ((s3_db, 1000), (riffledb.connect(str(tmp_path / "d")), 0)):
        server = _riffledb.Server.start(native_database(db), "127.0.0.1", 0, "", 1, 1024)
        try:
            assert server.version_check_interval_ms == expected
        finally:
            server.stop()
    with pytest.raises(ValueError, match="Invalid version_check_interval_ms -2"):
        _riffledb.Server.start(
            native_database(s3_db),
            "127.0.0.1",
            0,
            "",
            1,
            1024,
            version_check_interval_ms=-2,
        )
