// The extension module: registers each area's bindings and nothing else.
#include <nanobind/nanobind.h>

#include "bindings.h"

NB_MODULE(_riffledb, m) {
  m.doc() = "riffledb native core (C++ on Apache Arrow)";
  riffledb::python::RegisterErrors(m);
  riffledb::python::RegisterArrow(m);
  riffledb::python::RegisterTable(m);
  riffledb::python::RegisterDatabase(m);
  riffledb::python::RegisterPermutationBuilder(m);
  riffledb::python::RegisterPermutationReader(m);
  riffledb::python::RegisterLoader(m);
  riffledb::python::RegisterRemote(m);
  riffledb::python::RegisterRemoteClient(m);
}
