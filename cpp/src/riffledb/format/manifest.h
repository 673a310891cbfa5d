// Manifests: one JSON file per table version (docs/format.md, DESIGN.md decisions 3-4).
//
// `Manifest` is the logical content of a version, whatever the file layout: its
// `fragments` and `history` are the whole lists. Format 2 stores both lists as immutable
// segment files plus a short inline tail, so that a commit writes only what changed
// (format/segments.h); the segments a manifest was read from are kept beside the lists so
// that the next commit can reuse them.
#pragma once

#include <arrow/result.h>
#include <arrow/type.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "riffledb/util/cow_vector.h"

namespace riffledb::format {

/// The most rows a fragment may hold: a row id keeps the row within its fragment in 32
/// bits.
inline constexpr int64_t kMaxFragmentRows = int64_t{1} << 32;

/// The on-disk format version this build writes and the newest it reads.
constexpr int kFormatVersion = 2;

/// The size and CRC-32C of a committed file, recorded where the file is referenced
/// (format 2). Absent for files referenced by format-1 manifests and for memory tables.
struct FileDigest {
  int64_t size = 0;
  uint32_t crc32c = 0;
  bool operator==(const FileDigest&) const = default;
};

/// Rows of a fragment marked deleted, stored in their own immutable file.
struct DeletionFileInfo {
  std::string path;     ///< relative to the table directory
  int64_t num_deleted;  ///< number of distinct deleted rows in the file
  std::optional<FileDigest> digest;
  bool operator==(const DeletionFileInfo&) const = default;
};

/// An immutable data file (Arrow IPC file format, uncompressed) and its deletions.
struct FragmentInfo {
  uint32_t id = 0;            ///< row ids of this fragment are `id << 32 | row`
  std::string path;           ///< relative to the table directory
  int64_t physical_rows = 0;  ///< rows in the file, deleted ones included
  std::optional<DeletionFileInfo> deletion;
  std::optional<FileDigest> digest;  ///< of the data file
  /// Record batches in the data file (format 2 writers record it; absent in older
  /// manifests). Lets a reader lay out the table's batches without opening the file.
  std::optional<int64_t> num_batches;

  int64_t num_rows() const {
    return physical_rows - (deletion ? deletion->num_deleted : 0);
  }
  bool operator==(const FragmentInfo&) const = default;
};

/// The directory of a table that holds its fragment files: both stores name every
/// fragment file `data/<name>` (DataFilePath), and a fragment description may name no
/// other file (IsDataFilePath).
constexpr std::string_view kDataDir = "data";
/// `data/<name>`: the path of a fragment file relative to the table directory.
std::string DataFilePath(std::string_view name);
/// Whether `path` (relative to the table directory) names a file directly in `data/`.
bool IsDataFilePath(std::string_view path);

/// A fragment file written by WriteFragments (fragment.h), not yet part of any manifest.
struct WrittenFragment {
  std::string path;  ///< relative to the table directory, `data/<random id>.arrow`
  int64_t physical_rows = 0;
  std::optional<FileDigest> digest;  ///< of the file as written (none in memory)
  int64_t num_batches = 0;           ///< record batches in the file
  bool operator==(const WrittenFragment&) const = default;
};

/// Fragment files written for a table and not committed yet (Table::WriteFragments):
/// what a worker of a distributed write hands to the process that commits
/// (Table::CommitFragments). Value type; serialises to a compact JSON document
/// (docs/format.md, "Fragment descriptions") that crosses process and machine
/// boundaries, and is parsed back as untrusted input.
struct WrittenFragments {
  std::string table;          ///< the name of the table they were written for
  uint64_t base_version = 0;  ///< the table's newest version when they were written
  /// The schema of the files (names, types, nullability, metadata).
  std::shared_ptr<arrow::Schema> schema;
  std::vector<WrittenFragment> fragments;  ///< in write order

  int64_t num_rows() const;
  /// One description per file, each committable on its own; one of no file (which
  /// carries the schema) if there is none.
  std::vector<WrittenFragments> SplitByFile() const;
  /// One line of JSON, the schema as a base64 Arrow IPC schema message. Invalid if a
  /// field is out of range (what FromJson would reject).
  arrow::Result<std::string> ToJson() const;
  /// Parses and validates a description (untrusted: JSON syntax, the kind and format
  /// version, required keys and their types, row counts and sizes in range, paths of
  /// fragment files `data/...` relative to the table; a path named twice is refused by
  /// Table::CommitFragments, which sees every description). Errors are Invalid
  /// starting "Invalid fragment description: " and naming the key ("fragments[2].path").
  /// Never crashes.
  static arrow::Result<WrittenFragments> FromJson(std::string_view json);
};

/// One committed version as the history of a later one records it.
struct VersionRecord {
  uint64_t version = 0;
  int64_t timestamp_ms = 0;
  std::string operation;
  bool operator==(const VersionRecord&) const = default;
};

/// An immutable file holding a run of consecutive entries of a manifest list (format 2):
/// where it is, its digest, and its entries once read.
template <typename Entry>
struct Segment {
  std::string path;  ///< relative to the table directory
  FileDigest digest;
  int64_t count = 0;                                  ///< number of entries
  std::shared_ptr<const std::vector<Entry>> entries;  ///< null until read
};

/// One version of a table. Value type: copies share the fragment and history lists
/// (CowVector), so a copy, and an append to the copy, cost the same at 10 fragments or
/// 10,000.
struct Manifest {
  uint64_t version = 0;      ///< 1 for a new table, +1 per commit
  int64_t timestamp_ms = 0;  ///< milliseconds since the Unix epoch, at commit
  std::string operation;  ///< "create", "append", "overwrite", "delete" (informational)
  std::shared_ptr<arrow::Schema> schema;  ///< with field and schema metadata
  CowVector<FragmentInfo> fragments;      ///< in scan order; copies share it
  uint32_t next_fragment_id = 0;          ///< greater than every fragment id ever used
  /// Which table this is (optional): 32 lowercase hex digits drawn when the table is
  /// created and carried by every later version, so that a table dropped and created
  /// again under the same name is told from the one a reader held. Empty in manifests
  /// written before riffledb wrote it.
  std::string table_id;
  /// The versions before this one that it descends from, ascending (format 2; empty in
  /// format-1 manifests). A commit appends its base version's record.
  CowVector<VersionRecord> history;

  /// The format of the file this was read from; writers always write kFormatVersion.
  int format_version = kFormatVersion;
  /// How `fragments` and `history` were stored: segments holding a prefix of each list
  /// (the rest is inline). Set by reading and by committing, never by a writer's change:
  /// the next commit reuses every segment whose entries are unchanged.
  std::vector<Segment<FragmentInfo>> fragment_segments;
  std::vector<Segment<VersionRecord>> history_segments;
  /// The lists as they were read or committed, with next_fragment_id then: validated,
  /// and stored as `*_segments` plus the inline rest. Set with the segments (by reading
  /// and by committing) and carried by copies. While `fragments` and `history` extend
  /// them (CowVector::extends: they were only appended to), a commit validates and
  /// segments only the appended entries, so its cost does not grow with the table.
  /// Whoever sets `fragment_segments` from another manifest sets these three from it.
  /// A manifest built from scratch leaves them empty (everything is then checked).
  CowVector<FragmentInfo> stored_fragments;
  CowVector<VersionRecord> stored_history;
  uint32_t stored_next_fragment_id = 0;

  int64_t num_rows() const;
  VersionRecord record() const { return {version, timestamp_ms, operation}; }
  /// Records the lists as stored (the `stored_*` members): after reading or committing.
  void MarkStored() {
    stored_fragments = fragments;
    stored_history = history;
    stored_next_fragment_id = next_fragment_id;
  }
};

/// Serializes to the JSON text of docs/format.md. The schema is stored as a base64 Arrow
/// IPC schema message, so every type and all metadata round-trip exactly. Format 2: the
/// lists are written as `manifest.fragment_segments` / `history_segments` (which must
/// hold a prefix of each list, with their digests) plus the remaining entries inline, and
/// the text starts with its own CRC-32C.
arrow::Result<std::string> SerializeManifest(const Manifest& manifest);
/// Format 1, for tests of reading old tables.
arrow::Result<std::string> SerializeManifestV1(const Manifest& manifest);

/// Parses and validates a manifest (untrusted input): JSON syntax, required keys and
/// their types, format version, fragment ids unique and below next_fragment_id, row
/// counts in range, relative paths without `..` or a leading `/`. Errors are Invalid and
/// begin with `source` (the file name) so the user knows which file is corrupt. Never
/// crashes.
///
/// Format 2: the checksum is verified first (a mismatch is corruption). The result's
/// `fragments` and `history` hold only the inline entries; `fragment_segments` and
/// `history_segments` name the segments before them, with `entries` null: the caller
/// reads them (ParseFragmentSegment, ParseHistorySegment) and calls ResolveManifest.
arrow::Result<Manifest> ParseManifest(std::string_view json, std::string_view source);

/// Segment files: JSON `{"format_version": 2, "kind": ..., "entries": [...]}`, one entry
/// per line. The caller checks the file against the segment's digest first.
arrow::Result<std::string> SerializeFragmentSegment(
    const std::vector<FragmentInfo>& entries);
arrow::Result<std::string> SerializeHistorySegment(
    const std::vector<VersionRecord>& entries);
arrow::Result<std::vector<FragmentInfo>> ParseFragmentSegment(std::string_view json,
                                                              std::string_view source);
arrow::Result<std::vector<VersionRecord>> ParseHistorySegment(std::string_view json,
                                                              std::string_view source);

/// Completes a parsed format-2 manifest whose segments' `entries` are all set: prepends
/// them to the inline entries and validates the whole (ids unique, row counts, history
/// ascending and below `version`).
arrow::Status ResolveManifest(Manifest* manifest, std::string_view source);

/// Every file `manifest` references, relative to the table directory: fragment files,
/// deletion files and segment files.
std::vector<std::string> ReferencedFiles(const Manifest& manifest);

}  // namespace riffledb::format
