// Bindings for riffledb::PermutationBuilder (issue: permutations).
#include <arrow/array.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "arrow_bridge.h"
#include "bindings.h"
#include "errors.h"
#include "riffledb/permutation/builder.h"

namespace nb = nanobind;

namespace riffledb::python {

namespace {

using Names = std::optional<std::vector<std::string>>;

// Exactly one of the three size forms, as LanceDB checks at call time.
SplitSizes SizesOf(std::optional<std::vector<double>> ratios,
                   std::optional<std::vector<uint64_t>> counts,
                   std::optional<uint64_t> fixed) {
  const int given = ratios.has_value() + counts.has_value() + fixed.has_value();
  if (given != 1) {
    throw nb::value_error(
        "Exactly one of 'ratios', 'counts', or 'fixed' must be provided");
  }
  if (ratios) return SplitSizes::Ratios(std::move(*ratios));
  if (counts) return SplitSizes::Counts(std::move(*counts));
  return SplitSizes::Fixed(*fixed);
}

}  // namespace

void RegisterPermutationBuilder(nb::module_& m) {
  // Configuration mutates the builder; execute() may be called more than once (the Python
  // wrapper enforces LanceDB's consume-once rule).
  nb::class_<PermutationBuilder>(m, "PermutationBuilder")
      .def(
          "__init__",
          [](PermutationBuilder* self, std::shared_ptr<Snapshot> snapshot) {
            new (self) PermutationBuilder(std::move(snapshot));
          },
          nb::arg("snapshot"))
      .def(
          "filter",
          [](PermutationBuilder& b, std::string sql) { b.Filter(std::move(sql)); },
          nb::arg("filter"))
      .def(
          "split_random",
          [](PermutationBuilder& b, std::optional<std::vector<double>> ratios,
             std::optional<std::vector<uint64_t>> counts, std::optional<uint64_t> fixed,
             std::optional<uint64_t> seed, std::optional<uint64_t> clump_size,
             Names names) {
            b.SplitRandom(SizesOf(std::move(ratios), std::move(counts), fixed), seed,
                          clump_size, std::move(names));
          },
          nb::kw_only(), nb::arg("ratios").none() = nb::none(),
          nb::arg("counts").none() = nb::none(), nb::arg("fixed").none() = nb::none(),
          nb::arg("seed").none() = nb::none(), nb::arg("clump_size").none() = nb::none(),
          nb::arg("split_names").none() = nb::none())
      .def(
          "split_hash",
          [](PermutationBuilder& b, std::vector<std::string> columns,
             std::vector<uint64_t> weights, std::optional<uint64_t> discard,
             Names names) {
            b.SplitHash(std::move(columns), std::move(weights), discard.value_or(0),
                        std::move(names));
          },
          nb::arg("columns"), nb::arg("split_weights"), nb::kw_only(),
          nb::arg("discard_weight").none() = nb::none(),
          nb::arg("split_names").none() = nb::none())
      .def(
          "split_sequential",
          [](PermutationBuilder& b, std::optional<std::vector<double>> ratios,
             std::optional<std::vector<uint64_t>> counts, std::optional<uint64_t> fixed,
             Names names) {
            b.SplitSequential(SizesOf(std::move(ratios), std::move(counts), fixed),
                              std::move(names));
          },
          nb::kw_only(), nb::arg("ratios").none() = nb::none(),
          nb::arg("counts").none() = nb::none(), nb::arg("fixed").none() = nb::none(),
          nb::arg("split_names").none() = nb::none())
      .def(
          "split_calculated",
          [](PermutationBuilder& b, std::string calculation, Names names) {
            b.SplitCalculated(std::move(calculation), std::move(names));
          },
          nb::arg("calculation"), nb::arg("split_names").none() = nb::none())
      .def(
          "shuffle",
          [](PermutationBuilder& b, std::optional<uint64_t> seed,
             std::optional<uint64_t> clump_size) { b.Shuffle(seed, clump_size); },
          nb::kw_only(), nb::arg("seed").none() = nb::none(),
          nb::arg("clump_size").none() = nb::none())
      .def("execute",
           [](const PermutationBuilder& b) {
             return std::const_pointer_cast<PermutationTable>(
                 ValueOrThrow(WithoutGil([&] { return b.Execute(); })));
           })
      .def("recipe", &PermutationBuilder::Recipe);
}

}  // namespace riffledb::python
