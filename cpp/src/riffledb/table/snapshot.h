// A readable, immutable view of one version of a table. Its implementation is split by
// concern: opening and row mapping (snapshot.cc), scans (scan.cc) and takes (take.cc).
//
// Fork safety: a snapshot's stored batches are shared by every reader of every thread
// (and, after fork, process). Readers never call RecordBatch::column() on them, whose
// lazy boxing is not thread-safe: they read the pre-boxed arrays (FragmentData::columns)
// and build batches of their own.
#pragma once

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "riffledb/expr/projection.h"
#include "riffledb/format/manifest.h"
#include "riffledb/storage/store.h"
#include "riffledb/table/gather.h"
#include "riffledb/util/fork_safe_mutex.h"

namespace riffledb {

/// What a scan returns. The filter and projection must be bound to the scanned
/// snapshot's schema (Invalid otherwise); binding (and parsing SQL) is the caller's.
struct ScanOptions {
  /// Rows where it is true are returned; null: every row.
  std::shared_ptr<const Filter> filter;
  /// Output columns; null: every column of the table.
  std::shared_ptr<const Projection> projection;
  /// Rows to skip after filtering, and the most rows to return (SQL OFFSET / LIMIT).
  int64_t offset = 0;
  std::optional<int64_t> limit;
  /// Split stored batches so none is larger than this (0: as stored).
  int64_t max_batch_rows = 0;
  /// Only the rows at offsets [range_begin, range_end) of the snapshot (positions in
  /// scan order, deleted rows skipped; no end: the last row) are read; the filter,
  /// offset and limit apply to them: the row ranges that parallel readers split one
  /// scan into (riffledb.ray). The scan opens no fragment outside the range, which
  /// saves opening files only where Snapshot::Open left fragments unopened: above
  /// kEagerFragments (64) fragments, with batch counts in the manifest; a smaller
  /// version has every fragment opened when its snapshot is.
  int64_t range_begin = 0;
  std::optional<int64_t> range_end;
};

/// What a take returns.
struct TakeOptions {
  /// Output columns, bound to the snapshot's schema (Invalid otherwise); null: every
  /// column of the table.
  std::shared_ptr<const Projection> projection;
  /// Return binary/large_binary columns as binary_view and string/large_string as
  /// string_view whose data buffers are the table's own (no value is copied; see
  /// GatherRows). The returned batch keeps those buffers, and so the mapped files,
  /// alive. Expressions of the projection see the view columns.
  bool binary_views = false;
};

/// One version of a table, its fragments opened (memory-mapped for a directory) when
/// first read. Immutable to its users and thread-safe; keeps the files it opened mapped
/// for as long as it lives, so a reader holding a snapshot sees exactly that version
/// whatever is written afterwards (a fragment not opened yet must still exist when it is
/// first read: cleanup_old_versions removes the files of old versions).
class Snapshot : public std::enable_shared_from_this<Snapshot> {
 public:
  /// A version of at most this many fragments has them all opened by Open.
  static constexpr size_t kEagerFragments = 64;

  /// The snapshot of `manifest`. Fragments are opened (mapped, validated) by Open when
  /// there are at most kEagerFragments of them, or when the manifest does not record
  /// their batch count (format 1, early format 2); the others on first read, so that
  /// opening a table of 10,000 small appends does not open 10,000 files. With `previous`
  /// (a snapshot of the same table), the fragments both share, same file and same
  /// deletion file at the same position, are taken from it, opened or not: a commit's
  /// new snapshot costs what changed, not the size of the table.
  static arrow::Result<std::shared_ptr<const Snapshot>> Open(
      std::shared_ptr<Store> store, format::Manifest manifest,
      const Snapshot* previous = nullptr);

  const format::Manifest& manifest() const { return manifest_; }
  const std::shared_ptr<Store>& store() const { return store_; }
  uint64_t version() const { return manifest_.version; }
  const std::shared_ptr<arrow::Schema>& schema() const { return manifest_.schema; }
  int64_t num_rows() const { return fragment_starts_.back(); }

  /// Rows where `filter` (bound to schema()) is true; all rows when null. Reads only the
  /// filter's columns and copies no row.
  arrow::Result<int64_t> CountRows(const std::shared_ptr<const Filter>& filter) const;
  /// The schema a scan with these options returns.
  arrow::Result<std::shared_ptr<arrow::Schema>> ScanSchema(
      const ScanOptions& options) const;
  /// Streams the matching rows in scan order. The reader keeps the snapshot (and the
  /// options' filter and projection) alive.
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> Scan(
      const ScanOptions& options) const;

  /// IOError naming the file if one of this version's mapped files was found truncated
  /// under its readers (io/mapped_file.h). One atomic load when none ever was.
  arrow::Status CheckMappedFiles() const;
  /// Fragments not opened yet (see Open).
  size_t unopened_fragments() const { return unopened_.load(std::memory_order_relaxed); }
  /// Opens every fragment not opened yet, in order: what verify and restore check. The
  /// first failure is returned (its fragment stays unopened).
  arrow::Status OpenAll() const;

  /// Rows at `offsets` (positions in scan order), in the order given, duplicates allowed.
  /// IndexError naming the first offset outside [0, num_rows()).
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeOffsets(
      std::span<const int64_t> offsets, const TakeOptions& options) const;
  /// Rows with these `_rowid`s, in the order given. IndexError naming the first id that
  /// is not a live row of this version. `_rowoffset` may be projected in both takes.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeRowIds(
      std::span<const uint64_t> row_ids, const TakeOptions& options) const;

  /// Row ids of the rows at `offsets` (bounds-checked as TakeOffsets).
  arrow::Result<std::vector<uint64_t>> RowIdsOfOffsets(
      std::span<const int64_t> offsets) const;
  /// Sorted physical rows deleted from the i-th fragment of manifest() (null: none).
  /// Opens the fragment if it is not yet.
  arrow::Result<std::shared_ptr<const std::vector<uint32_t>>> DeletedRows(size_t i) const;

  /// Data that layers above derive from this snapshot (a permutation table's split
  /// index, say), kept with it so that it is computed once: `key` is the address of a
  /// tag of the deriving code; null when nothing was set. Thread-safe.
  std::shared_ptr<const void> Derived(const void* key) const;
  void SetDerived(const void* key, std::shared_ptr<const void> value) const;

 private:
  struct Fragment {
    uint32_t id;
    int64_t physical_rows;
    int32_t first_chunk;  // index of its first batch in chunks_
    int32_t num_chunks;   // its batches
    // Set once, when the fragment is opened (by Open or by EnsureOpen), and read only
    // after opened_[i] is seen true.
    mutable std::shared_ptr<const FragmentData> data;
    mutable std::shared_ptr<const std::vector<uint32_t>> deleted;  // sorted; may be null
  };
  class ScanReader;  // scan.cc

  Snapshot() = default;
  // Opens fragment `f` unless it is open: its file mapped and validated, its deletions
  // read, its batches published in chunks_ and column_chunks_. Thread-safe; after it
  // returns OK, fragments_[f].data is set. The check is one acquire load.
  arrow::Status EnsureOpen(size_t f) const {
    if (opened_[f].load(std::memory_order_acquire)) return arrow::Status::OK();
    return OpenLazily(f);
  }
  arrow::Status OpenLazily(size_t f) const;
  // Fills fragment f's data, deletions and chunk slots. Caller holds open_mu_ (or is
  // Open, before the snapshot is shared).
  void Publish(size_t f, std::shared_ptr<const FragmentData> data,
               std::shared_ptr<const std::vector<uint32_t>> deleted) const;
  // Index in fragments_ of the fragment holding live row `offset` (in range).
  size_t FragmentOf(int64_t offset) const;
  // Physical row of the `live`-th live row of fragment `f`.
  int64_t PhysicalRow(const Fragment& fragment, int64_t live) const;
  ChunkRow ChunkOf(const Fragment& fragment, int64_t physical_row) const;
  // Checks that `projection` (null: every column) was bound to schema() and returns it.
  arrow::Result<const Projection*> TakeProjection(const TakeOptions& options) const;
  // The projection's needed columns at `refs`; row ids and offsets are read only if the
  // projection needs them.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Gather(
      std::span<const ChunkRow> refs, std::span<const uint64_t> row_ids,
      std::span<const int64_t> offsets, const Projection& projection,
      bool binary_views) const;

  std::shared_ptr<Store> store_;
  format::Manifest manifest_;
  std::shared_ptr<const Projection> all_columns_;  // the default projection
  std::vector<Fragment> fragments_;
  std::vector<int64_t>
      fragment_starts_;  // live-row offset of each fragment, plus the total
  // Every stored batch, in scan order, as its boxed arrays (FragmentData::columns; owned
  // by fragments_) and row count. Never a shared RecordBatch: see FragmentData.
  struct Chunk {
    const arrow::ArrayVector* columns;
    int64_t num_rows;
    // The cache its fragment is read through (FragmentData::cached), or null: then
    // every byte of its arrays is readable, else readers fetch rows first.
    io::CachedFile* cached;
  };
  // Fetches what reading `refs` (chunks of chunks_) of the columns `columns` needs from
  // the chunks read through a cache; nothing (one load) if no fragment is.
  arrow::Status FetchRows(std::span<const ChunkRow> refs,
                          std::span<const int> columns) const;
  // Sized by Open for every fragment; a fragment's slots are filled when it is opened
  // (null until then). Slots of different fragments are distinct objects, so one
  // fragment's publication never races with readers of another.
  mutable std::vector<Chunk> chunks_;
  // column_chunks_[c][k] is (*chunks_[k].columns)[c].
  mutable std::vector<std::vector<std::shared_ptr<arrow::Array>>> column_chunks_;
  // opened_[f]: fragments_[f] is opened and published (release / acquire).
  std::unique_ptr<std::atomic<bool>[]> opened_;
  mutable std::atomic<size_t> unopened_{0};
  // Whether a published fragment is read through a cache (Chunk::cached).
  mutable std::atomic<bool> has_cached_{false};
  mutable ForkSafeMutex open_mu_;  // serializes publication

  mutable ForkSafeMutex derived_mu_;
  // guarded by derived_mu_
  mutable std::vector<std::pair<const void*, std::shared_ptr<const void>>> derived_;
};

}  // namespace riffledb
