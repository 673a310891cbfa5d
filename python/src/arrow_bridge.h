// Arrow C data interface between Python and C++ (DESIGN.md, decision 2): PyCapsules in
// and out, zero-copy, without libarrow_python.
#pragma once

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/table.h>
#include <arrow/type.h>
#include <nanobind/nanobind.h>

#include <memory>

namespace riffledb::python {

/// Imports a stream from any object with `__arrow_c_stream__`.
arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> ImportStream(
    nanobind::handle obj);
/// Imports a schema from any object with `__arrow_c_schema__`.
arrow::Result<std::shared_ptr<arrow::Schema>> ImportSchema(nanobind::handle obj);

/// Exports to a PyCapsule named "arrow_array_stream" (pyarrow:
/// RecordBatchReader._import_from_c_capsule). An error while reading it reaches Python as
/// the exception pyarrow raises for the message; see WrapStream.
nanobind::object ExportStream(std::shared_ptr<arrow::RecordBatchReader> reader);
/// Wraps a reader as a `_riffledb.NativeStream`, whose read errors are raised through
/// RaiseStatus (riffledb.errors, docs/errors.md), for readers that can fail after they
/// are returned (a scan evaluates its filter while reading).
nanobind::object WrapStream(std::shared_ptr<arrow::RecordBatchReader> reader);
nanobind::object ExportTable(const std::shared_ptr<arrow::Table>& table);
/// Exports a schema to a PyCapsule named "arrow_schema".
nanobind::object ExportSchema(const std::shared_ptr<arrow::Schema>& schema);
/// Exports a batch as the (schema capsule, array capsule) pair of `__arrow_c_array__`.
nanobind::object ExportBatch(const std::shared_ptr<arrow::RecordBatch>& batch);
/// Exports a batch's data without its schema, for a caller that imports it against a
/// schema it already holds (`pa.RecordBatch._import_from_c(address, schema)`, which skips
/// parsing the schema on every read). Returns (address of an ArrowArray, owner): the
/// struct lives as long as the owner (a capsule named "arrow_array"), which releases the
/// array on destruction unless an import moved it out first.
nanobind::object ExportBatchArray(const std::shared_ptr<arrow::RecordBatch>& batch);

/// The batch's columns as a list of NumPy arrays, one per column, batch-first: (rows,)
/// for a number or a boolean, (rows, size[, size2...]) for a fixed-size list (of
/// fixed-size lists...) of numbers. Numbers are views of the batch's memory (the array
/// keeps it alive), writable when Arrow owns that memory exclusively (a freshly gathered,
/// mutable buffer used by no other column), read-only otherwise; booleans are unpacked
/// into a new array. Returns None, converting nothing, if a column has another type or
/// any null.
nanobind::object ExportNumpyColumns(const std::shared_ptr<arrow::RecordBatch>& batch);

}  // namespace riffledb::python
