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

namespace riffledb::format {

/// Thread-safe and process-safe: all state is on disk, commits are exclusive creates.
class TableDir {
 public:
  explicit TableDir(std::string path) : path_(std::move(path)) {}

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
  arrow::Status Commit(const Manifest& manifest) const;

 private:
  std::string path_;
};

}  // namespace riffledb::format
