"""The build's own scripts: cmake/ccache-launcher.sh, every C++ compile's launcher when
ccache is installed (CMakeLists.txt)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

LAUNCHER = Path(__file__).resolve().parents[1] / "cmake" / "ccache-launcher.sh"
CCACHE = shutil.which("ccache")
CXX = shutil.which("c++")
GXX = shutil.which("g++")

pytestmark = pytest.mark.skipif(
    not (CCACHE and CXX and GXX), reason="needs ccache, c++ and g++ (scripts/setup.sh)"
)


def compile_through(tmp_path: Path, ccache: str, compiler: str, name: str) -> Path:
    source = tmp_path / "f.cc"
    source.write_text("int twice(int x) { return 2 * x; }\n")
    out = tmp_path / f"{name}.o"
    done = subprocess.run(
        [
            str(LAUNCHER),
            str(tmp_path / "cache"),
            ccache,
            compiler,
            "-O1",
            "-c",
            str(source),
            "-o",
            str(out),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("CCACHE_")},
    )
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0
    return out


def stats(tmp_path: Path) -> dict[str, int]:
    text = subprocess.run(
        [CCACHE, "--print-stats"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "CCACHE_DIR": str(tmp_path / "cache")},
    ).stdout
    return {k: int(v) for k, v in (line.split("\t") for line in text.splitlines())}


def test_c_plus_plus_and_g_plus_plus_share_the_cache(tmp_path):
    # CMake names the compiler c++, scikit-build-core (the wheel's build) g++: the same
    # program, one cache entry.
    compile_through(tmp_path, CCACHE, CXX, "first")
    compile_through(tmp_path, CCACHE, GXX, "second")
    counts = stats(tmp_path)
    assert (counts["direct_cache_miss"], counts["direct_cache_hit"]) == (1, 1)
    first, second = (
        (tmp_path / "first.o").read_bytes(),
        (tmp_path / "second.o").read_bytes(),
    )
    assert first == second


def test_a_compiler_that_links_to_ccache_still_compiles(tmp_path):
    # /usr/lib/ccache/c++ resolves to ccache, which refuses to run ccache as a compiler:
    # the launcher keeps the link's name, and ccache finds the real c++ behind it.
    links = tmp_path / "wrappers"
    links.mkdir()
    (links / "c++").symlink_to(CCACHE)
    compile_through(tmp_path, CCACHE, str(links / "c++"), "wrapped")


def test_without_ccache_the_compiler_runs_alone(tmp_path):
    # ccache removed after the build was configured: the compile still happens.
    compile_through(tmp_path, str(tmp_path / "no-ccache"), CXX, "plain")
    assert not (tmp_path / "cache").exists()
