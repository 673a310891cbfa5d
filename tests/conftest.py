"""Shared fixtures for the riffledb Python suite.

Only the fixtures every module needs live here; module-specific helpers stay in their
module so each test file reads on its own.
"""

import atexit
import os
import shutil
import tempfile

import pytest

import riffledb

# s3:// tables cache what they read under RIFFLEDB_CACHE_DIR (else ~/.cache/riffledb):
# the suite's own directory, inherited by every process it starts, removed at exit.
_CACHE_DIR = tempfile.mkdtemp(prefix="riffledb-test-cache-")
os.environ["RIFFLEDB_CACHE_DIR"] = _CACHE_DIR
_SUITE_PID = os.getpid()
atexit.register(
    lambda: os.getpid() == _SUITE_PID and shutil.rmtree(_CACHE_DIR, ignore_errors=True)
)


@pytest.fixture(scope="session", autouse=True)
def _riffledb_imports():
    """Fails every test at once, with one clear message, if the package is half-built."""
    import riffledb.db
    import riffledb.table
    import riffledb.util

    required = [
        (riffledb, "connect"),
        (riffledb.db, "DBConnection"),
        (riffledb.table, "Table"),
        (riffledb.util, "tbl_to_tensor"),
    ]
    missing = [f"{m.__name__}.{a}" for m, a in required if not hasattr(m, a)]
    if missing:
        pytest.fail(f"riffledb is importable but lacks {missing}", pytrace=False)


@pytest.fixture
def tmp_db(tmp_path):
    """A database in a fresh directory (the embedded default)."""
    return riffledb.connect(tmp_path)


@pytest.fixture
def mem_db():
    """A fresh process-local in-memory database."""
    return riffledb.connect("memory://")


@pytest.fixture(params=["tmp", "mem"])
def db(request):
    """Each test that asks for it runs twice: on a directory and a memory database."""
    return request.getfixturevalue(f"{request.param}_db")
