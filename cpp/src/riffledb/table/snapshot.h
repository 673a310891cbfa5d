// A readable, immutable view of one version of a table.
#pragma once

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

#include "riffledb/format/manifest.h"
#include "riffledb/table/gather.h"
#include "riffledb/table/store.h"
#include "riffledb/util/fork_safe_mutex.h"

namespace riffledb {

/// Name and type of the hidden row id column: `fragment_id << 32 | row_in_fragment`.
inline constexpr char kRowIdColumn[] = "_rowid";
/// Name of the hidden row offset column: position in this version's scan order.
inline constexpr char kRowOffsetColumn[] = "_rowoffset";

/// What a scan returns.
struct ScanOptions {
  /// SQL filter (DESIGN.md decision 6); rows where it is true are returned.
  std::optional<std::string> filter;
  /// Output columns as (name, SQL expression) pairs, in order; empty means every column.
  /// A plain column name as the expression is a zero-copy pass-through.
  std::vector<std::pair<std::string, std::string>> projection;
  /// Append `_rowid` (uint64) as the last column.
  bool with_row_id = false;
  /// Rows to skip after filtering, and the most rows to return (SQL OFFSET / LIMIT).
  int64_t offset = 0;
  std::optional<int64_t> limit;
  /// Split stored batches so none is larger than this (0: as stored).
  int64_t max_batch_rows = 0;
};

/// What a take returns.
struct TakeOptions {
  /// Column names to return, in order; empty means every column. `_rowid` may be named.
  std::vector<std::string> columns;
  /// Append `_rowid` (uint64) as the last column.
  bool with_row_id = false;
  /// Return binary/large_binary columns as binary_view and string/large_string as
  /// string_view whose data buffers are the table's own (no value is copied; see
  /// GatherRows). The returned batch keeps those buffers, and so the mapped files,
  /// alive.
  bool binary_views = false;
};

/// One version of a table with its fragments opened (memory-mapped for a directory).
/// Immutable and thread-safe; keeps its files mapped for as long as it lives, so a reader
/// holding a snapshot sees exactly that version whatever is written afterwards.
class Snapshot : public std::enable_shared_from_this<Snapshot> {
 public:
  static arrow::Result<std::shared_ptr<const Snapshot>> Open(std::shared_ptr<Store> store,
                                                             format::Manifest manifest);

  const format::Manifest& manifest() const { return manifest_; }
  const std::shared_ptr<Store>& store() const { return store_; }
  uint64_t version() const { return manifest_.version; }
  const std::shared_ptr<arrow::Schema>& schema() const { return manifest_.schema; }
  int64_t num_rows() const { return fragment_starts_.back(); }

  /// Rows where `filter` is true (all rows when absent).
  arrow::Result<int64_t> CountRows(const std::optional<std::string>& filter) const;
  /// The schema a scan with these options returns.
  arrow::Result<std::shared_ptr<arrow::Schema>> ScanSchema(
      const ScanOptions& options) const;
  /// Streams the matching rows in scan order. The reader keeps the snapshot alive.
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> Scan(
      const ScanOptions& options) const;

  /// Rows at `offsets` (positions in scan order), in the order given, duplicates allowed.
  /// IndexError naming the first offset outside [0, num_rows()).
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeOffsets(
      std::span<const int64_t> offsets, const TakeOptions& options) const;
  /// Rows with these `_rowid`s, in the order given. IndexError naming the first id that
  /// is not a live row of this version.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeRowIds(
      std::span<const uint64_t> row_ids, const TakeOptions& options) const;

  /// Row ids of the rows at `offsets` (bounds-checked as TakeOffsets).
  arrow::Result<std::vector<uint64_t>> RowIdsOfOffsets(
      std::span<const int64_t> offsets) const;
  /// The deleted-row lists after also deleting the rows matching `filter`: one entry per
  /// fragment (nullptr: unchanged), and how many rows the filter matched.
  arrow::Result<std::pair<std::vector<std::shared_ptr<std::vector<uint32_t>>>, int64_t>>
  RowsToDelete(const std::string& filter) const;

  /// Data that layers above derive from this snapshot (a permutation table's split
  /// index, say), kept with it so that it is computed once: `key` is the address of a
  /// tag of the deriving code; null when nothing was set. Thread-safe.
  std::shared_ptr<const void> Derived(const void* key) const;
  void SetDerived(const void* key, std::shared_ptr<const void> value) const;

 private:
  struct Fragment {
    uint32_t id;
    int64_t physical_rows;
    std::shared_ptr<const FragmentData> data;
    std::shared_ptr<const std::vector<uint32_t>> deleted;  // sorted; may be null
    int32_t first_chunk;  // index of its first batch in chunks_
  };
  class ScanReader;

  Snapshot() = default;
  // Physical row of the `live`-th live row of fragment `f`.
  int64_t PhysicalRow(const Fragment& fragment, int64_t live) const;
  ChunkRow ChunkOf(const Fragment& fragment, int64_t physical_row) const;
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Gather(
      std::span<const ChunkRow> refs, std::span<const uint64_t> row_ids,
      const TakeOptions& options) const;

  std::shared_ptr<Store> store_;
  format::Manifest manifest_;
  std::vector<Fragment> fragments_;
  std::vector<int64_t>
      fragment_starts_;  // live-row offset of each fragment, plus the total
  // Every stored batch, in scan order, as its boxed arrays (FragmentData::columns; owned
  // by fragments_) and row count. Never a shared RecordBatch: see FragmentData.
  struct Chunk {
    const arrow::ArrayVector* columns;
    int64_t num_rows;
  };
  std::vector<Chunk> chunks_;
  // column_chunks_[c][k] is (*chunks_[k].columns)[c].
  std::vector<std::vector<std::shared_ptr<arrow::Array>>> column_chunks_;

  mutable ForkSafeMutex derived_mu_;
  // guarded by derived_mu_
  mutable std::vector<std::pair<const void*, std::shared_ptr<const void>>> derived_;
};

}  // namespace riffledb
