// A table: a named sequence of versions in a Store, and the writes that add versions.
#pragma once

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/status.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
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

/// Reports progress of long work: `stage` names it ("reading versions", "removing
/// files", "rewriting rows"), `done` of `total` units. Called on the calling thread.
using Progress = std::function<void(std::string_view stage, int64_t done, int64_t total)>;

/// How Table::CleanupOldVersions chooses what to remove.
struct CleanupOptions {
  /// Versions committed more than this long before now are removed; the newest version
  /// never is. 0 removes every version but the newest.
  int64_t older_than_ms = int64_t{7} * 24 * 3600 * 1000;
  /// Also remove files that no version references however young they are. Such a file
  /// may belong to a writer that has not committed yet: only safe when no other
  /// process or thread writes to the table.
  bool delete_unverified = false;
  /// The time cleanup counts ages from, ms since the epoch; -1: the clock. Tests move it
  /// forward instead of waiting.
  int64_t now_ms = -1;
};

/// Files that no version references are removed only once this old (and older than
/// CleanupOptions::older_than_ms), unless delete_unverified: a writer writes its files
/// before it commits the version that references them, and cleanup cannot tell its
/// files from a crashed writer's. LanceDB's grace period: 7 days.
constexpr int64_t kUnverifiedGraceMs = int64_t{7} * 24 * 3600 * 1000;

/// What Table::CleanupOldVersions removed (LanceDB's CleanupStats, plus files_removed).
struct CleanupStats {
  int64_t old_versions = 0;   ///< manifests of old versions removed
  int64_t files_removed = 0;  ///< fragment, deletion and temporary files removed
  int64_t bytes_removed = 0;  ///< the bytes of those files (manifests not counted)
};

/// How Table::Compact chooses fragments.
struct CompactionOptions {
  /// Fragments with fewer live rows than this are merged with their small neighbours
  /// into fragments of at most this many rows; 0: the writers' max_rows_per_fragment.
  int64_t target_rows_per_fragment = 0;
};

/// What Table::Compact did (LanceDB's CompactionStats).
struct CompactionStats {
  int64_t fragments_removed = 0;
  int64_t fragments_added = 0;
  int64_t files_removed = 0;  ///< data and deletion files the new version no longer uses
  int64_t files_added = 0;
};

/// What Table::CommitFragments does with the fragments it commits.
enum class CommitMode {
  kAppend,     ///< add their rows after the newest version's
  kOverwrite,  ///< replace every row, and the schema, with theirs
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

  // -- Distributed writes: workers write fragments, one commit publishes them

  /// Writes the rows of `data` (null: none) as new fragment files of this table and
  /// describes them,
  /// without committing: no version references them until CommitFragments commits the
  /// description, in this process or another one (WrittenFragments::ToJson / FromJson).
  /// Without a `schema`, the data is adapted to the newest version's schema as Append
  /// adapts it (the same check and messages); with one, to `schema` as Overwrite
  /// adapts it. Works on a detached handle (it commits nothing). On error nothing is
  /// left behind. Files whose description is never committed are removed by
  /// CleanupOldVersions once older than its grace period (kUnverifiedGraceMs).
  arrow::Result<format::WrittenFragments> WriteFragments(
      arrow::RecordBatchReader* data, std::shared_ptr<arrow::Schema> schema = nullptr);
  /// Commits the fragments `written` describes, all of them in one new version (all or
  /// nothing): after the newest version's rows (kAppend, operation "append"), or
  /// instead of every row, with their schema (kOverwrite, "overwrite"). Rebased on
  /// concurrent writers as Append is. Returns the new version.
  ///
  /// Descriptions are untrusted; before anything is committed, Invalid naming the file
  /// if a description was written for another table, the schemas differ (from each
  /// other or, for kAppend, from the table's), a file is named twice, a file is not in
  /// this table as described (Store::CheckWrittenFragment: size, schema, batches, rows;
  /// the data is checked by reads and Verify), a description's base_version is above
  /// the newest version, or a file is referenced by any version still listed:
  /// committing the same descriptions twice never duplicates rows. base_version is not
  /// trusted to bound that search: every listed version is read (each segment once), so
  /// the cost grows with the versions CleanupOldVersions keeps. A version that cannot
  /// be read fails the commit (its error, with context), unless it is no longer listed
  /// (removed by a cleanup meanwhile); each file is then checked to still exist, which
  /// refuses a file whose committing version a cleanup removed once that cleanup has
  /// deleted the file. A cleanup caught between the two, with an older_than shorter
  /// than the time since the files were written, can still let such a file be
  /// committed: do not clean up that aggressively while descriptions wait for their
  /// commit. Invalid if `written` is empty. Never removes a file: what is not committed
  /// stays for a retry, and then for CleanupOldVersions.
  arrow::Result<uint64_t> CommitFragments(
      const std::vector<format::WrittenFragments>& written, CommitMode mode);

  // -- Maintenance (table/maintenance.cc)

  /// Merges runs of adjacent small fragments (fewer live rows than the target) and
  /// rewrites every fragment that has deleted rows without them, in scan order, so the
  /// row offsets of the newest version and the values at them do not change (row ids of
  /// the rewritten rows do). Commits one version (operation "optimize") when there is
  /// anything to do and moves the handle to it; commits nothing otherwise.
  ///
  /// Rebased like other writes: appends racing it are kept. If a concurrent write
  /// changed or removed a fragment being rewritten (a delete, an overwrite), the
  /// compaction is planned and written again, and after 3 such conflicts fails with
  /// Invalid saying so; nothing is committed then.
  arrow::Result<CompactionStats> Compact(const CompactionOptions& options = {},
                                         const Progress& progress = nullptr);

  /// Removes the versions committed more than options.older_than_ms ago (never the
  /// newest), then every fragment, deletion or temporary file that no remaining version
  /// references: at once if only removed versions referenced it, and otherwise only
  /// once it is older than both older_than_ms and kUnverifiedGraceMs (or with
  /// delete_unverified). A version committed while cleanup runs keeps its files.
  ///
  /// Removed versions can no longer be checked out or opened (an error saying they were
  /// removed by cleanup_old_versions). Snapshots already open keep reading: their files
  /// are mapped or held in memory. Invalid (kCorruption) naming the version if any
  /// version's manifest is damaged: its files are unknown, so nothing is removed.
  arrow::Result<CleanupStats> CleanupOldVersions(const CleanupOptions& options = {},
                                                 const Progress& progress = nullptr);

 private:
  Table(std::string name, std::shared_ptr<Store> store,
        std::shared_ptr<const Snapshot> snapshot);
  arrow::Status CheckWritable() const;
  // The newest version's manifest (looking again if a cleanup removed it meanwhile);
  // `from_storage` as for ReadVersion.
  arrow::Result<format::Manifest> LatestManifest(bool from_storage = false) const;
  // Reads one version's manifest; a damaged one is Invalid (kCorruption) naming the
  // table, the version and the file, and saying how to reach the others. With
  // `from_storage`, the store's cached copy is not used (see Store::ReadStoredManifest).
  arrow::Result<format::Manifest> ReadVersion(uint64_t version,
                                              bool from_storage = false) const;
  // Commits what `make` builds from the newest manifest, retrying when another writer
  // commits first. `make` sets everything but version and timestamp. `files`: what the
  // write put in the table's directory before committing; should the table be dropped
  // and created again meanwhile (another table_id at a retry), they must still be there
  // (written into the new table's directory), or the write fails, kTableNotFound.
  arrow::Result<uint64_t> CommitWithRetry(
      const std::function<arrow::Result<format::Manifest>(const format::Manifest&)>& make,
      const std::function<void()>& on_abandon,
      const std::vector<std::string>& files = {});
  void SetSnapshot(arrow::Result<std::shared_ptr<const Snapshot>> snapshot,
                   uint64_t version, bool detached);
  // SetSnapshot's move, with mu_ held.
  void SetSnapshotLocked(arrow::Result<std::shared_ptr<const Snapshot>> snapshot,
                         uint64_t version, bool detached);
  // Moves the handle to `manifest`, just committed by it from where the handle was at
  // `moves` (MovedPastLocked). Its snapshot is opened by the first snapshot() call: a
  // run of writes that reads nothing opens none, so a write costs the same at 10
  // fragments or 10,000 (a snapshot lays out every fragment).
  void SetCommitted(format::Manifest manifest, uint64_t moves);
  // moves_, read under mu_: where a move that reads files outside the lock starts from.
  uint64_t MovesNow() const;
  // With mu_ held: whether the handle moved since `moves` to `version` or a newer one,
  // so that a move to `version` must not happen (it would go back). Commits through one
  // handle can finish out of order, and a commit can finish while CheckoutLatest reads.
  bool MovedPastLocked(uint64_t moves, uint64_t version) const {
    return moves_ != moves && !detached_ && version_ >= version;
  }

  const std::string name_;
  const std::shared_ptr<Store> store_;
  mutable ForkSafeMutex mu_;
  // guarded by mu_
  mutable arrow::Result<std::shared_ptr<const Snapshot>> snapshot_;
  // The version this handle committed last, while its snapshot is not opened yet;
  // snapshot_ is then the one before (what the new one shares opened fragments with).
  mutable std::optional<format::Manifest> unopened_;
  // +1 whenever the handle moves (SetSnapshot, SetCommitted): a snapshot opened outside
  // the lock is installed only if the handle has not moved meanwhile.
  uint64_t moves_ = 0;
  uint64_t version_ = 0;
  bool detached_ = false;
  mutable std::set<std::string> verified_;  // paths Verify found intact
};

/// Names that cannot be table columns because the store adds them.
bool IsReservedColumnName(const std::string& name);

}  // namespace riffledb
