"""A fragment that shrinks under a reader (issue #10, item 5: a `cp` over a table
truncates the files a reader has mapped) raises an error naming the file; the process
lives. Each case runs in a child process, so that a regression (SIGBUS) fails the test
instead of killing the test run."""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import faulthandler, glob, os, sys
    import pyarrow as pa
    import riffledb
    from riffledb.errors import RiffledbIOError

    mode = sys.argv[2]
    if mode == "faulthandler-first":
        faulthandler.enable()
    db = riffledb.connect(sys.argv[1])
    t = db.create_table("t", pa.table({"id": pa.array(range(200_000), pa.int64())}))
    assert t.take_offsets([199_999]).to_list() == [{"id": 199_999}]
    if mode == "faulthandler-after":
        faulthandler.enable()  # installed on top of riffledb's handler
        t2 = db.create_table("t2", pa.table({"x": [1]}))  # maps a file: back on top
        assert len(t2.to_arrow()) == 1
    (fragment,) = glob.glob(os.path.join(sys.argv[1], "t.riffle", "data", "*.arrow"))
    os.truncate(fragment, 4096)
    for offsets in ([199_999], [0]):
        try:
            t.take_offsets(offsets).to_arrow()
        except RiffledbIOError as e:
            assert fragment in str(e), str(e)
            assert "shrank while mapped" in str(e), str(e)
        else:
            raise AssertionError("no error for a truncated fragment")
    print("survived")
    """
)


@pytest.mark.parametrize("mode", ["plain", "faulthandler-first", "faulthandler-after"])
def test_truncated_fragment_is_an_error_not_a_crash(tmp_path, mode):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "db"), mode],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "survived"
    assert "Bus error" not in result.stderr
