// Where a table's versions and files live: a directory on disk or process memory.
//
// The table layer sees one interface; the two backends differ only in where bytes go.
// A DirectoryStore keeps nothing in memory but caches; a MemoryStore (`memory://`) holds
// the Arrow batches themselves. Both are thread-safe.
#pragma once

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/status.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "riffledb/format/fragment.h"
#include "riffledb/format/manifest.h"
#include "riffledb/format/table_dir.h"
#include "riffledb/io/filesystem.h"
#include "riffledb/util/fork_safe_mutex.h"

namespace riffledb {

/// The readable content of one fragment (format/fragment.h): the one opened-fragment
/// type of both stores.
using FragmentData = format::FragmentData;

/// A file of a table's store that cleanup may remove (Store::ListFiles).
struct StoredFile {
  std::string path;       ///< relative to the table, as manifests name files
  int64_t size = 0;       ///< bytes
  int64_t mtime_ms = -1;  ///< last modification, ms since the Unix epoch; -1 if unknown
};

class Store {
 public:
  virtual ~Store() = default;

  /// A description for error messages ("/data/db/t.riffle" or "memory://t").
  virtual const std::string& location() const = 0;

  virtual arrow::Result<std::vector<uint64_t>> ListVersions() = 0;
  /// The newest version, 0 if there is none. May be cheaper than ListVersions.
  virtual arrow::Result<uint64_t> LatestVersion() {
    ARROW_ASSIGN_OR_RAISE(auto versions, ListVersions());
    return versions.empty() ? 0 : versions.back();
  }
  virtual arrow::Result<format::Manifest> ReadManifest(uint64_t version) = 0;
  /// As ReadManifest, but from storage even when a copy is cached: for checks (verify,
  /// cleanup) that must see what is on disk now, damage included.
  virtual arrow::Result<format::Manifest> ReadStoredManifest(uint64_t version) {
    return ReadManifest(version);
  }
  /// Whether `version` on storage is still of the table this store has read: false once
  /// the table was dropped and another one created under its name (`table_id`), or the
  /// version is gone. One manifest read (for a directory); true where a table cannot be
  /// replaced under its store (memory).
  virtual arrow::Result<bool> SameTableAt(uint64_t version) { return true; }
  /// Publishes `manifest` as its version; AlreadyExists if that version exists.
  virtual arrow::Status Commit(const format::Manifest& manifest) = 0;

  /// Writes the stream as new fragment files (not yet referenced by any version).
  virtual arrow::Result<std::vector<format::WrittenFragment>> WriteFragments(
      const std::shared_ptr<arrow::Schema>& schema, arrow::RecordBatchReader* reader) = 0;
  virtual arrow::Result<std::shared_ptr<const FragmentData>> OpenFragment(
      const format::FragmentInfo& info, const std::shared_ptr<arrow::Schema>& schema) = 0;
  /// Checks that the file `fragment` describes (written by WriteFragments, maybe by
  /// another process) is in this store as described, without reading its data: the
  /// check Table::CommitFragments makes before it references the file. Invalid naming
  /// the file if it is missing (format::DescribedFragmentMissing) or differs
  /// (format::CheckDescribedFragment, the comparison of both stores).
  virtual arrow::Status CheckWrittenFragment(const format::WrittenFragment& fragment,
                                             const arrow::Schema& schema) = 0;
  /// Whether the fragment or deletion file at `path` (relative) exists; one stat, no
  /// read.
  virtual arrow::Result<bool> HasFile(const std::string& path) = 0;
  /// Writes a deletion file; returns its path relative to the store and its digest.
  virtual arrow::Result<format::DeletionFileInfo> WriteDeletionFile(
      const std::vector<uint32_t>& rows) = 0;
  virtual arrow::Result<std::shared_ptr<const std::vector<uint32_t>>> ReadDeletionFile(
      const format::DeletionFileInfo& info, int64_t physical_rows) = 0;
  /// Best-effort removal of files a failed or lost commit wrote.
  virtual void RemoveUnreferenced(const std::vector<std::string>& paths) = 0;

  // -- Maintenance (Table::CleanupOldVersions)

  /// Every file a version may reference or an unfinished write may have left: fragment,
  /// deletion and segment files (temporary ones included) and the temporary files of
  /// exclusive creates in `_versions/`. Never a committed manifest.
  virtual arrow::Result<std::vector<StoredFile>> ListFiles() = 0;
  /// Removes the manifest of `version` (never the only one: the caller keeps the
  /// newest). OK if it is already gone.
  virtual arrow::Status RemoveVersion(uint64_t version) = 0;
  /// Removes a file listed by ListFiles; OK if it is already gone.
  virtual arrow::Status RemoveFile(const std::string& path) = 0;
  /// Reads every byte of the file at `path` (relative) and checks it against `digest`;
  /// a mismatch is ErrorKind::kCorruption naming the file.
  virtual arrow::Status VerifyFile(const std::string& path,
                                   const format::FileDigest& digest) = 0;
};

/// A table directory (docs/format.md) on the storage seam. Opened fragments and deletion
/// files are shared by path while in use: files are immutable, so a shared entry never
/// goes stale.
///
/// A dropped table (its directory renamed away, db/README.md) is never recreated by a
/// write: only the commit of version 1 creates `_versions/`, and once this store has seen
/// the table exist, a write or listing that finds `_versions/` gone fails with
/// Invalid "The table at '<path>' was dropped" (ErrorKind::kTableNotFound).
///
/// Nor does it mix two tables that had the same name: a table dropped and created again
/// (by another handle, another process) has another `table_id` (docs/format.md). A read
/// that fails on a file of the old table says it was "dropped and created again" (also
/// kTableNotFound), and a commit built on the old table's manifest is refused as one
/// that lost a race (AlreadyExists: Table's commits rebase on the newest version).
class DirectoryStore : public Store {
 public:
  explicit DirectoryStore(std::string path,
                          std::shared_ptr<io::FileSystem> fs = io::Local());

  const std::shared_ptr<io::FileSystem>& fs() const { return dir_.fs(); }

  const std::string& location() const override { return dir_.path(); }
  arrow::Result<std::vector<uint64_t>> ListVersions() override;
  /// Without listing `_versions/` (thousands of manifests) when this store has seen a
  /// version: versions are committed one after the other, so the newest is found by
  /// checking that the last one seen still exists and probing the ones after it.
  arrow::Result<uint64_t> LatestVersion() override;
  arrow::Result<format::Manifest> ReadManifest(uint64_t version) override;
  arrow::Result<format::Manifest> ReadStoredManifest(uint64_t version) override;
  arrow::Result<bool> SameTableAt(uint64_t version) override;
  arrow::Status Commit(const format::Manifest& manifest) override;
  arrow::Result<std::vector<format::WrittenFragment>> WriteFragments(
      const std::shared_ptr<arrow::Schema>& schema,
      arrow::RecordBatchReader* reader) override;
  arrow::Result<std::shared_ptr<const FragmentData>> OpenFragment(
      const format::FragmentInfo& info,
      const std::shared_ptr<arrow::Schema>& schema) override;
  arrow::Status CheckWrittenFragment(const format::WrittenFragment& fragment,
                                     const arrow::Schema& schema) override;
  arrow::Result<bool> HasFile(const std::string& path) override;
  arrow::Result<format::DeletionFileInfo> WriteDeletionFile(
      const std::vector<uint32_t>& rows) override;
  arrow::Result<std::shared_ptr<const std::vector<uint32_t>>> ReadDeletionFile(
      const format::DeletionFileInfo& info, int64_t physical_rows) override;
  void RemoveUnreferenced(const std::vector<std::string>& paths) override;
  arrow::Result<std::vector<StoredFile>> ListFiles() override;
  arrow::Status RemoveVersion(uint64_t version) override;
  arrow::Status RemoveFile(const std::string& path) override;
  arrow::Status VerifyFile(const std::string& path,
                           const format::FileDigest& digest) override;

 private:
  // The newest manifests read or committed, kept parsed: a commit starts from the
  // latest, which its previous commit wrote. Immutable once committed.
  static constexpr size_t kCachedManifests = 4;
  void CacheManifest(format::Manifest manifest);

  // Whether this store has seen a version and `_versions/` is now gone.
  bool Dropped();
  arrow::Status DroppedError(const std::string& cause) const;
  // Whether the newest manifest is another table's than the one this store read (the
  // table was dropped and created again). Reads it: for failure paths.
  bool Replaced();
  // `cause` as the "was dropped" error if the table was dropped (or dropped and created
  // again), else `cause`.
  arrow::Status IfDropped(const arrow::Status& cause);
  // OK if `manifest` builds on the table's version before it; AlreadyExists (a lost
  // race: rebase) if that version is another table's or gone. One manifest read.
  arrow::Status CheckBase(const format::Manifest& manifest);
  // Takes the table_id of a manifest read from storage or committed: the first one seen
  // is this store's table; another one (the table was created again under its name)
  // replaces it, and the manifests cached of the old one are forgotten.
  void NoteTable(const format::Manifest& manifest);
  void NoteTableLocked(const format::Manifest& manifest);  // requires mu_
  // Forgets the cached manifests and the table_id (a commit found another table).
  void ForgetTable();
  std::string KnownTableId();  // table_id_, under mu_
  // OK if the table exists or is being created (this store has seen no version yet).
  arrow::Status CheckNotDropped();

  format::TableDir dir_;
  // Whether this store has seen a committed version: from then on a missing
  // `_versions/` means the table was dropped, not that it is being created.
  std::atomic<bool> seen_version_{false};
  // The newest version this store has listed, read or committed (0: none yet).
  std::atomic<uint64_t> latest_seen_{0};
  void SawVersion(uint64_t version);
  ForkSafeMutex mu_;
  // guarded by mu_. Weak: a file stays mapped while some snapshot uses it, no longer.
  std::map<std::string, std::weak_ptr<const FragmentData>> fragments_;
  std::map<std::string, std::weak_ptr<const std::vector<uint32_t>>> deletions_;
  std::map<uint64_t, std::shared_ptr<const format::Manifest>> manifests_;
  // The table_id of the table the manifests are of ("": none seen yet, or the table's
  // manifests have none: written before riffledb wrote one).
  std::string table_id_;
};

/// A table held in process memory (`memory://`). Versions and files are kept for the life
/// of the store, so checkout works as for a directory.
class MemoryStore : public Store {
 public:
  explicit MemoryStore(std::string location) : location_(std::move(location)) {}

  /// Its database dropped it: commits through handles still holding it fail with
  /// Invalid "The table at '<location>' was dropped" (ErrorKind::kTableNotFound), as a
  /// directory table's do; what they read stays readable.
  void MarkDropped();

  const std::string& location() const override { return location_; }
  arrow::Result<std::vector<uint64_t>> ListVersions() override;
  arrow::Result<format::Manifest> ReadManifest(uint64_t version) override;
  arrow::Status Commit(const format::Manifest& manifest) override;
  arrow::Result<std::vector<format::WrittenFragment>> WriteFragments(
      const std::shared_ptr<arrow::Schema>& schema,
      arrow::RecordBatchReader* reader) override;
  arrow::Result<std::shared_ptr<const FragmentData>> OpenFragment(
      const format::FragmentInfo& info,
      const std::shared_ptr<arrow::Schema>& schema) override;
  arrow::Status CheckWrittenFragment(const format::WrittenFragment& fragment,
                                     const arrow::Schema& schema) override;
  arrow::Result<bool> HasFile(const std::string& path) override;
  arrow::Result<format::DeletionFileInfo> WriteDeletionFile(
      const std::vector<uint32_t>& rows) override;
  arrow::Result<std::shared_ptr<const std::vector<uint32_t>>> ReadDeletionFile(
      const format::DeletionFileInfo& info, int64_t physical_rows) override;
  void RemoveUnreferenced(const std::vector<std::string>& paths) override;
  /// Files have their creation time as mtime and their buffers' bytes as size.
  arrow::Result<std::vector<StoredFile>> ListFiles() override;
  arrow::Status RemoveVersion(uint64_t version) override;
  arrow::Status RemoveFile(const std::string& path) override;
  /// Memory holds no file to damage.
  arrow::Status VerifyFile(const std::string& path,
                           const format::FileDigest& digest) override {
    return arrow::Status::OK();
  }

 private:
  const std::string location_;
  ForkSafeMutex mu_;
  // guarded by mu_
  std::map<uint64_t, format::Manifest> versions_;
  std::map<std::string, std::shared_ptr<const FragmentData>> fragments_;
  std::map<std::string, std::shared_ptr<const std::vector<uint32_t>>> deletions_;
  // Creation time (ms since the epoch) of each file in fragments_ and deletions_: the
  // grace period of cleanup protects in-flight writers of memory tables too.
  std::map<std::string, int64_t> created_ms_;
  uint64_t next_file_ = 0;
  bool dropped_ = false;  // guarded by mu_
};

}  // namespace riffledb
