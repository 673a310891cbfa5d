// Bindings for the permutation reader (issue: permutations).
#include <nanobind/nanobind.h>

#include "bindings.h"

namespace nb = nanobind;

namespace riffledb::python {

void RegisterPermutationReader(nb::module_& m) {}

}  // namespace riffledb::python
