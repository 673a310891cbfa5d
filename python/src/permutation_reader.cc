// Bindings for the permutation reader (riffledb/permutation/reader.h).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "arrow_bridge.h"
#include "bindings.h"
#include "errors.h"
#include "riffledb/permutation/reader.h"

namespace nb = nanobind;

namespace riffledb::python {

namespace {

using Int64Array = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// nanobind holds objects through non-const pointers; both classes are immutable.
template <typename T>
std::shared_ptr<T> Mutable(std::shared_ptr<const T> p) {
  return std::const_pointer_cast<T>(std::move(p));
}

nb::object Take(const PermutationReader& reader, std::span<const int64_t> offsets,
                const BoundSelection& selection) {
  auto batch =
      ValueOrThrow(WithoutGil([&] { return reader.TakeOffsets(offsets, selection); }));
  return ExportBatch(batch);
}

}  // namespace

void RegisterPermutationReader(nb::module_& m) {
  // A selection resolved against a base schema; reuse it across reads.
  nb::class_<BoundSelection>(m, "PermutationSelection")
      .def("schema",
           [](const BoundSelection& s) { return ExportSchema(s.output_schema()); });

  nb::class_<PermutationReader>(m, "PermutationReader")
      .def_static(
          "open",
          [](std::shared_ptr<Snapshot> base, std::shared_ptr<Snapshot> permutation,
             uint64_t split) {
            return Mutable(ValueOrThrow(WithoutGil([&] {
              return PermutationReader::Open(std::move(base), std::move(permutation),
                                             split);
            })));
          },
          nb::arg("base"), nb::arg("permutation").none(), nb::arg("split"))
      .def(
          "with_offset_limit",
          [](const PermutationReader& r, std::optional<int64_t> offset,
             std::optional<int64_t> limit) {
            return Mutable(ValueOrThrow(r.WithOffsetLimit(offset, limit)));
          },
          nb::arg("offset").none(), nb::arg("limit").none())
      .def_prop_ro("num_rows", &PermutationReader::count_rows)
      .def_prop_ro("available_rows", &PermutationReader::available_rows)
      .def_prop_ro("is_identity", &PermutationReader::is_identity)
      .def_prop_ro("base_version",
                   [](const PermutationReader& r) { return r.base()->version(); })
      .def("row_ids",
           [](const PermutationReader& r) {
             auto ids = ValueOrThrow(WithoutGil([&] { return r.RowIds(); }));
             auto batch = arrow::RecordBatch::Make(
                 arrow::schema({arrow::field("row_id", arrow::uint64(), false)}),
                 ids->length(), {ids});
             return ExportBatch(batch);
           })
      .def(
          "bind",
          [](const PermutationReader& r,
             std::optional<std::vector<std::pair<std::string, std::string>>> selection) {
            return Mutable(ValueOrThrow(WithoutGil(
                [&] { return BoundSelection::Make(*r.base()->schema(), selection); })));
          },
          nb::arg("selection").none())
      .def(
          "take_offsets",
          [](const PermutationReader& r, Int64Array offsets,
             const BoundSelection& selection) {
            return Take(r, {offsets.data(), offsets.shape(0)}, selection);
          },
          nb::arg("offsets"), nb::arg("selection"))
      .def(
          "take_offsets",
          [](const PermutationReader& r, const std::vector<int64_t>& offsets,
             const BoundSelection& selection) { return Take(r, offsets, selection); },
          nb::arg("offsets"), nb::arg("selection"))
      .def(
          "take_range",
          [](const PermutationReader& r, int64_t start, int64_t length,
             const BoundSelection& selection) {
            auto batch = ValueOrThrow(
                WithoutGil([&] { return r.TakeRange(start, length, selection); }));
            return ExportBatch(batch);
          },
          nb::arg("start"), nb::arg("length"), nb::arg("selection"))
      .def(
          "read",
          [](const PermutationReader& r, std::shared_ptr<BoundSelection> selection,
             int64_t batch_size) {
            auto stream = ValueOrThrow(r.Read(std::move(selection), batch_size));
            return ExportStream(std::move(stream));
          },
          nb::arg("selection"), nb::arg("batch_size"));
}

}  // namespace riffledb::python
