// Fragment files: immutable Arrow IPC files read through memory maps, and deletion files.
#pragma once

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace riffledb::format {

/// Options for writing fragments.
struct FragmentWriteOptions {
  /// A new fragment file is started after this many rows.
  int64_t max_rows_per_fragment = 1 << 20;
  /// Incoming batches are coalesced so each record batch in the file has at least this
  /// many rows (except the last of a fragment), which keeps takes cheap however the input
  /// was chunked; at most this many rows are buffered in memory at once (besides one
  /// input batch).
  int64_t min_rows_per_batch = 64 * 1024;
};

/// A fragment file written by WriteFragments, not yet part of any manifest.
struct WrittenFragment {
  std::string path;  ///< relative to the table directory, `data/<random id>.arrow`
  int64_t physical_rows = 0;
};

/// Streams `reader` into one or more fragment files under `table_dir/data/`. Every batch
/// must have exactly `schema` (names, types, nullability; metadata of the first is kept):
/// otherwise Invalid naming both schemas, and files written so far are removed. Files are
/// fsynced before returning. Holds at most about one fragment batch in memory.
/// An empty input writes no file and returns an empty vector.
arrow::Result<std::vector<WrittenFragment>> WriteFragments(
    const std::string& table_dir, const std::shared_ptr<arrow::Schema>& schema,
    arrow::RecordBatchReader* reader, const FragmentWriteOptions& options = {});

/// A fragment file opened through a memory map. Immutable and thread-safe; the batches
/// stay valid (they keep the map alive) after the reader is destroyed.
class FragmentFile {
 public:
  /// Opens and validates `path` (absolute): IPC file magic and footer, schema equal to
  /// `schema` (ignoring metadata), total rows equal to `expected_rows`. Corrupt or
  /// truncated files give IOError/Invalid naming the file, never a crash: every batch is
  /// validated (`ValidateFull`) when opened.
  static arrow::Result<std::shared_ptr<FragmentFile>> Open(
      const std::string& path, const std::shared_ptr<arrow::Schema>& schema,
      int64_t expected_rows);

  const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches() const {
    return batches_;
  }
  /// batch_offsets()[i] is the row index of batches()[i]'s first row; one extra entry at
  /// the end equals num_rows().
  const std::vector<int64_t>& batch_offsets() const { return batch_offsets_; }
  int64_t num_rows() const { return batch_offsets_.back(); }

 private:
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches_;
  std::vector<int64_t> batch_offsets_;
};

/// Writes a deletion file: `rows` (strictly increasing row indexes within a fragment) as
/// an Arrow IPC file with one non-null uint32 column `row`. `path` is absolute; written
/// with CreateFileExclusive semantics.
arrow::Status WriteDeletionFile(const std::string& path,
                                const std::vector<uint32_t>& rows);

/// Reads and validates a deletion file: strictly increasing, below `physical_rows`, count
/// equal to `expected_count`; errors name the file.
arrow::Result<std::vector<uint32_t>> ReadDeletionFile(const std::string& path,
                                                      int64_t physical_rows,
                                                      int64_t expected_count);

}  // namespace riffledb::format
