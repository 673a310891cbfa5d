// Registration functions, one per binding file.
#pragma once

#include <nanobind/nanobind.h>

namespace riffledb::python {

void RegisterErrors(nanobind::module_& m);
void RegisterArrow(nanobind::module_& m);
void RegisterDatabase(nanobind::module_& m);
void RegisterTable(nanobind::module_& m);
void RegisterPermutationBuilder(nanobind::module_& m);
void RegisterPermutationReader(nanobind::module_& m);

}  // namespace riffledb::python
