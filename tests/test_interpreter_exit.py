"""Interpreter exit after a typical session: nanobind reports no leaked objects.

nanobind checks at exit that every instance, type and function it created was freed, and
prints "nanobind: leaked N instances!" otherwise: the sign of a native object kept alive
by a module-level cache or an uncollected reference cycle. The session runs in a child
interpreter so that its exit, not pytest's, is what is checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SESSION = textwrap.dedent(
    """
    import sys

    import pyarrow as pa
    import torch

    import riffledb
    from riffledb.permutation import Permutation, Permutations, permutation_builder

    root = sys.argv[1]
    data = pa.table({"id": list(range(100)), "x": [i * 0.5 for i in range(100)]})
    for uri in (root, "memory://"):
        db = riffledb.connect(uri)
        table = db.create_table("t", data, mode="overwrite")
        table.add(pa.table({"id": [100], "x": [50.0]}))
        assert table.take_offsets([100, 0]).to_arrow()["id"].to_pylist() == [100, 0]
        assert table.search().where("id < 3").to_arrow().num_rows == 3
        splits = (
            permutation_builder(table)
            .split_random(ratios=[0.8, 0.2], seed=1, split_names=["train", "test"])
            .shuffle(seed=2)
            .execute()
        )
        train = Permutations(table, splits)["train"]
        assert len(train) == 81
        assert len(train.take_offsets([0, 5])) == 2
        loader = torch.utils.data.DataLoader(
            train.with_format("torch"), batch_size=16, num_workers=0
        )
        assert sum(len(batch["id"]) for batch in loader) == 81
        identity = Permutation.identity(table).with_format("arrow")
        assert sum(batch.num_rows for batch in identity.iter(32)) == 101
    print("session done")
    """
)


@pytest.mark.slow
def test_typical_session_leaks_nothing_at_exit(tmp_path: Path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "python"), env.get("PYTHONPATH", "")]
    )
    result = subprocess.run(
        [sys.executable, "-c", SESSION, str(tmp_path / "db")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "session done"
    assert "leaked" not in result.stderr, result.stderr
