"""Smoke test of an installed riffledb wheel (`make test-wheel` runs it).

Run it with the interpreter of a virtualenv the wheel was installed into, in isolated mode
(`python -I`) and from outside the source tree, so that nothing but the installed package
can be imported. It checks what the wheel ships (the extension, its stubs, py.typed, the
version) and one short session: create a table, add rows, take, a permutation built with a
random split and a shuffle, and one DataLoader batch.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tempfile
from pathlib import Path


def check_installed_package() -> None:
    import riffledb
    from riffledb import _riffledb

    package_dir = Path(riffledb.__file__).resolve().parent
    site_dirs = [Path(p).resolve() for p in sys.path if p.endswith("site-packages")]
    assert package_dir.parent in site_dirs, (
        f"riffledb was imported from {package_dir}, not from an installed site-packages "
        f"({site_dirs})"
    )
    assert Path(_riffledb.__file__).resolve().parent == package_dir, _riffledb.__file__
    for name in ("_riffledb.pyi", "py.typed"):
        assert (package_dir / name).is_file(), f"the wheel has no riffledb/{name}"
    assert "class Database" in (package_dir / "_riffledb.pyi").read_text(), (
        "riffledb/_riffledb.pyi does not describe the extension"
    )
    installed = importlib.metadata.version("riffledb")
    assert riffledb.__version__ == installed, (riffledb.__version__, installed)


def check_session(root: Path) -> None:
    import pyarrow as pa
    import torch

    import riffledb
    from riffledb.permutation import Permutations, permutation_builder

    db = riffledb.connect(root / "db")
    rows = pa.table({"id": list(range(8)), "x": [i * 0.5 for i in range(8)]})
    table = db.create_table("t", rows)
    table.add(pa.table({"id": [8, 9], "x": [4.0, 4.5]}))
    assert table.version == 2 and table.count_rows() == 10

    # A fresh connection reads what was committed on disk.
    reopened = riffledb.connect(root / "db").open_table("t")
    assert reopened.take_offsets([9, 0, 9]).to_arrow().to_pydict() == {
        "id": [9, 0, 9],
        "x": [4.5, 0.0, 4.5],
    }

    splits = (
        permutation_builder(reopened)
        .split_random(ratios=[0.8, 0.2], seed=7, split_names=["train", "test"])
        .shuffle(seed=11)
        .execute()
    )
    perms = Permutations(reopened, splits)
    train, test = perms["train"], perms["test"]
    assert (len(train), len(test)) == (8, 2), (len(train), len(test))
    train_ids = [row["id"] for row in train.take_offsets(list(range(8)))]
    test_ids = [row["id"] for row in test.take_offsets([0, 1])]
    assert sorted(train_ids + test_ids) == list(range(10)), (train_ids, test_ids)

    loader = torch.utils.data.DataLoader(
        train.with_format("torch"), batch_size=4, shuffle=False, num_workers=0
    )
    batch = next(iter(loader))
    assert batch["id"].tolist() == train_ids[:4], (batch["id"], train_ids)
    assert batch["x"].tolist() == [i * 0.5 for i in train_ids[:4]], batch["x"]


def check_console_script(db_dir: Path) -> None:
    """The wheel installs the `riffledb` command beside the interpreter."""
    command = Path(sys.executable).parent / "riffledb"
    assert command.exists(), f"no console script at {command}"
    result = subprocess.run(
        [str(command), "verify", str(db_dir)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert "no damage found" in result.stdout, result.stdout


def main() -> None:
    check_installed_package()
    with tempfile.TemporaryDirectory(prefix="riffledb-wheel-smoke-") as tmp:
        check_session(Path(tmp))
        check_console_script(Path(tmp) / "db")
    print("wheel smoke test: 1 passed, 0 failed")


if __name__ == "__main__":
    main()
