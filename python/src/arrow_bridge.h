// Arrow C data interface between Python and C++ (DESIGN.md, decision 2): PyCapsules in and
// out, zero-copy, without libarrow_python.
#pragma once

#include <memory>

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/table.h>
#include <arrow/type.h>
#include <nanobind/nanobind.h>

namespace riffledb::python {

/// Imports a stream from any object with `__arrow_c_stream__`.
arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> ImportStream(nanobind::handle obj);
/// Imports a schema from any object with `__arrow_c_schema__`.
arrow::Result<std::shared_ptr<arrow::Schema>> ImportSchema(nanobind::handle obj);

/// Exports to a PyCapsule named "arrow_array_stream" (pyarrow: RecordBatchReader._import_from_c_capsule).
nanobind::object ExportStream(std::shared_ptr<arrow::RecordBatchReader> reader);
nanobind::object ExportTable(const std::shared_ptr<arrow::Table>& table);
/// Exports a schema to a PyCapsule named "arrow_schema".
nanobind::object ExportSchema(const std::shared_ptr<arrow::Schema>& schema);
/// Exports a batch as the (schema capsule, array capsule) pair of `__arrow_c_array__`.
nanobind::object ExportBatch(const std::shared_ptr<arrow::RecordBatch>& batch);

}  // namespace riffledb::python
