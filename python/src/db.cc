// Bindings for riffledb::Database.
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "arrow_bridge.h"
#include "bindings.h"
#include "errors.h"
#include "riffledb/db/database.h"
#include "riffledb/io/file_cache.h"
#include "riffledb/io/s3_filesystem.h"

namespace nb = nanobind;

namespace riffledb::python {

void RegisterDatabase(nb::module_& m) {
  nb::class_<Database>(m, "Database")
      .def_static(
          "connect",
          [](const std::string& uri, const io::StorageOptions& storage_options) {
            return ValueOrThrow(
                WithoutGil([&] { return Database::Connect(uri, storage_options); }));
          },
          nb::arg("uri"), nb::arg("storage_options") = io::StorageOptions{})
      .def_prop_ro("uri", &Database::uri)
      .def_prop_ro("in_memory", &Database::in_memory)
      .def("table_names",
           [](const Database& db) {
             return ValueOrThrow(WithoutGil([&] { return db.TableNames(); }));
           })
      .def("has_table",
           [](const Database& db, const std::string& name) {
             return ValueOrThrow(WithoutGil([&] { return db.HasTable(name); }));
           })
      .def(
          "create_table",
          [](Database& db, const std::string& name, nb::handle schema, nb::handle data,
             const std::string& mode, bool exist_ok) {
            CreateMode create_mode;
            if (mode == "create") {
              create_mode = CreateMode::kCreate;
            } else if (mode == "overwrite") {
              create_mode = CreateMode::kOverwrite;
            } else {
              ThrowIfError(arrow::Status::Invalid("Invalid mode '", mode,
                                                  "': expected 'create' or 'overwrite'"));
            }
            std::shared_ptr<arrow::Schema> arrow_schema;
            if (!schema.is_none()) arrow_schema = ValueOrThrow(ImportSchema(schema));
            std::shared_ptr<arrow::RecordBatchReader> reader;
            if (!data.is_none()) reader = ValueOrThrow(ImportStream(data));
            return ValueOrThrow(WithoutGil([&] {
              return db.CreateTable(name, arrow_schema, reader.get(), create_mode,
                                    exist_ok);
            }));
          },
          nb::arg("name"), nb::arg("schema").none(), nb::arg("data").none(),
          nb::arg("mode"), nb::arg("exist_ok"))
      .def(
          "open_table",
          [](const Database& db, const std::string& name,
             std::optional<uint64_t> version) {
            return ValueOrThrow(WithoutGil([&] { return db.OpenTable(name, version); }));
          },
          nb::arg("name"), nb::arg("version").none() = nb::none())
      .def("drop_table",
           [](Database& db, const std::string& name, bool ignore_missing) {
             ThrowIfError(WithoutGil([&] { return db.DropTable(name, ignore_missing); }));
           })
      .def_static("validate_table_name", [](const std::string& name) {
        ThrowIfError(Database::ValidateTableName(name));
      });
  m.def("finalize_s3", [] { ThrowIfError(WithoutGil([] { return io::FinalizeS3(); })); });
  m.def(
      "io_stats",
      [](bool reset) {
        const io::IoStats stats = io::GetIoStats(reset);
        nb::dict out;
        out["requests"] = stats.requests;
        out["bytes"] = stats.bytes;
        out["corrupt_blocks"] = stats.corrupt_blocks;
        out["shared_blocks"] = stats.shared_blocks;
        return out;
      },
      nb::arg("reset") = false);
}

}  // namespace riffledb::python
