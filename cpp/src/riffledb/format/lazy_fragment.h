// Fragment files read through a cache of a remote store (io/file_cache.h): opening one
// fetches its footer and its batches' metadata, nothing else; a take then fetches the
// bytes of the rows it reads (issue #11, item 3), and a scan the columns it reads.
//
// The arrays of such a fragment are zero-copy views of the cache's map, built from the
// IPC metadata without touching their data, so they are checked without reading it
// (buffer sizes against lengths, every buffer inside its batch's body); the offsets of
// variable-length values are checked when they are fetched, for the rows read. Types
// whose rows cannot be fetched one by one (dictionaries, unions, maps, views, run-end
// encoded) are read whole and validated as a local file is.
#pragma once

#include <arrow/array.h>
#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "riffledb/format/fragment.h"
#include "riffledb/io/file_cache.h"

namespace riffledb::format {

/// A record batch's place in an Arrow IPC file, from its footer.
struct IpcBlock {
  int64_t offset = 0;
  int32_t metadata_length = 0;
  int64_t body_length = 0;
};

/// The record batch blocks of an Arrow IPC file's footer: `footer` is the Footer
/// flatbuffer, read from `footer_offset` of the file (blocks must end before it).
/// Untrusted input: every offset is checked; Invalid saying what is wrong otherwise.
/// NotImplemented if the file has dictionary batches.
arrow::Result<std::vector<IpcBlock>> ParseIpcFooter(std::span<const uint8_t> footer,
                                                    int64_t footer_offset);

/// Whether rows of `type` can be fetched one by one (see above).
bool RowsFetchable(const arrow::DataType& type);

/// Opens the fragment file `path` through `file`, its cache, as OpenFragmentFile does a
/// local one: same checks of magic, schema, rows and size (`digest`), same errors
/// naming `path`. Fetches the footer and the batches' metadata; the data only if the
/// schema has a type RowsFetchable refuses (then the whole file, validated in full).
arrow::Result<std::shared_ptr<FragmentData>> OpenCachedFragmentFile(
    const std::shared_ptr<io::CachedFile>& file, const std::string& path,
    const std::shared_ptr<arrow::Schema>& schema, int64_t expected_rows,
    const FileDigest& digest);

/// The bytes that reading some rows of arrays of cached fragments needs, fetched in as
/// few rounds as the nesting needs (one for fixed-width values; one more for each level
/// of variable-length values, whose offsets are read first). The requests of one round
/// go out together, across files (io::CachedFile::EnsureMany).
class RowFetchPlan {
 public:
  /// Rows `rows` (any order, duplicates allowed) of `array`, a column of a batch of
  /// `file`'s fragment.
  void AddRows(io::CachedFile* file, const std::shared_ptr<arrow::ArrayData>& array,
               std::span<const int64_t> rows);
  /// Every row of `array`.
  void AddAll(io::CachedFile* file, const std::shared_ptr<arrow::ArrayData>& array);

  /// Fetches what is absent. Offsets that are not increasing or point outside their
  /// values are Invalid (ErrorKind::kCorruption) naming the file: after Run() returns
  /// OK, reading the rows added reads only fetched bytes inside their buffers.
  arrow::Status Run();

 private:
  struct Item {
    io::CachedFile* file;
    const arrow::ArrayData* array;
    std::vector<std::pair<int64_t, int64_t>> rows;  // [begin, end) intervals
  };
  // Adds the ranges `item` needs now, and the items of its next round.
  arrow::Status Expand(const Item& item, bool offsets_fetched, std::vector<Item>* next);

  std::vector<std::shared_ptr<arrow::ArrayData>> keep_;  // what items_ point into
  std::vector<Item> items_;
  std::vector<std::pair<io::CachedFile*, std::vector<io::ByteRange>>> ranges_;
  // Bytes [begin, end) of `buffer`, a buffer of an array of `file`.
  arrow::Status AddRange(io::CachedFile* file, const arrow::Buffer& buffer, int64_t begin,
                         int64_t end);
};

}  // namespace riffledb::format
