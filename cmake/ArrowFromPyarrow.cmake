# Arrow C++ from the pyarrow wheel (DESIGN.md, decision 1).
#
# Defines the imported targets Arrow::arrow, Arrow::compute and Arrow::s3 (arrow::fs's S3
# filesystem with the AWS SDK linked in, a library of its own in the wheel) from the headers
# and shared libraries that pyarrow ships, and RIFFLEDB_PYARROW_LIBDIR. The wheel has no
# unversioned `libarrow.so`, so the versioned file named by pyarrow's so_version is used.

set(RIFFLEDB_PYARROW_MAJOR 26 CACHE STRING "The pyarrow major version riffledb builds against")

execute_process(
  COMMAND "${Python_EXECUTABLE}" -c
    "import pyarrow as pa; print(pa.get_include()); print(pa.get_library_dirs()[0]); print(pa.cpp_build_info.so_version); print(pa.cpp_build_info.version_info.major)"
  OUTPUT_VARIABLE _pa_out
  RESULT_VARIABLE _pa_rc
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _pa_rc EQUAL 0)
  message(FATAL_ERROR "pyarrow is not importable by ${Python_EXECUTABLE}: install pyarrow==${RIFFLEDB_PYARROW_MAJOR}.*")
endif()
string(REPLACE "\n" ";" _pa_out "${_pa_out}")
list(GET _pa_out 0 RIFFLEDB_PYARROW_INCLUDE)
list(GET _pa_out 1 RIFFLEDB_PYARROW_LIBDIR)
list(GET _pa_out 2 _pa_so)
list(GET _pa_out 3 _pa_major)
if(NOT _pa_major EQUAL RIFFLEDB_PYARROW_MAJOR)
  message(FATAL_ERROR "pyarrow ${_pa_major} found, riffledb needs pyarrow ${RIFFLEDB_PYARROW_MAJOR}")
endif()
message(STATUS "Arrow C++ from pyarrow ${_pa_major}: ${RIFFLEDB_PYARROW_LIBDIR}")

foreach(_lib arrow arrow_compute arrow_s3)
  set(_path "${RIFFLEDB_PYARROW_LIBDIR}/lib${_lib}.so.${_pa_so}")
  if(NOT EXISTS "${_path}")
    message(FATAL_ERROR "missing ${_path}")
  endif()
  string(REPLACE "arrow_" "" _name "${_lib}")
  add_library(Arrow::${_name} SHARED IMPORTED GLOBAL)
  set_target_properties(Arrow::${_name} PROPERTIES
    IMPORTED_LOCATION "${_path}"
    IMPORTED_NO_SONAME FALSE
    INTERFACE_INCLUDE_DIRECTORIES "${RIFFLEDB_PYARROW_INCLUDE}")
endforeach()
# Arrow's headers are third-party: keep their warnings out of ours.
set_target_properties(Arrow::arrow Arrow::compute Arrow::s3 PROPERTIES
  INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${RIFFLEDB_PYARROW_INCLUDE}")
target_link_libraries(Arrow::compute INTERFACE Arrow::arrow)
target_link_libraries(Arrow::s3 INTERFACE Arrow::arrow)
