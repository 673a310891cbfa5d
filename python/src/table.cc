// Bindings for riffledb::Table and its snapshot reads.
#include "riffledb/table/table.h"

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include <variant>

#include "arrow_bridge.h"
#include "bindings.h"
#include "errors.h"

namespace nb = nanobind;

namespace riffledb::python {

namespace {

using Int64Array = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using UInt64Array =
    nb::ndarray<const uint64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// The table's current snapshot, opened without the GIL: after a commit or a checkout it
// opens the new version, which reads manifests and maybe files (an S3 server in a thread
// of this process needs the GIL to answer).
std::shared_ptr<const Snapshot> CurrentSnapshot(const Table& table) {
  return ValueOrThrow(WithoutGil([&] { return table.snapshot(); }));
}

// Take options for `columns` (plain names; empty: all) of `snapshot`.
TakeOptions BindTake(const Snapshot& snapshot, const std::vector<std::string>& columns,
                     bool with_row_id) {
  TakeOptions options;
  if (!columns.empty() || with_row_id) {
    options.projection =
        ValueOrThrow(Projection::Columns(snapshot.schema(), columns, with_row_id));
  }
  return options;
}

nb::object TakeOffsets(const Table& table, std::span<const int64_t> offsets,
                       const std::vector<std::string>& columns, bool with_row_id,
                       bool binary_views) {
  auto snapshot = CurrentSnapshot(table);
  TakeOptions options = BindTake(*snapshot, columns, with_row_id);
  options.binary_views = binary_views;
  auto batch =
      ValueOrThrow(WithoutGil([&] { return snapshot->TakeOffsets(offsets, options); }));
  return ExportBatch(batch);
}

nb::object TakeRowIds(const Table& table, std::span<const uint64_t> ids,
                      const std::vector<std::string>& columns, bool with_row_id,
                      bool binary_views) {
  auto snapshot = CurrentSnapshot(table);
  TakeOptions options = BindTake(*snapshot, columns, with_row_id);
  options.binary_views = binary_views;
  auto batch =
      ValueOrThrow(WithoutGil([&] { return snapshot->TakeRowIds(ids, options); }));
  return ExportBatch(batch);
}

// A Progress that calls `callback(stage, done, total)` with the GIL (None: no reports).
// An exception the callback raises is reported as unraisable: progress cannot fail the
// work it reports on.
Progress PythonProgress(const nb::object& callback) {
  if (callback.is_none()) return nullptr;
  return [&callback](std::string_view stage, int64_t done, int64_t total) {
    nb::gil_scoped_acquire gil;
    try {
      callback(nb::str(stage.data(), stage.size()), done, total);
    } catch (nb::python_error& e) {
      e.discard_as_unraisable("riffledb progress callback");
    }
  };
}

}  // namespace

void RegisterTable(nb::module_& m) {
  // Validates a fragment description (JSON text); returns (table, base version, schema
  // capsule, [(path, rows)]).
  m.def("parse_fragment_description", [](const std::string& text) {
    auto written = ValueOrThrow(format::WrittenFragments::FromJson(text));
    std::vector<std::pair<std::string, int64_t>> files;
    for (const auto& fragment : written.fragments) {
      files.emplace_back(fragment.path, fragment.physical_rows);
    }
    return std::make_tuple(written.table, written.base_version,
                           ExportSchema(written.schema), files);
  });

  // A pinned, immutable version of a table: what permutations read.
  nb::class_<Snapshot>(m, "Snapshot")
      .def_prop_ro("version", &Snapshot::version)
      .def_prop_ro("num_rows", &Snapshot::num_rows)
      .def("schema", [](const Snapshot& s) { return ExportSchema(s.schema()); });

  nb::class_<Table>(m, "Table")
      .def("snapshot",
           [](const Table& t) {
             // Snapshots are immutable; nanobind holds them through non-const pointers.
             return std::const_pointer_cast<Snapshot>(CurrentSnapshot(t));
           })
      .def_prop_ro("name", &Table::name)
      .def_prop_ro("version", &Table::version)
      .def_prop_ro("location", [](const Table& t) { return t.store()->location(); })
      .def_prop_ro("detached", &Table::detached)
      .def_prop_ro("num_rows",
                   [](const Table& t) { return CurrentSnapshot(t)->num_rows(); })
      .def("schema",
           [](const Table& t) { return ExportSchema(CurrentSnapshot(t)->schema()); })
      .def(
          "count_rows",
          [](const Table& t, std::optional<std::string> filter) {
            auto snapshot = CurrentSnapshot(t);
            return ValueOrThrow(WithoutGil([&]() -> arrow::Result<int64_t> {
              std::shared_ptr<const Filter> bound;
              if (filter) {
                ARROW_ASSIGN_OR_RAISE(bound, Filter::Make(snapshot->schema(), *filter));
              }
              return snapshot->CountRows(bound);
            }));
          },
          nb::arg("filter").none() = nb::none())
      // `projection`: a list of column names (plain columns, never SQL), or of
      // (output name, SQL) pairs.
      .def(
          "scan",
          [](const Table& t, std::optional<std::string> filter,
             std::variant<std::vector<std::string>,
                          std::vector<std::pair<std::string, std::string>>>
                 projection,
             bool with_row_id, int64_t offset, std::optional<int64_t> limit,
             int64_t max_batch_rows, int64_t range_begin,
             std::optional<int64_t> range_end) {
            auto snapshot = CurrentSnapshot(t);
            auto reader = ValueOrThrow(WithoutGil(
                [&]() -> arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> {
                  ScanOptions options;
                  if (filter) {
                    ARROW_ASSIGN_OR_RAISE(options.filter,
                                          Filter::Make(snapshot->schema(), *filter));
                  }
                  if (const auto* names = std::get_if<0>(&projection)) {
                    if (!names->empty() || with_row_id) {
                      ARROW_ASSIGN_OR_RAISE(
                          options.projection,
                          Projection::Columns(snapshot->schema(), *names, with_row_id));
                    }
                  } else {
                    const auto& outputs = std::get<1>(projection);
                    if (!outputs.empty() || with_row_id) {
                      ARROW_ASSIGN_OR_RAISE(
                          options.projection,
                          Projection::Make(snapshot->schema(), outputs, with_row_id));
                    }
                  }
                  options.offset = offset;
                  options.limit = limit;
                  options.max_batch_rows = max_batch_rows;
                  options.range_begin = range_begin;
                  options.range_end = range_end;
                  return snapshot->Scan(options);
                }));
            return WrapStream(std::move(reader));
          },
          nb::arg("filter").none(), nb::arg("projection"), nb::arg("with_row_id"),
          nb::arg("offset"), nb::arg("limit").none(), nb::arg("max_batch_rows"),
          nb::kw_only(), nb::arg("range_begin") = 0,
          nb::arg("range_end").none() = nb::none())
      .def(
          "take_offsets",
          [](const Table& t, Int64Array offsets, const std::vector<std::string>& columns,
             bool with_row_id, bool binary_views) {
            return TakeOffsets(t, {offsets.data(), offsets.shape(0)}, columns,
                               with_row_id, binary_views);
          },
          nb::arg("offsets"), nb::arg("columns"), nb::arg("with_row_id"), nb::kw_only(),
          nb::arg("binary_views") = false)
      .def(
          "take_row_ids",
          [](const Table& t, UInt64Array ids, const std::vector<std::string>& columns,
             bool with_row_id, bool binary_views) {
            return TakeRowIds(t, {ids.data(), ids.shape(0)}, columns, with_row_id,
                              binary_views);
          },
          nb::arg("row_ids"), nb::arg("columns"), nb::arg("with_row_id"), nb::kw_only(),
          nb::arg("binary_views") = false)
      .def(
          "add",
          [](Table& t, nb::handle data) {
            auto reader = ValueOrThrow(ImportStream(data));
            return ValueOrThrow(WithoutGil([&] { return t.Append(reader.get()); }));
          },
          nb::arg("data"))
      .def("overwrite",
           [](Table& t, nb::handle data) {
             auto reader = ValueOrThrow(ImportStream(data));
             return ValueOrThrow(WithoutGil([&] { return t.Overwrite(reader.get()); }));
           })
      // Returns the descriptions as JSON text, one per file written
      // (format::WrittenFragments); riffledb.fragments wraps them.
      .def(
          "write_fragments",
          [](Table& t, nb::handle data, nb::handle schema) {
            std::shared_ptr<arrow::RecordBatchReader> reader;  // null: no rows
            if (!data.is_none()) reader = ValueOrThrow(ImportStream(data));
            std::shared_ptr<arrow::Schema> arrow_schema;
            if (!schema.is_none()) arrow_schema = ValueOrThrow(ImportSchema(schema));
            return ValueOrThrow(
                WithoutGil([&]() -> arrow::Result<std::vector<std::string>> {
                  ARROW_ASSIGN_OR_RAISE(auto written,
                                        t.WriteFragments(reader.get(), arrow_schema));
                  std::vector<std::string> texts;
                  for (const auto& one : written.SplitByFile()) {
                    ARROW_ASSIGN_OR_RAISE(auto text, one.ToJson());
                    texts.push_back(std::move(text));
                  }
                  return texts;
                }));
          },
          nb::arg("data").none(), nb::arg("schema").none())
      .def(
          "commit_fragments",
          [](Table& t, const std::vector<std::string>& descriptions, bool overwrite) {
            return ValueOrThrow(WithoutGil([&]() -> arrow::Result<uint64_t> {
              std::vector<format::WrittenFragments> written;
              written.reserve(descriptions.size());
              for (const auto& text : descriptions) {
                ARROW_ASSIGN_OR_RAISE(auto one, format::WrittenFragments::FromJson(text));
                written.push_back(std::move(one));
              }
              return t.CommitFragments(
                  written, overwrite ? CommitMode::kOverwrite : CommitMode::kAppend);
            }));
          },
          nb::arg("descriptions"), nb::arg("overwrite"))
      .def("delete",
           [](Table& t, const std::string& filter) {
             return ValueOrThrow(WithoutGil([&]() -> arrow::Result<uint64_t> {
               // Bound to the handle's version; Delete binds it again to the newest.
               ARROW_ASSIGN_OR_RAISE(auto snapshot, t.snapshot());
               ARROW_ASSIGN_OR_RAISE(auto bound,
                                     Filter::Make(snapshot->schema(), filter));
               return t.Delete(*bound);
             }));
           })
      .def("list_versions",
           [](const Table& t) {
             auto versions = ValueOrThrow(WithoutGil([&] { return t.ListVersions(); }));
             std::vector<std::tuple<uint64_t, int64_t, std::string, nb::object>> out;
             for (const auto& v : versions) {
               nb::object damage = nb::none();
               if (!v.damage.empty()) {
                 damage = nb::steal(PyUnicode_DecodeUTF8(
                     v.damage.data(), static_cast<Py_ssize_t>(v.damage.size()),
                     "backslashreplace"));
               }
               out.emplace_back(v.version, v.timestamp_ms, v.operation, damage);
             }
             return out;
           })
      .def(
          "compact",
          [](Table& t, int64_t target_rows_per_fragment, const nb::object& progress) {
            CompactionOptions options;
            options.target_rows_per_fragment = target_rows_per_fragment;
            Progress report = PythonProgress(progress);
            auto stats =
                ValueOrThrow(WithoutGil([&] { return t.Compact(options, report); }));
            return std::make_tuple(stats.fragments_removed, stats.fragments_added,
                                   stats.files_removed, stats.files_added);
          },
          nb::arg("target_rows_per_fragment"), nb::arg("progress").none())
      .def(
          "cleanup_old_versions",
          [](Table& t, int64_t older_than_ms, bool delete_unverified,
             const nb::object& progress) {
            CleanupOptions options;
            options.older_than_ms = older_than_ms;
            options.delete_unverified = delete_unverified;
            Progress report = PythonProgress(progress);
            auto stats = ValueOrThrow(
                WithoutGil([&] { return t.CleanupOldVersions(options, report); }));
            return std::make_tuple(stats.old_versions, stats.files_removed,
                                   stats.bytes_removed);
          },
          nb::arg("older_than_ms"), nb::arg("delete_unverified"),
          nb::arg("progress").none())
      .def(
          "verify",
          [](const Table& t, std::optional<uint64_t> version) {
            ThrowIfError(WithoutGil([&] { return t.Verify(version); }));
          },
          nb::arg("version") = nb::none())
      .def("restore",
           [](Table& t, uint64_t version) {
             return ValueOrThrow(WithoutGil([&] { return t.Restore(version); }));
           })
      .def("checkout",
           [](Table& t, uint64_t version) {
             ThrowIfError(WithoutGil([&] { return t.Checkout(version); }));
           })
      .def("checkout_latest", [](Table& t) {
        ThrowIfError(WithoutGil([&] { return t.CheckoutLatest(); }));
      });
}

}  // namespace riffledb::python
