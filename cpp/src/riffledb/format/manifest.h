// Manifests: one JSON file per table version (docs/format.md, DESIGN.md decisions 3-4).
#pragma once

#include <arrow/result.h>
#include <arrow/type.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace riffledb::format {

/// The on-disk format version this build writes and the newest it reads.
constexpr int kFormatVersion = 1;

/// Rows of a fragment marked deleted, stored in their own immutable file.
struct DeletionFileInfo {
  std::string path;     ///< relative to the table directory
  int64_t num_deleted;  ///< number of distinct deleted rows in the file
};

/// An immutable data file (Arrow IPC file format, uncompressed) and its deletions.
struct FragmentInfo {
  uint32_t id = 0;            ///< row ids of this fragment are `id << 32 | row`
  std::string path;           ///< relative to the table directory
  int64_t physical_rows = 0;  ///< rows in the file, deleted ones included
  std::optional<DeletionFileInfo> deletion;

  int64_t num_rows() const {
    return physical_rows - (deletion ? deletion->num_deleted : 0);
  }
};

/// One version of a table. Value type; cheap to copy relative to I/O.
struct Manifest {
  uint64_t version = 0;      ///< 1 for a new table, +1 per commit
  int64_t timestamp_ms = 0;  ///< milliseconds since the Unix epoch, at commit
  std::string operation;  ///< "create", "append", "overwrite", "delete" (informational)
  std::shared_ptr<arrow::Schema> schema;  ///< with field and schema metadata
  std::vector<FragmentInfo> fragments;    ///< in scan order
  uint32_t next_fragment_id = 0;          ///< greater than every fragment id ever used

  int64_t num_rows() const;
};

/// Serializes to the JSON text of docs/format.md. The schema is stored as a base64 Arrow
/// IPC schema message, so every type and all metadata round-trip exactly.
arrow::Result<std::string> SerializeManifest(const Manifest& manifest);

/// Parses and validates a manifest (untrusted input): JSON syntax, required keys and
/// their types, format version, fragment ids unique and below next_fragment_id, row
/// counts in range, relative paths without `..` or a leading `/`. Errors are Invalid and
/// begin with `source` (the file name) so the user knows which file is corrupt. Never
/// crashes.
arrow::Result<Manifest> ParseManifest(std::string_view json, std::string_view source);

}  // namespace riffledb::format
