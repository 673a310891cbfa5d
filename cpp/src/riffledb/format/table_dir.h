// A table directory: its versions and the atomic commit of a new one.
//
//   <table>/_versions/<20-digit version>.json   manifests (docs/format.md)
//   <table>/data/<id>.arrow                     fragment files
//   <table>/_deletions/<id>.arrow               deletion files
#pragma once

#include <arrow/result.h>
#include <arrow/status.h>

#include <cstdint>
#include <string>
#include <vector>

#include "riffledb/format/manifest.h"
#include "riffledb/io/filesystem.h"

namespace riffledb::format {

/// Thread-safe and process-safe: all state is in the store, commits are exclusive
/// creates. Every byte goes through `fs` (the storage seam).
class TableDir {
 public:
  TableDir(std::shared_ptr<io::FileSystem> fs, std::string path)
      : fs_(std::move(fs)), path_(std::move(path)) {}

  const std::shared_ptr<io::FileSystem>& fs() const { return fs_; }
  const std::string& path() const { return path_; }
  /// Absolute path of a file named relative to the table directory.
  std::string Resolve(const std::string& relative) const;

  /// Committed versions, ascending. Temporary files and unknown names are ignored.
  arrow::Result<std::vector<uint64_t>> ListVersions() const;
  /// The newest version number; Invalid if the directory holds no version (not a table).
  arrow::Result<uint64_t> LatestVersion() const;
  /// Reads and validates one version's manifest; KeyError-free: a missing version is
  /// Invalid("Version N does not exist in table <path>; versions: 1..M").
  arrow::Result<Manifest> ReadManifest(uint64_t version) const;
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
  arrow::Status Commit(const Manifest& manifest) const;

  /// Deletes the manifest of `version` (cleanup of old versions); OK if it is gone. The
  /// caller never removes the newest version, which writers rebase on.
  arrow::Status RemoveVersion(uint64_t version) const;

 private:
  std::shared_ptr<io::FileSystem> fs_;
  std::string path_;
};

}  // namespace riffledb::format
