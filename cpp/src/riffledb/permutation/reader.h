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

#include "riffledb/permutation/permutation_table.h"
#include "riffledb/permutation/take_source.h"
#include "riffledb/table/snapshot.h"

namespace riffledb {

/// Output columns of a permutation read, in order: (output name, source). A source is a
/// base column name (a zero-copy pass-through), `_rowid`, or a SQL expression over base
/// columns (and `_rowid`), evaluated on the gathered rows.
using PermutationSelection = std::vector<std::pair<std::string, std::string>>;

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
  ///
  /// With `binary_views`, reads return binary and string columns as views of the
  /// table's buffers (TakeOptions::binary_views), and the output schema says so.
  static arrow::Result<std::shared_ptr<const BoundSelection>> Make(
      const arrow::Schema& base_schema,
      const std::optional<PermutationSelection>& selection, bool binary_views = false);

  const std::shared_ptr<arrow::Schema>& output_schema() const { return output_schema_; }
  /// Options of a take that returns the selection's output.
  const TakeOptions& take_options() const { return take_; }

 private:
  BoundSelection() = default;

  TakeOptions take_;  // its projection is never null
  std::shared_ptr<arrow::Schema> output_schema_;
};

/// Reads one split of a permutation table (or, for an identity permutation, the whole
/// base table in storage order) from a pinned version of the base table, through a view:
/// rows [offset, offset + limit) of the split, repeated `repeat` times. The base table is
/// a TakeSource (take_source.h): a local snapshot, or a remote table
/// (riffledb/remote/client/remote_take_source.h); the reader takes from it once per
/// batch.
///
/// Positions ("offsets") are 0-based within the view: offset i reads row i %
/// rows_per_repeat() of the window. A reader is immutable and thread-safe, and survives
/// fork (it holds snapshots, whose files are memory maps, and row ids; reads run on the
/// fork-safe process-wide pool). What it returns is independent of it. Writes to the base
/// table after the reader was opened never change what it reads. Readers made by With*
/// share the row ids with the reader they came from.
class PermutationReader {
 public:
  /// Opens split `split` of `permutation` over `base`; `permutation` null means identity
  /// (then `split` must be 0). O(log splits): the split is a slice of the table's row
  /// ids.
  ///
  /// Errors (Invalid): a split (or identity table) without rows (kNoRowsMessage).
  static arrow::Result<std::shared_ptr<const PermutationReader>> Open(
      std::shared_ptr<const Snapshot> base,
      std::shared_ptr<const PermutationTable> permutation, uint64_t split);
  /// The same over any source (a remote table, say). A SnapshotTakeSource is the same
  /// as opening its snapshot.
  static arrow::Result<std::shared_ptr<const PermutationReader>> Open(
      std::shared_ptr<const TakeSource> base,
      std::shared_ptr<const PermutationTable> permutation, uint64_t split);

  /// A reader over rows [offset, offset + limit) of the full split (offset first, then
  /// limit, whatever the order the user gave them in), validated against the full split
  /// row count A without clamping (Invalid):
  ///   offset + limit > A: "Offset + limit is greater than the number of rows in the
  ///     permutation table"; offset > A: "Offset is greater than ..."; limit > A: "Limit
  ///     is greater than ..."; a negative value: "Offset must not be negative, got N".
  /// Keeps the repeat count.
  arrow::Result<std::shared_ptr<const PermutationReader>> WithOffsetLimit(
      std::optional<int64_t> offset, std::optional<int64_t> limit) const;

  /// A reader over this window repeated `times` times (replacing an earlier repeat).
  /// Invalid if times < 1 or the view would exceed 2^63 - 1 rows.
  arrow::Result<std::shared_ptr<const PermutationReader>> WithRepeat(int64_t times) const;

  /// Rows readable through this reader: the window's rows times the repeat count. No I/O.
  int64_t count_rows() const { return count_ * repeat_; }
  /// Rows of the window (offset/limit applied, one repetition).
  int64_t rows_per_repeat() const { return count_; }
  int64_t repeat() const { return repeat_; }
  std::optional<int64_t> offset() const { return offset_; }
  std::optional<int64_t> limit() const { return limit_; }
  /// Rows of the whole split (identity: of the pinned base version).
  int64_t available_rows() const { return available_; }
  bool is_identity() const { return table_ == nullptr; }
  uint64_t split() const { return split_; }
  /// The base table's snapshot; null when the source is not a local snapshot.
  const std::shared_ptr<const Snapshot>& base() const { return base_; }
  /// What rows are taken from (never null).
  const std::shared_ptr<const TakeSource>& source() const { return source_; }
  /// The permutation table the split comes from (null for identity).
  const std::shared_ptr<const PermutationTable>& permutation() const { return table_; }
  /// Row id (base `_rowid`) of every row of the window, in read order (one repetition;
  /// identity: computed).
  arrow::Result<std::shared_ptr<arrow::UInt64Array>> RowIds() const;

  /// The rows at `offsets`, in the order given, duplicates allowed, projected through
  /// `selection`. IndexError naming the first offset outside [0, count_rows()) and its
  /// position, and nothing is read. Gathers run on the process-wide thread pool; the call
  /// blocks until they are done.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeOffsets(
      std::span<const int64_t> offsets, const BoundSelection& selection) const;

  /// Rows [start, start + length) of the view (a contiguous range, cheaper than
  /// TakeOffsets; it may wrap across repetitions). IndexError if out of range.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeRange(
      int64_t start, int64_t length, const BoundSelection& selection) const;

  /// Iteration in batches of exactly `batch_size` rows, in order, across repetitions:
  /// only the last batch may be shorter, and `drop_last` drops it. NumBatches is how many
  /// batches there are; ReadBatch(i) reads batch i (IndexError outside [0, NumBatches)).
  /// Invalid if batch_size < 1.
  arrow::Result<int64_t> NumBatches(int64_t batch_size, bool drop_last) const;
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> ReadBatch(
      int64_t index, int64_t batch_size, bool drop_last,
      const BoundSelection& selection) const;

  /// Streams the batches of NumBatches/ReadBatch, each read when asked for. The stream
  /// keeps the reader and the selection alive.
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> Read(
      std::shared_ptr<const BoundSelection> selection, int64_t batch_size,
      bool drop_last = false) const;

 private:
  PermutationReader() = default;
  // Gathers rows [start, start + length) of the window (no repetition), projected.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeWindowRange(
      int64_t start, int64_t length, const BoundSelection& selection) const;
  // Gathers the window rows at `offsets` (each in [0, count_)), projected.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeWindowRows(
      std::span<const int64_t> offsets, const BoundSelection& selection) const;

  // Constant after construction.
  std::shared_ptr<const TakeSource> source_;
  std::shared_ptr<const Snapshot> base_;  // source_'s, if it is a SnapshotTakeSource
  std::shared_ptr<const PermutationTable> table_;  // null for identity
  uint64_t split_ = 0;
  // The whole split's row ids, in read order; null for identity.
  std::shared_ptr<const arrow::UInt64Array> row_ids_;
  int64_t available_ = 0;
  int64_t start_ = 0;  // offset into the split
  int64_t count_ = 0;  // rows of the window
  int64_t repeat_ = 1;
  std::optional<int64_t> offset_, limit_;  // as given
};

}  // namespace riffledb
