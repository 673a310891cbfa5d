// Bindings for the permutation builder (issue: permutations).
#include <nanobind/nanobind.h>

#include "bindings.h"

namespace nb = nanobind;

namespace riffledb::python {

void RegisterPermutationBuilder(nb::module_& m) {}

}  // namespace riffledb::python
