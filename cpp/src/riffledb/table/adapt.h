// The one place where data written to a table is checked against the table's schema and
// converted to it: column order by name, safe casts, nullability.
#pragma once

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type.h>

#include <memory>
#include <string>

namespace riffledb {

/// Returns a reader that yields `input`'s rows with exactly `target`'s schema (its column
/// order, types, nullability and metadata).
///
/// `input`'s schema is checked once, before any batch is read: every column of the data
/// must be a column of `target` (by name, each name once), every non-nullable column of
/// `target` must be in the data, and each data column must have the target type or one
/// Arrow can cast to it. A mismatch is Invalid, with one message that names `what` (e.g.
/// "table 't'") and every missing, extra, duplicated and mismatched column (name,
/// expected type, given type).
///
/// A nullable column of `target` that the data lacks is filled with nulls, whatever form
/// the data came in (rows, columns, streams): one rule, LanceDB's (Lance appends allow a
/// missing field if it is nullable).
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
    std::string what);

}  // namespace riffledb
