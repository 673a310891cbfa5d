"""Format 2 (issue #10, items 3 and 8): checksums on every file, found by reads and by
``Table.verify()``; metadata that grows linearly with the versions."""

import pathlib

import pyarrow as pa
import pytest

import riffledb
from riffledb import cli
from riffledb.errors import CorruptionError


def flip_bit(path: pathlib.Path, offset: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


@pytest.fixture
def table(tmp_path):
    db = riffledb.connect(tmp_path)
    return db.create_table("t", pa.table({"id": pa.array(range(1000), pa.int64())}))


def test_verify_passes_on_intact_files(table):
    table.add(pa.table({"id": pa.array([1000], pa.int64())}))
    table.delete("id < 5")
    table.verify()
    table.verify(version=1)


def test_verify_names_a_flipped_bit_in_a_data_file(tmp_path, table):
    (fragment,) = (tmp_path / "t.riffle" / "data").glob("*.arrow")
    flip_bit(fragment, fragment.stat().st_size // 2, 2)
    fresh = riffledb.connect(tmp_path).open_table("t")
    with pytest.raises(CorruptionError) as e:
        fresh.verify()
    assert str(fragment) in str(e.value)
    assert "Version 1 of table 't' is damaged" in str(e.value)
    assert "checksum mismatch" in str(e.value)
    code = cli.main(["verify", str(tmp_path)])
    assert code == cli.EXIT_FAILED


def test_reads_find_a_damaged_deletion_file(tmp_path, table):
    table.delete("id < 10")
    (deletion,) = (tmp_path / "t.riffle" / "_deletions").glob("*.arrow")
    flip_bit(deletion, deletion.stat().st_size - 30)
    fresh = riffledb.connect(tmp_path).open_table("t")
    with pytest.raises(CorruptionError, match="checksum mismatch") as e:
        fresh.count_rows()
    assert str(deletion) in str(e.value)


def test_reads_find_a_flipped_bit_in_a_manifest(tmp_path, table):
    table.add(pa.table({"id": pa.array([1000], pa.int64())}))
    manifest = tmp_path / "t.riffle" / "_versions" / f"{2:020d}.json"
    flip_bit(manifest, 100, 1)
    fresh = riffledb.connect(tmp_path).open_table("t")
    with pytest.raises(CorruptionError, match="checksum mismatch"):
        fresh.count_rows()
    versions = fresh.list_versions()
    assert [v["version"] for v in versions] == [1, 2]
    assert "checksum mismatch" in versions[1]["damaged"]
    assert fresh.restore(1) == 3
    assert fresh.count_rows() == 1000


def test_many_versions_keep_metadata_linear_and_list_from_history(tmp_path, table):
    for i in range(150):
        table.add(pa.table({"id": pa.array([1000 + i], pa.int64())}))
    root = tmp_path / "t.riffle"
    manifests = list((root / "_versions").glob("*.json"))
    assert len(manifests) == 151
    assert max(m.stat().st_size for m in manifests) < 4096
    segments = list((root / "_segments").glob("*.json"))
    assert segments  # lists longer than 8 entries live in segment files
    metadata = sum(p.stat().st_size for p in manifests + segments)
    assert metadata < 151 * 2500, metadata
    fresh = riffledb.connect(tmp_path).open_table("t")
    versions = fresh.list_versions()
    assert [v["version"] for v in versions] == list(range(1, 152))
    assert versions[0]["metadata"] == {"operation": "create"}
    assert all(v["metadata"] == {"operation": "append"} for v in versions[1:])
    assert fresh.count_rows() == 1150
    fresh.checkout(76)
    assert fresh.to_arrow()["id"].to_pylist() == list(range(1000)) + list(
        range(1000, 1075)
    )
    fresh.verify()


def test_a_large_version_opens_its_files_when_read(tmp_path):
    """Above 64 fragments, open_table maps no data file: a missing one fails only the
    reads of its rows (naming it and the version), and verify still finds it."""
    db = riffledb.connect(tmp_path)
    t = db.create_table("t", pa.table({"id": pa.array([0, 1], pa.int64())}))
    for i in range(1, 70):
        t.add(pa.table({"id": pa.array([2 * i, 2 * i + 1], pa.int64())}))
    root = tmp_path / "t.riffle"
    fresh = riffledb.connect(tmp_path).open_table("t")
    assert fresh.to_arrow()["id"].to_pylist() == list(range(140))

    # Remove the file holding ids 60 and 61, then open the table again.
    def ids_in(path):
        return pa.ipc.open_file(pa.memory_map(str(path))).read_all()["id"].to_pylist()

    (missing,) = [p for p in (root / "data").glob("*.arrow") if ids_in(p) == [60, 61]]
    missing.unlink()
    fresh = riffledb.connect(tmp_path).open_table("t")
    assert fresh.count_rows() == 140
    assert fresh.take_offsets([0, 139]).to_arrow()["id"].to_pylist() == [0, 139]
    with pytest.raises(OSError) as e:
        fresh.take_offsets([61]).to_arrow()
    assert str(missing) in str(e.value)
    assert "Reading version 70 of" in str(e.value)
    assert fresh.take_offsets([59, 62]).to_arrow()["id"].to_pylist() == [59, 62]
    with pytest.raises(CorruptionError, match="Version 70 of table 't' is damaged"):
        fresh.verify()
