// Fragment files: immutable Arrow IPC files read through memory maps, and deletion files.
#pragma once

#include <arrow/ipc/options.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "riffledb/format/manifest.h"
#include "riffledb/io/file_cache.h"
#include "riffledb/io/filesystem.h"

namespace riffledb::format {

/// How fragment files are read (eagerly or lazily): no threads, and buffers realigned by
/// copying only when a file's are not (ours always are).
arrow::ipc::IpcReadOptions FragmentReadOptions();

/// Options for writing fragments.
struct FragmentWriteOptions {
  /// A new fragment file is started after this many rows.
  int64_t max_rows_per_fragment = 1 << 20;
  /// Incoming batches are coalesced so each record batch in the file has at least this
  /// many rows (except the last of a fragment), which keeps takes cheap however the input
  /// was chunked; at most this many rows are buffered in memory at once (besides one
  /// input batch).
  int64_t min_rows_per_batch = 64 * 1024;
  /// Batches are coalesced only up to this many bytes: small batches of large values
  /// stay apart rather than be concatenated past the 2 GiB that 32-bit offsets of
  /// `binary`/`string` columns can address.
  int64_t max_bytes_per_batch = int64_t{64} << 20;
};

/// Cuts a stream of record batches into fragments of at most max_rows_per_fragment rows,
/// coalescing small input batches into batches of at least min_rows_per_batch rows (and
/// at most max_bytes_per_batch bytes, unless one input batch alone is larger). The one
/// coalescer of both stores: it hands each output batch to `emit` and calls
/// `end_fragment` after the last batch of each fragment. Holds at most one output
/// batch's worth of input.
class BatchCoalescer {
 public:
  using Emit = std::function<arrow::Status(std::shared_ptr<arrow::RecordBatch>)>;
  using EndFragment = std::function<arrow::Status()>;

  /// Invalid if the options are out of range.
  static arrow::Status Validate(const FragmentWriteOptions& options);

  BatchCoalescer(const FragmentWriteOptions& options, Emit emit, EndFragment end_fragment)
      : options_(options),
        emit_(std::move(emit)),
        end_fragment_(std::move(end_fragment)) {}

  arrow::Status Add(const std::shared_ptr<arrow::RecordBatch>& batch);
  /// Emits what is pending and ends the last fragment (if it has rows).
  arrow::Status Finish();

 private:
  arrow::Status Flush();

  const FragmentWriteOptions options_;
  const Emit emit_;
  const EndFragment end_fragment_;
  std::vector<std::shared_ptr<arrow::RecordBatch>> pending_;
  int64_t pending_rows_ = 0;
  int64_t pending_bytes_ = 0;
  int64_t fragment_rows_ = 0;  // emitted into the current fragment
};

/// Streams `reader` into one or more fragment files under `table_dir/data/`, through
/// `fs`. Every batch must have exactly `schema` (names, types, nullability; metadata of
/// the first is kept): otherwise Invalid naming both schemas, and files written so far
/// are removed. Files are fsynced before returning. Holds at most about one fragment
/// batch in memory. An empty input writes no file and returns an empty vector.
arrow::Result<std::vector<WrittenFragment>> WriteFragments(
    io::FileSystem& fs, const std::string& table_dir,
    const std::shared_ptr<arrow::Schema>& schema, arrow::RecordBatchReader* reader,
    const FragmentWriteOptions& options = {});

/// The readable content of one fragment, a file's or a memory table's: its record
/// batches (memory-mapped for files) and where each starts. Immutable and thread-safe;
/// the batches keep their memory (the map) alive.
struct FragmentData {
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  /// columns[b] holds batches[b]'s arrays, boxed once when the fragment is opened.
  /// Readers use these, never batches[b]->column(): Arrow's RecordBatch::column() locks a
  /// mutex inside the batch, which a fork() taken while another thread reads could leave
  /// locked in the child, where that shared batch would hang the first reader (DESIGN.md
  /// decision 9).
  std::vector<arrow::ArrayVector> columns;
  /// batch_offsets[i] is the row index of batches[i]'s first row; one extra entry at the
  /// end equals num_rows().
  std::vector<int64_t> batch_offsets;
  /// The file the batches map (null for a memory table): io::CheckMapping tells whether
  /// it shrank under its readers.
  std::shared_ptr<arrow::io::RandomAccessFile> source;
  /// For a file read through a cache (a remote store's, io::FileSystem::OpenCached):
  /// the cache. Its arrays are then views of the cache's map whose bytes may not be
  /// fetched yet: readers fetch the rows they read first (format/lazy_fragment.h,
  /// RowFetchPlan). Null otherwise: every byte is readable.
  std::shared_ptr<io::CachedFile> cached;

  static std::shared_ptr<FragmentData> Make(
      std::vector<std::shared_ptr<arrow::RecordBatch>> batches);
  int64_t num_rows() const { return batch_offsets.back(); }
};

/// Opens and validates the fragment file `path` through `fs` (memory-mapped locally): IPC
/// file magic and footer, schema equal to `schema` (ignoring metadata), total rows equal
/// to `expected_rows`. Corrupt or truncated files give IOError/Invalid naming the file,
/// never a crash: every batch is validated (`ValidateFull`) when opened.
/// With `digest`, the file's size must match it (its CRC is checked by VerifyFile only:
/// that reads every byte, which a memory-mapped open never does).
arrow::Result<std::shared_ptr<FragmentData>> OpenFragmentFile(
    io::FileSystem& fs, const std::string& path,
    const std::shared_ptr<arrow::Schema>& schema, int64_t expected_rows,
    const std::optional<FileDigest>& digest = std::nullopt);

/// What a fragment file holds, as far as a description (WrittenFragment) can say,
/// found without reading its data: from a file's size and footer (CheckFragmentFile) or
/// from a memory table's batches. Members left unset are not compared.
struct FragmentFacts {
  std::optional<int64_t> size;            ///< bytes of the file
  std::shared_ptr<arrow::Schema> schema;  ///< null: not known
  std::optional<int64_t> num_batches;
  std::optional<int64_t> rows;
};

/// The one comparison of a fragment file with its description, for both stores: OK if
/// `found` agrees with `described` and `schema` (the description's; metadata ignored),
/// else Invalid "Fragment file '<described.path>' does not match its description: ..."
/// naming the first difference (size, when the description has one; schema; record
/// batches; rows).
arrow::Status CheckDescribedFragment(const WrittenFragment& described,
                                     const arrow::Schema& schema,
                                     const FragmentFacts& found);

/// Invalid "Fragment file '<path>' does not exist in the table at '<location>': ...",
/// the error of both stores for a described file they do not hold.
arrow::Status DescribedFragmentMissing(const std::string& path,
                                       const std::string& location);

/// Checks, without reading its data, that the file at `path` is the fragment file
/// `described` describes, with `schema` (the description's): its size (when
/// described), the Arrow IPC file magic, then its schema, record batches and rows from
/// the footer and each batch's metadata, compared by CheckDescribedFragment. The check
/// of a file named by an untrusted description before it is committed (the data and
/// its CRC are checked by reads and VerifyFile). Invalid naming `described.path`
/// otherwise.
arrow::Status CheckFragmentFile(io::FileSystem& fs, const std::string& path,
                                const WrittenFragment& described,
                                const arrow::Schema& schema);

/// Writes a deletion file: `rows` (strictly increasing row indexes within a fragment) as
/// an Arrow IPC file with one non-null uint32 column `row`, created exclusively through
/// `fs`. Returns its digest.
arrow::Result<FileDigest> WriteDeletionFile(io::FileSystem& fs, const std::string& path,
                                            const std::vector<uint32_t>& rows);

/// Reads and validates a deletion file: its digest when given (always for format 2),
/// strictly increasing, below `physical_rows`, count equal to `expected_count`; errors
/// name the file.
arrow::Result<std::vector<uint32_t>> ReadDeletionFile(
    io::FileSystem& fs, const std::string& path, int64_t physical_rows,
    int64_t expected_count, const std::optional<FileDigest>& digest = std::nullopt);

/// Corruption naming `path` unless `bytes` has exactly `digest`'s size and CRC-32C.
arrow::Status CheckDigest(const arrow::Buffer& bytes, const FileDigest& digest,
                          const std::string& path);
/// Reads the whole file through `fs` and checks it against `digest` (verify).
arrow::Status VerifyFile(io::FileSystem& fs, const std::string& path,
                         const FileDigest& digest);

}  // namespace riffledb::format
