// A table: a named sequence of versions in a Store, and the writes that add versions.
#pragma once

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/status.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "riffledb/storage/store.h"
#include "riffledb/table/adapt.h"
#include "riffledb/table/snapshot.h"
#include "riffledb/util/fork_safe_mutex.h"

namespace riffledb {

/// A committed version as listed by Table::ListVersions.
struct VersionInfo {
  uint64_t version;
  int64_t timestamp_ms;   ///< -1 if damaged
  std::string operation;  ///< empty if damaged
  /// Why the version's manifest cannot be read (naming the file); empty if it is intact.
  std::string damage;
};

/// A handle on a table. Reads go to the handle's current snapshot: the version it opened,
/// last wrote or checked out (it does not follow other writers until CheckoutLatest()).
/// Writes commit atomically on top of the newest version and move the handle to it;
/// several handles and processes may write at once without losing rows. Thread-safe.
class Table {
 public:
  /// Opens `version`, or the newest version if none is given. Invalid naming the
  /// location if the store holds no version, and naming the table and `version` (with the
  /// versions there are) if that one does not exist. A handle opened at an older version
  /// is detached (see Checkout).
  ///
  /// A damaged newest version (a corrupt or foreign manifest) never hides the intact
  /// ones: the handle opens at it, its reads and writes fail naming the file and the
  /// version, and ListVersions, Checkout and Restore reach the others.
  static arrow::Result<std::shared_ptr<Table>> Open(
      std::string name, std::shared_ptr<Store> store,
      std::optional<uint64_t> version = std::nullopt);
  /// Creates version 1 with `schema` (or `data`'s schema if null) and the rows of `data`
  /// (may be null: an empty table; one of the two must be given). The data is adapted to
  /// the schema as Append does. AlreadyExists if the store already holds a version
  /// (another creator won).
  static arrow::Result<std::shared_ptr<Table>> Create(
      std::string name, std::shared_ptr<Store> store,
      std::shared_ptr<arrow::Schema> schema, arrow::RecordBatchReader* data);

  const std::string& name() const { return name_; }
  const std::shared_ptr<Store>& store() const { return store_; }
  /// The snapshot reads go to; it stays valid (and unchanged) however the table moves on.
  /// An error if that version's files could not be opened (corrupt or missing fragment):
  /// the handle still works for Checkout of another version.
  arrow::Result<std::shared_ptr<const Snapshot>> snapshot() const;
  /// The version reads go to (known even when its snapshot failed to open).
  uint64_t version() const;
  /// True if the handle was moved to an older version by Checkout.
  bool detached() const;

  /// Every committed version, ascending; damaged ones are listed and marked. Reads the
  /// newest readable manifest (its history lists the others, format 2), the older
  /// manifests only where no history records them: a damaged older manifest is found
  /// by Checkout or Verify, not here.
  arrow::Result<std::vector<VersionInfo>> ListVersions() const;
  /// Reads every byte of the files `version` (default: the handle's) references and
  /// checks them against their checksums, then opens the version as reads would (every
  /// structural check). OK, or ErrorKind::kCorruption naming the version and the file.
  /// Files already verified through this handle are not read again.
  arrow::Status Verify(std::optional<uint64_t> version = std::nullopt) const;
  /// Moves reads to `version` (Invalid naming it if it does not exist); writes then fail
  /// until CheckoutLatest().
  arrow::Status Checkout(uint64_t version);
  arrow::Status CheckoutLatest();
  /// Commits a new version equal to `version` (its schema and rows; operation
  /// "restore") on top of the newest one, damaged or not, and moves the handle to it.
  /// Invalid naming `version` if it does not exist; its error if it is damaged or its
  /// files do not open. Works on a detached handle. Returns the new version.
  arrow::Result<uint64_t> Restore(uint64_t version);

  /// Appends the rows of `data`, adapted to the table's schema by AdaptToSchema (columns
  /// matched by name, safe casts, nullable columns the data lacks filled with nulls).
  /// On any error, from the schema check or from any batch of the stream, nothing is
  /// written. Returns the new version.
  arrow::Result<uint64_t> Append(arrow::RecordBatchReader* data);
  /// Replaces every row, and the schema, with `data`'s; with a `schema`, the data is
  /// adapted to it as Append does. Nothing is written on error.
  arrow::Result<uint64_t> Overwrite(arrow::RecordBatchReader* data,
                                    std::shared_ptr<arrow::Schema> schema = nullptr);
  /// Deletes the rows matching `filter`, bound to any schema of the table: it is bound
  /// again to the version the delete commits on. Commits a version even when nothing
  /// matched.
  arrow::Result<uint64_t> Delete(const Filter& filter);

 private:
  Table(std::string name, std::shared_ptr<Store> store,
        std::shared_ptr<const Snapshot> snapshot);
  arrow::Status CheckWritable() const;
  arrow::Result<format::Manifest> LatestManifest() const;
  // Reads one version's manifest; a damaged one is Invalid (kCorruption) naming the
  // table, the version and the file, and saying how to reach the others.
  arrow::Result<format::Manifest> ReadVersion(uint64_t version) const;
  // Commits what `make` builds from the newest manifest, retrying when another writer
  // commits first. `make` sets everything but version and timestamp.
  arrow::Result<uint64_t> CommitWithRetry(
      const std::function<arrow::Result<format::Manifest>(const format::Manifest&)>& make,
      const std::function<void()>& on_abandon);
  void SetSnapshot(arrow::Result<std::shared_ptr<const Snapshot>> snapshot,
                   uint64_t version, bool detached);

  const std::string name_;
  const std::shared_ptr<Store> store_;
  mutable ForkSafeMutex mu_;
  // guarded by mu_
  arrow::Result<std::shared_ptr<const Snapshot>> snapshot_;
  uint64_t version_ = 0;
  bool detached_ = false;
  mutable std::set<std::string> verified_;  // paths Verify found intact
};

/// Names that cannot be table columns because the store adds them.
bool IsReservedColumnName(const std::string& name);

}  // namespace riffledb
