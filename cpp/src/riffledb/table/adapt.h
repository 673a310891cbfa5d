// The one place where data written to a table is checked against the table's schema and
// converted to it: column order by name, safe casts, nullability.
#pragma once

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type.h>

#include <memory>
#include <string>

namespace riffledb {

/// What a write does with a column of the target schema that the data lacks.
enum class MissingColumns {
  /// It is an error. The rule for columnar data (Arrow tables and streams, data frames,
  /// dicts of columns): a column is there or it is not, absence is never a value.
  kReject,
  /// A nullable column is filled with nulls; a non-nullable one is still an error. The
  /// rule for rows given as dicts, where a row that omits a key holds null there.
  kFillNullable,
};

/// Returns a reader that yields `input`'s rows with exactly `target`'s schema (its column
/// order, types, nullability and metadata).
///
/// `input`'s schema is checked once, before any batch is read: every column of the data
/// must be a column of `target` (by name, each name once), every column of `target` must
/// be in the data (but see MissingColumns), and each data column must have the target
/// type or one Arrow can cast to it. A mismatch is Invalid, with one message that names
/// `what` (e.g. "table 't'") and every missing, extra, duplicated and mismatched column
/// (name, expected type, given type).
///
/// Batches are then read lazily: columns are reordered (zero-copy) and cast with Arrow's
/// safe cast, so a value that does not survive the cast (integer overflow, a float with a
/// fraction into an integer, an unparsable string) is Invalid naming the column, the row
/// (counted from the start of the stream) and the value. A null in a non-nullable column
/// is Invalid naming the column and the row. The caller writes nothing it has read unless
/// the whole stream adapts: an error may come from any batch.
///
/// `input` is not owned and must outlive the returned reader. Not thread-safe (a reader).
arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> AdaptToSchema(
    arrow::RecordBatchReader* input, std::shared_ptr<arrow::Schema> target,
    MissingColumns missing, std::string what);

}  // namespace riffledb
