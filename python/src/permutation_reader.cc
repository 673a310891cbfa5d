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

// How a read hands its batch to Python.
enum class Export {
  kCapsules,  // (schema capsule, array capsule): self-describing
  kArray,     // (address, owner) of the array only: the caller has the schema
  kNumpy,     // a list of NumPy arrays, or kArray's tuple if a column has no such form
};

nb::object ExportAs(const std::shared_ptr<arrow::RecordBatch>& batch, Export how) {
  switch (how) {
    case Export::kCapsules:
      return ExportBatch(batch);
    case Export::kNumpy: {
      nb::object columns = ExportNumpyColumns(batch);
      if (!columns.is_none()) return columns;
      return ExportBatchArray(batch);
    }
    case Export::kArray:
      break;
  }
  return ExportBatchArray(batch);
}

nb::object Take(const PermutationReader& reader, std::span<const int64_t> offsets,
                const BoundSelection& selection, Export how) {
  auto batch =
      ValueOrThrow(WithoutGil([&] { return reader.TakeOffsets(offsets, selection); }));
  return ExportAs(batch, how);
}

nb::object TakeRange(const PermutationReader& reader, int64_t start, int64_t length,
                     const BoundSelection& selection, Export how) {
  auto batch = ValueOrThrow(
      WithoutGil([&] { return reader.TakeRange(start, length, selection); }));
  return ExportAs(batch, how);
}

// Registers `name` taking offsets as an int64 NumPy array or a sequence of ints.
template <Export how, typename Class>
void DefTakeOffsets(Class& cls, const char* name) {
  cls.def(
         name,
         [](const PermutationReader& r, Int64Array offsets,
            const BoundSelection& selection) {
           return Take(r, {offsets.data(), offsets.shape(0)}, selection, how);
         },
         nb::arg("offsets"), nb::arg("selection"))
      .def(
          name,
          [](const PermutationReader& r, const std::vector<int64_t>& offsets,
             const BoundSelection& selection) {
            return Take(r, offsets, selection, how);
          },
          nb::arg("offsets"), nb::arg("selection"));
}

template <Export how, typename Class>
void DefTakeRange(Class& cls, const char* name) {
  cls.def(
      name,
      [](const PermutationReader& r, int64_t start, int64_t length,
         const BoundSelection& selection) {
        return TakeRange(r, start, length, selection, how);
      },
      nb::arg("start"), nb::arg("length"), nb::arg("selection"));
}

}  // namespace

void RegisterPermutationReader(nb::module_& m) {
  // A selection resolved against a base schema; reuse it across reads.
  nb::class_<BoundSelection>(m, "PermutationSelection")
      .def("schema",
           [](const BoundSelection& s) { return ExportSchema(s.output_schema()); });

  // take_offsets / take_range return (schema capsule, array capsule); the *_array forms
  // return (address, owner) of the array only, for pa.RecordBatch._import_from_c(address,
  // schema) against the selection's schema imported once; the *_numpy forms return a list
  // of NumPy arrays, one per column (see ExportNumpyColumns), or the *_array tuple when a
  // column has no NumPy form.
  nb::class_<PermutationReader> reader(m, "PermutationReader");
  DefTakeOffsets<Export::kCapsules>(reader, "take_offsets");
  DefTakeOffsets<Export::kArray>(reader, "take_offsets_array");
  DefTakeOffsets<Export::kNumpy>(reader, "take_offsets_numpy");
  DefTakeRange<Export::kCapsules>(reader, "take_range");
  DefTakeRange<Export::kArray>(reader, "take_range_array");
  DefTakeRange<Export::kNumpy>(reader, "take_range_numpy");
  reader
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
          "read",
          [](const PermutationReader& r, std::shared_ptr<BoundSelection> selection,
             int64_t batch_size) {
            auto stream = ValueOrThrow(r.Read(std::move(selection), batch_size));
            return ExportStream(std::move(stream));
          },
          nb::arg("selection"), nb::arg("batch_size"));
}

}  // namespace riffledb::python
