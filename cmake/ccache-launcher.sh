#!/bin/sh
# CMAKE_CXX_COMPILER_LAUNCHER (CMakeLists.txt): `ccache-launcher.sh CACHE_DIR CCACHE
# COMPILER ARGS...` compiles through ccache, in CACHE_DIR, with the compiler named by its
# real path: ccache hashes the name it is given, and CMake picks `c++` where
# scikit-build-core (the wheel's build) says `g++`, the same program. Depend mode: a miss
# costs no preprocessor run, only the compile (its -MD file lists the headers).
cache_dir=$1
ccache=$2
compiler=$(readlink -f "$3") || compiler=$3
shift 3
CCACHE_DIR=$cache_dir CCACHE_NOHASHDIR=1 CCACHE_DEPEND=1 exec "$ccache" "$compiler" "$@"
