#!/bin/sh
# CMAKE_CXX_COMPILER_LAUNCHER (CMakeLists.txt): `ccache-launcher.sh CACHE_DIR CCACHE
# COMPILER ARGS...` compiles through ccache, in CACHE_DIR, with the compiler named by its
# real path: ccache hashes the name it is given, and CMake picks `c++` where
# scikit-build-core (the wheel's build) says `g++`, the same program. Depend mode: a miss
# costs no preprocessor run, only the compile (its -MD file lists the headers).
# A compiler that is itself a wrapper's link (/usr/lib/ccache/c++, distcc) keeps its name:
# ccache refuses to run ccache. Without ccache (removed since the configure), the compiler
# runs alone.
cache_dir=$1
ccache=$2
compiler=$(readlink -f "$3" 2>/dev/null) || compiler=$3
case ${compiler##*/} in
  ccache* | sccache* | distcc* | icecc*) compiler=$3 ;;
esac
shift 3
if [ ! -x "$ccache" ]; then
  exec "$compiler" "$@"
fi
CCACHE_DIR=$cache_dir CCACHE_NOHASHDIR=1 CCACHE_DEPEND=1 exec "$ccache" "$compiler" "$@"
