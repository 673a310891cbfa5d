// Reading a permutation: turning positions in a split into rows of the base table.
#pragma once

#include <arrow/array.h>
#include <arrow/compute/expression.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "riffledb/table/snapshot.h"

namespace riffledb {

/// Output columns of a permutation read, in order: (output name, source). A source is a
/// base column name (a zero-copy pass-through), `_rowid`, or a SQL expression over base
/// columns (and `_rowid`), evaluated on the gathered rows.
using PermutationSelection = std::vector<std::pair<std::string, std::string>>;

/// Name of the permutation table's row id column (a base `_rowid`) and split column.
inline constexpr char kPermutationRowIdColumn[] = "row_id";
inline constexpr char kPermutationSplitColumn[] = "split_id";

/// The message of the Invalid status for a split (or identity table) without rows.
inline constexpr char kNoRowsMessage[] =
    "Invalid input, No rows found in the permutation table for the given split";

/// A selection bound to a base schema: a Projection (riffledb/expr/projection.h, the one
/// projection engine) with the permutation's rules for what may be selected. Immutable
/// and thread-safe; make it once per selection and reuse it for every read (binding
/// parses SQL).
class BoundSelection {
 public:
  /// Resolves `selection` (nullopt: every base column in base order, without `_rowid`).
  ///
  /// Errors (Invalid): an empty selection; a key `_rowid` whose source is not `_rowid`
  /// ("Dynamic column {src} cannot be used to select _rowid"); an unknown column or a bad
  /// expression (the expression language's messages).
  static arrow::Result<std::shared_ptr<const BoundSelection>> Make(
      const arrow::Schema& base_schema,
      const std::optional<PermutationSelection>& selection);

  const std::shared_ptr<arrow::Schema>& output_schema() const {
    return take_.projection->output_schema();
  }
  /// Options of a take that returns the selection's output.
  const TakeOptions& take_options() const { return take_; }

 private:
  BoundSelection() = default;

  TakeOptions take_;  // its projection is never null
};

/// Reads one split of a permutation (or, for an identity permutation, the whole base
/// table in storage order) from pinned versions of the base and permutation tables.
///
/// Positions ("offsets") are 0-based within the split after the reader's offset and
/// limit. A reader is immutable and thread-safe; what it returns is independent of it. It
/// keeps its snapshots (and the split's row ids, O(split size) memory) alive, so writes
/// to either table after it was opened never change what it reads. Readers made by
/// WithOffsetLimit share the row ids with the reader they came from.
class PermutationReader {
 public:
  /// Opens split `split` of `permutation` over `base`; `permutation` null means identity
  /// (then `split` must be 0).
  ///
  /// The permutation table is scanned once (`row_id` where `split_id = split`), in its
  /// stored order, which is the read order.
  ///
  /// Errors (Invalid): a permutation table without a `row_id` or `split_id` column
  /// ("Permutation table must contain a column named row_id"), a `row_id` that is not an
  /// integer column or holds nulls or negative values, and a split (or identity table)
  /// without rows (kNoRowsMessage).
  static arrow::Result<std::shared_ptr<const PermutationReader>> Open(
      std::shared_ptr<const Snapshot> base, std::shared_ptr<const Snapshot> permutation,
      uint64_t split);

  /// A reader over rows [offset, offset + limit) of the full split (offset first, then
  /// limit, whatever the order the user gave them in), validated against the full split
  /// row count A without clamping (Invalid):
  ///   offset + limit > A: "Offset + limit is greater than the number of rows in the
  ///     permutation table"; offset > A: "Offset is greater than ..."; limit > A: "Limit
  ///     is greater than ..."; a negative value: "Offset must not be negative, got N".
  arrow::Result<std::shared_ptr<const PermutationReader>> WithOffsetLimit(
      std::optional<int64_t> offset, std::optional<int64_t> limit) const;

  /// Rows readable through this reader (after offset and limit). No I/O.
  int64_t count_rows() const { return count_; }
  /// Rows of the whole split (identity: of the pinned base version).
  int64_t available_rows() const { return available_; }
  bool is_identity() const { return row_ids_ == nullptr; }
  const std::shared_ptr<const Snapshot>& base() const { return base_; }
  /// Row id (base `_rowid`) of every readable row, in read order (identity: computed).
  arrow::Result<std::shared_ptr<arrow::UInt64Array>> RowIds() const;

  /// The rows at `offsets`, in the order given, duplicates allowed, projected through
  /// `selection`. IndexError naming the first offset outside [0, count_rows()), and
  /// nothing is read. Same contract for identity and permutation-table readers. Gathers
  /// run on the process-wide thread pool; the call blocks until they are done.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeOffsets(
      std::span<const int64_t> offsets, const BoundSelection& selection) const;

  /// Rows [start, start + length) of this reader (a contiguous range, cheaper than
  /// TakeOffsets: no per-offset bounds check or translation).
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeRange(
      int64_t start, int64_t length, const BoundSelection& selection) const;

  /// Streams every readable row in order, in batches of exactly `batch_size` rows except
  /// the last, which holds the remainder (no batch when count_rows() is 0). Each batch is
  /// read when asked for. The stream keeps the reader and the selection alive.
  /// Invalid if batch_size < 1.
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> Read(
      std::shared_ptr<const BoundSelection> selection, int64_t batch_size) const;

 private:
  PermutationReader() = default;

  // Constant after construction.
  std::shared_ptr<const Snapshot> base_;
  std::shared_ptr<const Snapshot> permutation_;
  uint64_t split_ = 0;
  // The whole split's row ids, in stored order; null for identity.
  std::shared_ptr<const arrow::UInt64Array> row_ids_;
  int64_t available_ = 0;
  int64_t start_ = 0;  // offset into the split
  int64_t count_ = 0;
};

}  // namespace riffledb
