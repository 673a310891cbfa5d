// A table directory: its versions and the atomic commit of a new one.
//
//   <table>/_versions/<20-digit version>.json   manifests (docs/format.md)
//   <table>/_segments/<id>.json                 manifest list segments (format 2)
//   <table>/data/<id>.arrow                     fragment files
//   <table>/_deletions/<id>.arrow               deletion files
#pragma once

#include <arrow/result.h>
#include <arrow/status.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "riffledb/format/manifest.h"
#include "riffledb/io/filesystem.h"
#include "riffledb/util/fork_safe_mutex.h"

namespace riffledb::format {

/// Thread-safe and process-safe: all state is in the store, commits are exclusive
/// creates. Every byte goes through `fs` (the storage seam). Segments read are shared
/// by path while some manifest holds them (they are immutable, so never stale).
class TableDir {
 public:
  TableDir(std::shared_ptr<io::FileSystem> fs, std::string path)
      : fs_(std::move(fs)), path_(std::move(path)), cache_(std::make_shared<Cache>()) {}

  const std::shared_ptr<io::FileSystem>& fs() const { return fs_; }
  const std::string& path() const { return path_; }
  /// Absolute path of a file named relative to the table directory.
  std::string Resolve(const std::string& relative) const;

  /// Committed versions, ascending. Temporary files and unknown names are ignored.
  arrow::Result<std::vector<uint64_t>> ListVersions() const;
  /// Whether version `version`'s manifest exists (one stat, no listing).
  arrow::Result<bool> HasVersion(uint64_t version) const;
  /// The newest version number; Invalid if the directory holds no version (not a table).
  arrow::Result<uint64_t> LatestVersion() const;
  /// Reads and validates one version's manifest, and its segments (format 2), each
  /// checked against its digest; KeyError-free: a missing version is
  /// Invalid("Version N does not exist in table <path>; versions: 1..M"). A damaged
  /// manifest or segment is ErrorKind::kCorruption naming the file.
  arrow::Result<Manifest> ReadManifest(uint64_t version) const;
  /// The `table_id` of one version's manifest, validated as ReadManifest does but with
  /// its segments unread ("" when it has none); nullopt when the version does not exist.
  arrow::Result<std::optional<std::string>> ReadTableId(uint64_t version) const;
  arrow::Result<Manifest> ReadLatestManifest() const;

  /// Publishes `manifest` as version `manifest.version` with an exclusive create. Returns
  /// AlreadyExists if another writer committed that version first (the caller rebases and
  /// retries); the manifest becomes visible complete or not at all.
  ///
  /// When the create fails otherwise (an fsync error after the link, a lost reply), the
  /// version is read back: if it holds exactly this manifest, the commit happened and
  /// this returns OK; if it holds another writer's, AlreadyExists; if it is absent, the
  /// error. If it cannot be read either, the error carries
  /// ErrorKind::kCommitOutcomeUnknown and the caller must keep the files it wrote.
  ///
  /// Format 2: the new segment files (PlanSegments) are written and made durable first;
  /// they are removed again when the commit fails with a known outcome. `committed`, if
  /// given, receives the manifest as committed (its segments set), for the next commit
  /// to build on.
  arrow::Status Commit(const Manifest& manifest, Manifest* committed = nullptr) const;

  /// Deletes the manifest of `version` (cleanup of old versions); OK if it is gone. The
  /// caller never removes the newest version, which writers rebase on.
  arrow::Status RemoveVersion(uint64_t version) const;

 private:
  struct Cache {
    ForkSafeMutex mu;
    // guarded by mu
    std::map<std::string, std::weak_ptr<const std::vector<FragmentInfo>>> fragments;
    std::map<std::string, std::weak_ptr<const std::vector<VersionRecord>>> history;
  };

  arrow::Status ReadSegments(Manifest* manifest, const std::string& source) const;
  // The exclusive create of the manifest, and the read-back when its outcome is unknown.
  arrow::Status Publish(const Manifest& manifest, const std::string& path,
                        const std::string& text) const;
  template <typename Entry, typename Parse>
  arrow::Status ReadSegment(
      Segment<Entry>* segment,
      std::map<std::string, std::weak_ptr<const std::vector<Entry>>>* cache,
      const std::string& source, Parse parse) const;

  std::shared_ptr<io::FileSystem> fs_;
  std::string path_;
  std::shared_ptr<Cache> cache_;
};

}  // namespace riffledb::format
