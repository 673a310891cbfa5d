// Where a permutation reader gathers its rows from: the seam between the reader and the
// table it reads, local (a pinned snapshot) or remote (riffledb/remote/client/).
#pragma once

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "riffledb/table/snapshot.h"

namespace riffledb {

/// One version of a table that rows can be taken from, by offset or by row id: what a
/// PermutationReader reads through. The reader calls it once per batch (a take of many
/// rows), never per row, so the virtual call costs nothing next to the gather.
///
/// Implementations are immutable and thread-safe (the loader's threads take from one
/// source at once), survive fork (a forked child keeps taking), and see one version:
/// num_rows(), schema() and every take answer for the same version whatever is written
/// to the table afterwards. What a take returns does not depend on the source.
class TakeSource {
 public:
  virtual ~TakeSource() = default;

  /// The table's schema: what selections (BoundSelection) are bound to.
  virtual const std::shared_ptr<arrow::Schema>& schema() const = 0;
  /// Live rows of the version.
  virtual int64_t num_rows() const = 0;
  /// For messages: what the source reads ("table 'x' version 3").
  virtual std::string ToString() const = 0;

  /// The rows at `offsets` (positions in scan order), in the order given, duplicates
  /// allowed, projected as `options` says (its projection bound to schema(); null:
  /// every column). IndexError naming the first offset outside [0, num_rows()).
  virtual arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeOffsets(
      std::span<const int64_t> offsets, const TakeOptions& options) const = 0;
  /// The rows with these `_rowid`s, in the order given, duplicates allowed. IndexError
  /// naming the first id that is not a live row of the version.
  virtual arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeRowIds(
      std::span<const uint64_t> row_ids, const TakeOptions& options) const = 0;
  /// The `_rowid` of the rows at `offsets` (bounds-checked as TakeOffsets).
  virtual arrow::Result<std::vector<uint64_t>> RowIdsOfOffsets(
      std::span<const int64_t> offsets) const = 0;
};

/// A pinned local snapshot as a TakeSource: every call goes straight to the Snapshot
/// (table/snapshot.h), whose contract it has.
class SnapshotTakeSource final : public TakeSource {
 public:
  explicit SnapshotTakeSource(std::shared_ptr<const Snapshot> snapshot)
      : snapshot_(std::move(snapshot)) {}

  const std::shared_ptr<const Snapshot>& snapshot() const { return snapshot_; }

  const std::shared_ptr<arrow::Schema>& schema() const override {
    return snapshot_->schema();
  }
  int64_t num_rows() const override { return snapshot_->num_rows(); }
  std::string ToString() const override;
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeOffsets(
      std::span<const int64_t> offsets, const TakeOptions& options) const override {
    return snapshot_->TakeOffsets(offsets, options);
  }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeRowIds(
      std::span<const uint64_t> row_ids, const TakeOptions& options) const override {
    return snapshot_->TakeRowIds(row_ids, options);
  }
  arrow::Result<std::vector<uint64_t>> RowIdsOfOffsets(
      std::span<const int64_t> offsets) const override {
    return snapshot_->RowIdsOfOffsets(offsets);
  }

 private:
  const std::shared_ptr<const Snapshot> snapshot_;
};

}  // namespace riffledb
