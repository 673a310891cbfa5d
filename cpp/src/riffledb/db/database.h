// A database: a catalog of named tables in a directory or in process memory.
#pragma once

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/status.h>

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "riffledb/io/s3_filesystem.h"
#include "riffledb/storage/store.h"
#include "riffledb/table/table.h"
#include "riffledb/util/fork_safe_mutex.h"

namespace riffledb {

/// How CreateTable treats an existing table of the same name.
enum class CreateMode { kCreate, kOverwrite };

/// Thread-safe. A directory database keeps no state but its path: tables created by other
/// processes are visible at once. A `memory://` database lives as long as its last
/// handle.
class Database {
 public:
  static constexpr char kMemoryUri[] = "memory://";
  /// Table directories are `<database>/<name>` + this suffix.
  static constexpr char kTableSuffix[] = ".riffle";
  /// The longest file name (one path component) the file systems riffledb runs on take:
  /// NAME_MAX on Linux and macOS, the object-key segment limit we hold object stores to.
  static constexpr size_t kMaxFileNameLength = 255;
  /// The longest table name: every file or directory name riffledb derives from a table
  /// name (today only `<name>` + kTableSuffix; a new one must be counted here) must fit
  /// kMaxFileNameLength. The same limit holds in memory, so that a table can always be
  /// written out under its name.
  static constexpr size_t kMaxTableNameLength =
      kMaxFileNameLength - (sizeof(kTableSuffix) - 1);

  /// `memory://` (a fresh, private database per call), `s3://bucket/prefix` (a bucket or
  /// a prefix of one, through io::S3FileSystem built from `options`), or a directory path
  /// (created if missing; `file:///data/db` is the directory /data/db). Invalid naming
  /// `uri` if it is empty, holds a NUL byte, or looks like a URI but is not one riffledb
  /// knows (`memory:/`, `xyz://...`); Invalid from io::S3FileSystem::Make for bad
  /// `options` (an unknown key, an http endpoint without allow_http); NotImplemented for
  /// the schemes still to come (`gs://`, `az://`, `db://`). `options` are ignored for
  /// directories and `memory://`.
  static arrow::Result<std::shared_ptr<Database>> Connect(
      const std::string& uri, const io::StorageOptions& options = {});
  /// The directory database at absolute `path` (created if missing), read and written
  /// through `fs`: tests inject faults this way.
  static arrow::Result<std::shared_ptr<Database>> ConnectDirectory(
      std::string path, std::shared_ptr<io::FileSystem> fs);

  /// The absolute directory path, `memory://`, or `s3://bucket/prefix`.
  const std::string& uri() const { return uri_; }
  bool in_memory() const { return in_memory_; }

  /// Sorted table names.
  arrow::Result<std::vector<std::string>> TableNames() const;
  /// False for a name no table can have (see ValidateTableName).
  arrow::Result<bool> HasTable(const std::string& name) const;
  /// Creates `name` from `schema` and `data`, either of which may be null (not both):
  /// without a schema the table takes `data`'s; with both, `data` is adapted to `schema`
  /// (see Table::Append). kCreate: Invalid "Table 'x' already exists" if it
  /// does, unless `exist_ok` (then the existing table is returned and `data` ignored).
  /// kOverwrite: an existing table gets a new version holding `data`.
  arrow::Result<std::shared_ptr<Table>> CreateTable(const std::string& name,
                                                    std::shared_ptr<arrow::Schema> schema,
                                                    arrow::RecordBatchReader* data,
                                                    CreateMode mode, bool exist_ok);
  /// Opens `version` of the table (the newest if none is given). Invalid "Table 'x' was
  /// not found in database '<uri>'" if the table does not exist; Invalid naming the table
  /// and the version (and the versions there are) if that version does not.
  arrow::Result<std::shared_ptr<Table>> OpenTable(
      const std::string& name, std::optional<uint64_t> version = std::nullopt) const;
  /// Removes the table and its files; Invalid (as OpenTable) if missing and not
  /// `ignore_missing`.
  ///
  /// Atomic for directory databases: the table directory is first renamed to a
  /// tombstone (kTombstonePrefix + a random id), then deleted. A drop killed or failing
  /// at any point leaves the whole table listed or none of it; writers of the table get
  /// "was dropped" and never recreate it. Tombstones left by a crash are never listed and
  /// are deleted by the next DropTable or Connect of the database.
  ///
  /// On a store without rename (object stores) the drop deletes in place: the manifests
  /// first, oldest first, so that the table stays listed at its newest version until the
  /// last manifest goes, then every other file. Killed midway it leaves the table listed
  /// with fewer old versions, or unreferenced files under its prefix (never listed; a
  /// table created later under the name does not reference them and its cleanup removes
  /// them). A writer committing while it runs can leave its version behind, listed with
  /// missing files: the drop lists the manifests again after deleting and repeats.
  arrow::Status DropTable(const std::string& name, bool ignore_missing);

  /// Names of dropped tables' directories awaiting deletion: a fixed length, whatever
  /// the table name (names already fill the file-name limit), starting with '.' so that
  /// no table name can collide with one, and not ending in kTableSuffix.
  static constexpr char kTombstonePrefix[] = ".riffle-dropped-";

  /// Invalid naming `name` unless it is a plain table name: 1..kMaxTableNameLength of
  /// [A-Za-z0-9_.-], not starting with '.', so it can never name a path outside the
  /// database. The same rule for every backend.
  static arrow::Status ValidateTableName(const std::string& name);

 private:
  Database(std::string uri, std::string path, bool in_memory,
           std::shared_ptr<io::FileSystem> fs)
      : uri_(std::move(uri)),
        path_(std::move(path)),
        in_memory_(in_memory),
        fs_(std::move(fs)) {}
  // The directory database at `path` of `fs`, named `uri`.
  static arrow::Result<std::shared_ptr<Database>> Open(
      std::string uri, std::string path, std::shared_ptr<io::FileSystem> fs);
  std::string TablePath(const std::string& name) const;
  // DropTable on a store without rename (see DropTable).
  arrow::Status DropInPlace(const std::string& name, bool ignore_missing);
  // Best effort: deletes the tombstones of drops that crashed or failed to delete
  // (among `entries`, the database directory's listing, when given).
  void RemoveTombstones() const;
  void RemoveTombstones(const std::vector<io::Entry>& entries) const;
  arrow::Status NotFound(const std::string& name) const;

  const std::string uri_;
  // The database directory on fs_ (`bucket/prefix` on S3); uri_ for local directories.
  const std::string path_;
  const bool in_memory_;
  // The storage seam every directory table of this database reads and writes through.
  const std::shared_ptr<io::FileSystem> fs_;
  mutable ForkSafeMutex mu_;
  // guarded by mu_ (memory databases only)
  std::map<std::string, std::shared_ptr<MemoryStore>> memory_tables_;
};

}  // namespace riffledb
