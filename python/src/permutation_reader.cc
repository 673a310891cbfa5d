// Bindings for permutation tables and the permutation reader
// (riffledb/permutation/permutation_table.h, reader.h).
#include <arrow/c/bridge.h>
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <span>
#include <vector>

#include "arrow_bridge.h"
#include "bindings.h"
#include "errors.h"
#include "riffledb/permutation/builder.h"
#include "riffledb/permutation/permutation_table.h"
#include "riffledb/permutation/reader.h"

namespace nb = nanobind;

namespace riffledb::python {

namespace {

using Int64Array = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using UInt64Array =
    nb::ndarray<const uint64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// nanobind holds objects through non-const pointers; these classes are immutable.
template <typename T>
std::shared_ptr<T> Mutable(std::shared_ptr<const T> p) {
  return std::const_pointer_cast<T>(std::move(p));
}

// pa.RecordBatch._import_from_c, looked up once (it lives as long as pyarrow: forever).
nb::handle ImportFromC() {
  static nb::object* fn = new nb::object(
      nb::module_::import_("pyarrow").attr("RecordBatch").attr("_import_from_c"));
  return *fn;
}

nb::object ToArrow(const Batch& b, nb::handle schema) {
  // The schema comes from Python, imported once per selection: importing it again for
  // every batch would cost more than a small take.
  ArrowArray array;
  ThrowIfError(arrow::ExportRecordBatch(*b.batch, &array, /*out_schema=*/nullptr));
  nb::object out;
  try {
    out = ImportFromC()(nb::int_(reinterpret_cast<uintptr_t>(&array)), schema);
  } catch (...) {
    if (array.release != nullptr) array.release(&array);
    throw;
  }
  return out;
}

Batch Read(const std::function<arrow::Result<std::shared_ptr<arrow::RecordBatch>>()>& f) {
  return Batch{ValueOrThrow(WithoutGil(f))};
}

}  // namespace

void RegisterPermutationReader(nb::module_& m) {
  nb::dict keys;
  keys["split_names"] = kSplitNamesMetadataKey;
  keys["base_version"] = kBaseVersionMetadataKey;
  keys["split_digests"] = kSplitDigestsMetadataKey;
  keys["recipe"] = kRecipeMetadataKey;
  m.attr("PERMUTATION_METADATA_KEYS") = keys;

  // A batch read from a permutation: `slice(offset, length)`, `to_arrow(schema)` (schema:
  // the selection's output schema as a pa.Schema), `numpy_columns()` (a list of NumPy
  // arrays, or None when a column has no NumPy form), and the Arrow PyCapsule protocol.
  nb::class_<Batch>(m, "Batch")
      .def_prop_ro("num_rows", [](const Batch& b) { return b.batch->num_rows(); })
      // Rows [offset, offset + length) (clamped to the batch), without a copy.
      .def(
          "slice",
          [](const Batch& b, int64_t offset, int64_t length) {
            if (offset < 0 || length < 0) {
              throw nb::index_error("Batch.slice: offset and length must be >= 0");
            }
            const int64_t rows = b.batch->num_rows();
            return Batch{b.batch->Slice(std::min(offset, rows), length)};
          },
          nb::arg("offset"), nb::arg("length"))
      .def("to_arrow", &ToArrow, nb::arg("schema"))
      .def("numpy_columns", [](const Batch& b) { return ExportNumpyColumns(b.batch); })
      .def(
          "__arrow_c_array__",
          [](const Batch& b, nb::handle requested_schema) {
            return ExportBatch(b.batch);
          },
          nb::arg("requested_schema").none() = nb::none());

  nb::class_<PermutationTable>(m, "PermutationTable")
      .def_static(
          "from_arrow",
          [](nb::handle data) {
            auto reader = ValueOrThrow(ImportStream(data));
            return Mutable(ValueOrThrow(WithoutGil(
                [&]() -> arrow::Result<std::shared_ptr<const PermutationTable>> {
                  ARROW_ASSIGN_OR_RAISE(auto table, reader->ToTable());
                  return PermutationTable::FromArrow(*table);
                })));
          },
          nb::arg("data"))
      .def_static(
          "open",
          [](std::shared_ptr<Snapshot> snapshot) {
            return Mutable(ValueOrThrow(
                WithoutGil([&] { return PermutationTable::Open(*snapshot); })));
          },
          nb::arg("snapshot"))
      .def_static(
          "from_recipe",
          [](std::shared_ptr<Snapshot> base, const std::string& recipe) {
            return Mutable(ValueOrThrow(WithoutGil(
                [&]() -> arrow::Result<std::shared_ptr<const PermutationTable>> {
                  ARROW_ASSIGN_OR_RAISE(auto builder,
                                        PermutationBuilder::FromRecipe(base, recipe));
                  return builder.Execute();
                })));
          },
          nb::arg("base"), nb::arg("recipe"))
      .def_static(
          "from_row_ids",
          [](UInt64Array row_ids, uint64_t split,
             std::optional<std::vector<std::string>> split_names) {
            const int64_t n = static_cast<int64_t>(row_ids.shape(0));
            auto buffer = ValueOrThrow(arrow::AllocateBuffer(n * 8));
            std::memcpy(buffer->mutable_data(), row_ids.data(), n * 8);
            auto ids = std::make_shared<arrow::UInt64Array>(n, std::move(buffer));
            return Mutable(ValueOrThrow(PermutationTable::Make(
                std::move(ids), {split}, {0, n}, std::move(split_names), {})));
          },
          nb::arg("row_ids"), nb::arg("split"), nb::arg("split_names").none())
      .def(
          "attach",
          [](std::shared_ptr<PermutationTable> self, std::shared_ptr<Snapshot> snapshot) {
            PermutationTable::Attach(*snapshot, self);
          },
          nb::arg("snapshot"))
      .def(
          "only_split",
          [](const PermutationTable& t, uint64_t split) {
            return Mutable(ValueOrThrow(t.OnlySplit(split)));
          },
          nb::arg("split"))
      .def("digest", &PermutationTable::Digest, nb::arg("split"))
      .def_prop_ro("num_rows", &PermutationTable::num_rows)
      .def_prop_ro("split_ids", &PermutationTable::split_ids)
      .def_prop_ro("split_names", &PermutationTable::split_names)
      .def_prop_ro("recipe",
                   [](const PermutationTable& t) { return t.provenance().recipe; })
      .def_prop_ro("base_location",
                   [](const PermutationTable& t) { return t.provenance().base_location; })
      .def_prop_ro("base_version",
                   [](const PermutationTable& t) { return t.provenance().base_version; })
      .def(
          "__arrow_c_stream__",
          [](const PermutationTable& t, nb::handle requested_schema) {
            return ExportTable(ValueOrThrow(WithoutGil([&] { return t.ToArrow(); })));
          },
          nb::arg("requested_schema").none() = nb::none());

  // A selection resolved against a base schema; reuse it across reads.
  nb::class_<BoundSelection>(m, "PermutationSelection")
      .def("schema",
           [](const BoundSelection& s) { return ExportSchema(s.output_schema()); });

  // What a reader takes rows from when it is not a local snapshot (a remote table:
  // riffledb._riffledb.RemoteTakeSource).
  nb::class_<TakeSource>(m, "TakeSource")
      .def("schema", [](const TakeSource& s) { return ExportSchema(s.schema()); })
      .def_prop_ro("num_rows", &TakeSource::num_rows)
      .def("__repr__", &TakeSource::ToString);

  nb::class_<PermutationReader>(m, "PermutationReader")
      .def_static(
          "open",
          [](std::shared_ptr<Snapshot> base,
             std::shared_ptr<PermutationTable> permutation, uint64_t split) {
            return Mutable(ValueOrThrow(WithoutGil([&] {
              return PermutationReader::Open(std::move(base), std::move(permutation),
                                             split);
            })));
          },
          nb::arg("base"), nb::arg("permutation").none(), nb::arg("split"))
      .def_static(
          "open",
          [](std::shared_ptr<TakeSource> base,
             std::shared_ptr<PermutationTable> permutation, uint64_t split) {
            return Mutable(ValueOrThrow(WithoutGil([&] {
              return PermutationReader::Open(
                  std::shared_ptr<const TakeSource>(std::move(base)),
                  std::move(permutation), split);
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
      .def(
          "with_repeat",
          [](const PermutationReader& r, int64_t times) {
            return Mutable(ValueOrThrow(r.WithRepeat(times)));
          },
          nb::arg("times"))
      .def_prop_ro("num_rows", &PermutationReader::count_rows)
      .def_prop_ro("rows_per_repeat", &PermutationReader::rows_per_repeat)
      .def_prop_ro("repeat", &PermutationReader::repeat)
      .def_prop_ro("offset", &PermutationReader::offset)
      .def_prop_ro("limit", &PermutationReader::limit)
      .def_prop_ro("available_rows", &PermutationReader::available_rows)
      .def_prop_ro("is_identity", &PermutationReader::is_identity)
      .def_prop_ro("split", &PermutationReader::split)
      .def_prop_ro("base", [](const PermutationReader& r) { return Mutable(r.base()); })
      .def_prop_ro("source",
                   [](const PermutationReader& r) { return Mutable(r.source()); })
      .def_prop_ro("permutation",
                   [](const PermutationReader& r) { return Mutable(r.permutation()); })
      .def("row_ids",
           [](const PermutationReader& r) {
             return Read([&]() -> arrow::Result<std::shared_ptr<arrow::RecordBatch>> {
               ARROW_ASSIGN_OR_RAISE(auto ids, r.RowIds());
               return arrow::RecordBatch::Make(
                   arrow::schema({arrow::field("row_id", arrow::uint64(), false)}),
                   ids->length(), {ids});
             });
           })
      .def(
          "bind",
          [](const PermutationReader& r,
             std::optional<std::vector<std::pair<std::string, std::string>>> selection,
             bool binary_views) {
            return Mutable(ValueOrThrow(WithoutGil([&] {
              return BoundSelection::Make(*r.source()->schema(), selection, binary_views);
            })));
          },
          nb::arg("selection").none(), nb::arg("binary_views") = false)
      // The rows at these offsets (an int64 NumPy array or a sequence of ints).
      .def(
          "take",
          [](const PermutationReader& r, Int64Array offsets,
             const BoundSelection& selection) {
            return Read([&] {
              return r.TakeOffsets({offsets.data(), offsets.shape(0)}, selection);
            });
          },
          nb::arg("offsets"), nb::arg("selection"))
      // A list of Python ints only (noconvert): nanobind would otherwise take True as 1.
      // Python checks any other list on the error path (riffledb._args.bad_index).
      .def(
          "take",
          [](const PermutationReader& r, const std::vector<int64_t>& offsets,
             const BoundSelection& selection) {
            return Read([&] { return r.TakeOffsets(offsets, selection); });
          },
          nb::arg("offsets").noconvert(), nb::arg("selection"))
      .def(
          "num_batches",
          [](const PermutationReader& r, int64_t batch_size, bool drop_last) {
            return ValueOrThrow(r.NumBatches(batch_size, drop_last));
          },
          nb::arg("batch_size"), nb::arg("drop_last"))
      // Batch `index` of the iteration in batches of exactly `batch_size` rows.
      .def(
          "read_batch",
          [](const PermutationReader& r, int64_t index, int64_t batch_size,
             bool drop_last, const BoundSelection& selection) {
            return Read(
                [&] { return r.ReadBatch(index, batch_size, drop_last, selection); });
          },
          nb::arg("index"), nb::arg("batch_size"), nb::arg("drop_last"),
          nb::arg("selection"));
}

}  // namespace riffledb::python
