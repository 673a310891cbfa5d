#include "riffledb/table/table.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <limits>
#include <map>
#include <span>
#include <string_view>
#include <thread>
#include <unordered_set>

#include "riffledb/io/filesystem.h"
#include "riffledb/table/adapt.h"
#include "riffledb/table/delete_internal.h"
#include "riffledb/util/status.h"

namespace riffledb {

namespace {

constexpr int kMaxCommitAttempts = 10000;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

arrow::Status ValidateSchema(const arrow::Schema& schema) {
  std::unordered_set<std::string> names;
  for (const auto& field : schema.fields()) {
    if (field->name().empty())
      return arrow::Status::Invalid("Column names must not be empty");
    if (IsReservedColumnName(field->name())) {
      return arrow::Status::Invalid(
          "Column name '", field->name(),
          "' is reserved for the row id / row offset the table adds");
    }
    if (!names.insert(field->name()).second) {
      return arrow::Status::Invalid("Column name '", field->name(), "' appears twice");
    }
  }
  return arrow::Status::OK();
}

// "table 't'": how adapt errors name the table written to.
std::string Describe(const std::string& name) { return "table '" + name + "'"; }

std::vector<std::string> PathsOf(const std::vector<format::WrittenFragment>& written) {
  std::vector<std::string> paths;
  for (const auto& fragment : written) paths.push_back(fragment.path);
  return paths;
}

// Appends `written` to `manifest` as fragments with fresh ids.
void AddFragments(format::Manifest* manifest,
                  std::span<const format::WrittenFragment> written) {
  for (const auto& fragment : written) {
    format::FragmentInfo info;
    info.id = manifest->next_fragment_id++;
    info.path = fragment.path;
    info.physical_rows = fragment.physical_rows;
    info.digest = fragment.digest;
    info.num_batches = fragment.num_batches;
    manifest->fragments.push_back(std::move(info));
  }
}

// Offers `from`'s fragment segments for reuse by the commit of `next`, with the list
// they store (format/segments.h reuses only those whose entries are unchanged).
void ReuseFragmentSegments(const format::Manifest& from, format::Manifest* next) {
  next->fragment_segments = from.fragment_segments;
  next->stored_fragments = from.stored_fragments;
  next->stored_next_fragment_id = from.stored_next_fragment_id;
}

// Makes `next` descend from `base`: base's history plus base itself, and base's segments
// offered for reuse.
void DescendFrom(const format::Manifest& base, format::Manifest* next) {
  // A table created before riffledb wrote table ids gets one at its next commit.
  next->table_id = base.table_id.empty() ? io::RandomId() : base.table_id;
  next->history = base.history;
  next->history.push_back(base.record());
  next->history_segments = base.history_segments;
  next->stored_history = base.stored_history;
  ReuseFragmentSegments(base, next);
}

}  // namespace

bool IsReservedColumnName(const std::string& name) {
  return name == kRowIdColumn || name == kRowOffsetColumn;
}

Table::Table(std::string name, std::shared_ptr<Store> store,
             std::shared_ptr<const Snapshot> snapshot)
    : name_(std::move(name)), store_(std::move(store)), snapshot_(std::move(snapshot)) {
  if (*snapshot_ != nullptr) version_ = (*snapshot_)->version();
}

arrow::Result<std::shared_ptr<Table>> Table::Open(std::string name,
                                                  std::shared_ptr<Store> store,
                                                  std::optional<uint64_t> version) {
  std::shared_ptr<Table> table(new Table(std::move(name), std::move(store), nullptr));
  if (version.has_value()) {
    // An explicit version must open: a damaged one is an error, not a handle.
    ARROW_RETURN_NOT_OK(table->Checkout(*version));
    return table;
  }
  ARROW_ASSIGN_OR_RAISE(auto versions, table->store_->ListVersions());
  arrow::Result<format::Manifest> manifest;
  uint64_t latest = 0;
  if (versions.empty()) {
    // No version listed: the table is missing (the error says so), or was created since
    // the listing (then its first version is opened).
    manifest = table->LatestManifest();
    if (!manifest.ok()) return manifest.status();
    latest = manifest->version;
  } else {
    latest = versions.back();
    manifest = table->ReadVersion(latest);
  }
  if (!manifest.ok() && GetErrorKind(manifest.status()) != ErrorKind::kCorruption) {
    // Removed by a cleanup after a newer commit, between the listing and the read?
    auto newest = table->LatestManifest();
    if (newest.ok()) {
      latest = newest->version;
      manifest = std::move(newest);
    }
  }
  // A damaged version still gives a handle, whether its manifest or its files are
  // damaged: reads report the damage, and ListVersions, Checkout and Restore reach the
  // intact versions.
  if (!manifest.ok()) {
    if (GetErrorKind(manifest.status()) != ErrorKind::kCorruption)
      return manifest.status();
    table->SetSnapshot(manifest.status(), latest, false);
    return table;
  }
  table->SetSnapshot(Snapshot::Open(table->store_, std::move(*manifest)), latest, false);
  return table;
}

arrow::Result<std::shared_ptr<Table>> Table::Create(std::string name,
                                                    std::shared_ptr<Store> store,
                                                    std::shared_ptr<arrow::Schema> schema,
                                                    arrow::RecordBatchReader* data) {
  if (schema == nullptr) {
    if (data == nullptr) {
      return arrow::Status::Invalid("Cannot create table '", name,
                                    "': pass data, a schema, or both");
    }
    schema = data->schema();
  }
  ARROW_RETURN_NOT_OK(ValidateSchema(*schema));
  std::vector<format::WrittenFragment> written;
  if (data != nullptr) {
    ARROW_ASSIGN_OR_RAISE(auto adapted, AdaptToSchema(data, schema, Describe(name)));
    ARROW_ASSIGN_OR_RAISE(written, store->WriteFragments(schema, adapted.get()));
  }
  format::Manifest manifest;
  manifest.version = 1;
  manifest.timestamp_ms = NowMs();
  manifest.operation = "create";
  manifest.schema = schema;
  manifest.table_id = io::RandomId();
  AddFragments(&manifest, written);
  arrow::Status status = store->Commit(manifest);
  if (!status.ok()) {
    if (GetErrorKind(status) != ErrorKind::kCommitOutcomeUnknown) {
      store->RemoveUnreferenced(PathsOf(written));
    }
    return status;
  }
  std::shared_ptr<Table> table(new Table(std::move(name), std::move(store), nullptr));
  // The table exists from here on: a snapshot that fails to open (its files removed by
  // a racing drop, EIO) is for reads to report, not a failed create.
  table->SetSnapshot(Snapshot::Open(table->store_, std::move(manifest)), 1, false);
  return table;
}

arrow::Result<std::shared_ptr<const Snapshot>> Table::snapshot() const {
  std::optional<format::Manifest> manifest;
  std::shared_ptr<const Snapshot> previous;
  uint64_t moves = 0;
  {
    std::lock_guard<ForkSafeMutex> lock(mu_);
    if (!unopened_) return snapshot_;
    manifest = *unopened_;  // shares the lists: a copy costs O(1)
    if (snapshot_.ok()) previous = *snapshot_;
    moves = moves_;
  }
  // Opening reads files: not under mu_ (fork_safe_mutex.h). Two readers may both open
  // it; the first to finish installs its snapshot and the other one's is dropped.
  auto opened = Snapshot::Open(store_, std::move(*manifest), previous.get());
  std::lock_guard<ForkSafeMutex> lock(mu_);
  if (moves_ == moves) {
    if (unopened_) {
      snapshot_ = std::move(opened);
      unopened_.reset();
    }
    return snapshot_;
  }
  return opened;  // the handle moved on meanwhile: the version current at the call
}

void Table::SetCommitted(format::Manifest manifest, uint64_t moves) {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  if (MovedPastLocked(moves, manifest.version)) return;
  version_ = manifest.version;
  detached_ = false;
  unopened_ = std::move(manifest);
  ++moves_;
}

uint64_t Table::MovesNow() const {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  return moves_;
}

uint64_t Table::version() const {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  return version_;
}

bool Table::detached() const {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  return detached_;
}

void Table::SetSnapshot(arrow::Result<std::shared_ptr<const Snapshot>> snapshot,
                        uint64_t version, bool detached) {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  SetSnapshotLocked(std::move(snapshot), version, detached);
}

void Table::SetSnapshotLocked(arrow::Result<std::shared_ptr<const Snapshot>> snapshot,
                              uint64_t version, bool detached) {
  snapshot_ = std::move(snapshot);
  unopened_.reset();
  version_ = version;
  detached_ = detached;
  ++moves_;
}

arrow::Result<format::Manifest> Table::LatestManifest(bool from_storage) const {
  for (int attempt = 0;; ++attempt) {
    ARROW_ASSIGN_OR_RAISE(uint64_t latest, store_->LatestVersion());
    if (latest == 0) {
      return arrow::Status::Invalid("Table '", name_, "' at ", store_->location(),
                                    " has no committed version");
    }
    auto manifest = ReadVersion(latest, from_storage);
    if (manifest.ok() || attempt == 3) return manifest;
    // Between finding the newest version and reading it, another writer may have
    // committed a newer one and a cleanup removed this one: look again.
    ARROW_ASSIGN_OR_RAISE(uint64_t now_latest, store_->LatestVersion());
    if (now_latest == latest) return manifest;
  }
}

arrow::Result<format::Manifest> Table::ReadVersion(uint64_t version,
                                                   bool from_storage) const {
  auto manifest =
      from_storage ? store_->ReadStoredManifest(version) : store_->ReadManifest(version);
  if (manifest.ok() || GetErrorKind(manifest.status()) != ErrorKind::kCorruption) {
    return manifest;
  }
  const arrow::Status& st = manifest.status();
  return WithErrorKind(
      st.WithMessage("Version ", version, " of table '", name_,
                     "' is damaged: ", st.message(),
                     ". The other versions are intact: list_versions() shows them, "
                     "checkout(n) reads one, restore(n) makes it the newest again"),
      ErrorKind::kCorruption);
}

arrow::Result<std::vector<VersionInfo>> Table::ListVersions() const {
  ARROW_ASSIGN_OR_RAISE(auto versions, store_->ListVersions());
  // The newest readable manifest records the versions before it (format 2): one read
  // instead of one per version. Versions it does not record (format 1, or newer than
  // it: damaged) are read one by one.
  std::map<uint64_t, VersionInfo> known;
  for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
    auto manifest = store_->ReadManifest(*it);
    if (manifest.ok()) {
      for (const auto& record : manifest->history) {
        known[record.version] = {record.version, record.timestamp_ms, record.operation,
                                 ""};
      }
      known[*it] = {*it, manifest->timestamp_ms, manifest->operation, ""};
      break;
    }
    if (GetErrorKind(manifest.status()) != ErrorKind::kCorruption)
      return manifest.status();
    known[*it] = {*it, -1, "", manifest.status().message()};
  }
  std::vector<VersionInfo> infos;
  infos.reserve(versions.size());
  for (uint64_t version : versions) {
    auto found = known.find(version);
    if (found != known.end()) {
      infos.push_back(found->second);
      continue;
    }
    auto manifest = store_->ReadManifest(version);
    if (manifest.ok()) {
      infos.push_back(
          {manifest->version, manifest->timestamp_ms, manifest->operation, ""});
    } else if (GetErrorKind(manifest.status()) == ErrorKind::kCorruption) {
      infos.push_back({version, -1, "", manifest.status().message()});
    } else {
      return manifest.status();
    }
  }
  return infos;
}

arrow::Status Table::Verify(std::optional<uint64_t> version) const {
  const uint64_t target = version.value_or(this->version());
  ARROW_ASSIGN_OR_RAISE(format::Manifest manifest,
                        ReadVersion(target, /*from_storage=*/true));
  auto damaged = [&](const arrow::Status& st) {
    return WithErrorKind(st.WithMessage("Version ", target, " of table '", name_,
                                        "' is damaged: ", st.message()),
                         ErrorKind::kCorruption);
  };
  for (const auto& fragment : manifest.fragments) {
    std::vector<std::pair<const std::string*, const format::FileDigest*>> files;
    if (fragment.digest) files.emplace_back(&fragment.path, &*fragment.digest);
    if (fragment.deletion && fragment.deletion->digest) {
      files.emplace_back(&fragment.deletion->path, &*fragment.deletion->digest);
    }
    for (const auto& [path, digest] : files) {
      {
        std::lock_guard<ForkSafeMutex> lock(mu_);
        if (verified_.count(*path)) continue;
      }
      arrow::Status st = store_->VerifyFile(*path, *digest);
      if (!st.ok()) {
        auto type = GetErrorKind(st);
        // A missing file is damage too: the version cannot be read.
        if (type == ErrorKind::kCorruption || st.IsIOError()) return damaged(st);
        return st;
      }
      std::lock_guard<ForkSafeMutex> lock(mu_);
      verified_.insert(*path);
    }
  }
  // Everything else (schemas, row counts, batch structure, deletion files' rows) is
  // what opening the version checks.
  auto snapshot = Snapshot::Open(store_, std::move(manifest));
  if (!snapshot.ok()) return damaged(snapshot.status());
  arrow::Status opened = (*snapshot)->OpenAll();  // a large version opens lazily
  if (!opened.ok()) return damaged(opened);
  return arrow::Status::OK();
}

arrow::Result<uint64_t> Table::Restore(uint64_t version) {
  ARROW_ASSIGN_OR_RAISE(auto versions, store_->ListVersions());
  if (std::find(versions.begin(), versions.end(), version) == versions.end()) {
    return arrow::Status::Invalid("Cannot restore version ", version, " of table '",
                                  name_, "': it does not exist");
  }
  // From storage: the store's cached copy may be of a table dropped and created again
  // under this name since, whose files (still mapped by a snapshot) would be restored.
  ARROW_ASSIGN_OR_RAISE(format::Manifest target,
                        ReadVersion(version, /*from_storage=*/true));
  // Restoring a version whose files do not open would only move the damage forward.
  ARROW_ASSIGN_OR_RAISE(auto check, Snapshot::Open(store_, target));
  ARROW_RETURN_NOT_OK(check->OpenAll());
  auto replaced = [&] {
    return WithErrorKind(
        arrow::Status::Invalid("Cannot restore version ", version, " of table '", name_,
                               "': the table was dropped and created again meanwhile"),
        ErrorKind::kTableNotFound);
  };
  for (int attempt = 0; attempt < kMaxCommitAttempts; ++attempt) {
    ARROW_ASSIGN_OR_RAISE(versions, store_->ListVersions());
    format::Manifest next = target;
    DescendFrom(target, &next);
    // Fragment ids never repeat within a table (row ids stay unique across versions):
    // continue after the highest any readable later version used. The newest readable
    // one is the restored version's base; damaged ones are left out of its history.
    for (uint64_t later : versions) {
      if (later <= version) continue;
      auto manifest = store_->ReadManifest(later);
      if (manifest.ok()) {
        next.next_fragment_id =
            std::max(next.next_fragment_id, manifest->next_fragment_id);
        DescendFrom(*manifest, &next);
        ReuseFragmentSegments(target, &next);
      }
    }
    if (!target.table_id.empty() && next.table_id != target.table_id) return replaced();
    next.version = versions.back() + 1;
    next.timestamp_ms = NowMs();
    next.operation = "restore";
    arrow::Status status = store_->Commit(next);
    if (status.IsAlreadyExists() && GetErrorKind(status) == ErrorKind::kTableNotFound) {
      return replaced();  // the newest version is another table's (CheckBase)
    }
    if (status.IsAlreadyExists()) continue;  // another writer won: rebase
    ARROW_RETURN_NOT_OK(status);
    const uint64_t committed = next.version;
    SetSnapshot(Snapshot::Open(store_, std::move(next)), committed, false);
    return committed;
  }
  return arrow::Status::IOError("Gave up restoring table '", name_, "' after ",
                                kMaxCommitAttempts,
                                " attempts lost to concurrent writers");
}

arrow::Status Table::Checkout(uint64_t version) {
  ARROW_ASSIGN_OR_RAISE(auto versions, store_->ListVersions());
  if (std::find(versions.begin(), versions.end(), version) == versions.end()) {
    const std::string listed =
        versions.empty()
            ? std::string("none")
            : std::to_string(versions.front()) + ".." + std::to_string(versions.back());
    // Every commit is the newest version + 1, so a missing version below the newest
    // existed once: only cleanup (or a hand) removes manifests.
    if (version >= 1 && !versions.empty() && version < versions.back()) {
      return arrow::Status::Invalid(
          "Version ", version, " of table '", name_,
          "' was removed by cleanup_old_versions; versions: ", listed);
    }
    return arrow::Status::Invalid("Version ", version, " of table '", name_,
                                  "' does not exist; versions: ", listed);
  }
  // From storage, as CheckoutLatest: not a cached copy of a table dropped since.
  ARROW_ASSIGN_OR_RAISE(auto manifest, ReadVersion(version, /*from_storage=*/true));
  ARROW_ASSIGN_OR_RAISE(auto snapshot, Snapshot::Open(store_, std::move(manifest)));
  SetSnapshot(std::move(snapshot), version, version != versions.back());
  return arrow::Status::OK();
}

arrow::Status Table::CheckoutLatest() {
  // Where the handle is before the newest version is read: a commit through it after
  // that point may be newer than what is read.
  const uint64_t moves = MovesNow();
  // From storage, not the store's cache: the table may have been dropped and created
  // again with as many versions, and the cached manifest be the old table's.
  ARROW_ASSIGN_OR_RAISE(auto manifest, LatestManifest(/*from_storage=*/true));
  const uint64_t version = manifest.version;
  // The fragments the handle's snapshot has opened are reused where the newest version
  // still has them (all of them after appends).
  std::shared_ptr<const Snapshot> previous;
  {
    std::lock_guard<ForkSafeMutex> lock(mu_);
    if (snapshot_.ok()) previous = *snapshot_;
  }
  // Opening reads files: not under mu_.
  ARROW_ASSIGN_OR_RAISE(auto snapshot,
                        Snapshot::Open(store_, std::move(manifest), previous.get()));
  std::lock_guard<ForkSafeMutex> lock(mu_);
  if (MovedPastLocked(moves, version)) return arrow::Status::OK();
  SetSnapshotLocked(std::move(snapshot), version, false);
  return arrow::Status::OK();
}

arrow::Status Table::CheckWritable() const {
  if (detached()) {
    return arrow::Status::Invalid(
        "Table '", name_, "' is checked out at version ", version(),
        ", an old version: call checkout_latest() before writing");
  }
  return arrow::Status::OK();
}

arrow::Result<uint64_t> Table::CommitWithRetry(
    const std::function<arrow::Result<format::Manifest>(const format::Manifest&)>& make,
    const std::function<void()>& on_abandon, const std::vector<std::string>& files) {
  const uint64_t moves = MovesNow();
  std::optional<std::string> first_id;  // of the first base
  for (int attempt = 0; attempt < kMaxCommitAttempts; ++attempt) {
    auto latest = LatestManifest();
    if (!latest.ok()) {
      on_abandon();
      return latest.status();
    }
    if (!first_id) first_id = latest->table_id;
    if (latest->table_id != *first_id) {
      // Dropped and created again since the first attempt: the files written before it
      // went with the old directory unless they were written into the new one.
      for (const std::string& path : files) {
        auto there = store_->HasFile(path);
        if (!there.ok() || !*there) {
          on_abandon();
          return WithErrorKind(
              arrow::Status::Invalid("Table '", name_,
                                     "' was dropped and created again during this "
                                     "write, with the files it wrote: nothing was "
                                     "committed"),
              ErrorKind::kTableNotFound);
        }
      }
      first_id = latest->table_id;
    }
    auto next = make(*latest);
    if (!next.ok()) {
      on_abandon();
      return next.status();
    }
    next->version = latest->version + 1;
    next->timestamp_ms = NowMs();
    DescendFrom(*latest, &*next);
    arrow::Status status = store_->Commit(*next);
    if (status.IsAlreadyExists()) {
      // Another writer committed this version first: rebase on theirs and try again.
      std::this_thread::sleep_for(std::chrono::microseconds(50 * (attempt % 20)));
      continue;
    }
    if (!status.ok()) {
      // When the outcome is unknown, a committed manifest may reference the files:
      // keep them (cleanup removes them later if no version does).
      if (GetErrorKind(status) != ErrorKind::kCommitOutcomeUnknown) on_abandon();
      return status;
    }
    const uint64_t version = next->version;
    // The version is committed: failing to open it (files removed by a racing drop,
    // EIO) must not report the write as failed; reads report the problem.
    SetCommitted(std::move(*next), moves);
    return version;
  }
  on_abandon();
  return arrow::Status::IOError("Gave up committing to table '", name_, "' after ",
                                kMaxCommitAttempts,
                                " attempts lost to concurrent writers");
}

arrow::Result<uint64_t> Table::Append(arrow::RecordBatchReader* data) {
  ARROW_RETURN_NOT_OK(CheckWritable());
  ARROW_ASSIGN_OR_RAISE(auto latest, LatestManifest());
  const auto schema = latest.schema;
  ARROW_ASSIGN_OR_RAISE(auto adapted, AdaptToSchema(data, schema, Describe(name_)));
  ARROW_ASSIGN_OR_RAISE(auto written, store_->WriteFragments(schema, adapted.get()));
  const std::vector<std::string> paths = PathsOf(written);
  return CommitWithRetry(
      [&](const format::Manifest& base) -> arrow::Result<format::Manifest> {
        if (!base.schema->Equals(*schema, /*check_metadata=*/false)) {
          return arrow::Status::Invalid(
              "Table '", name_, "' was overwritten with a new schema during the append");
        }
        format::Manifest next = base;
        next.operation = "append";
        AddFragments(&next, written);
        return next;
      },
      [&] { store_->RemoveUnreferenced(paths); }, paths);
}

arrow::Result<uint64_t> Table::Overwrite(arrow::RecordBatchReader* data,
                                         std::shared_ptr<arrow::Schema> schema) {
  ARROW_RETURN_NOT_OK(CheckWritable());
  if (schema == nullptr) schema = data->schema();
  ARROW_RETURN_NOT_OK(ValidateSchema(*schema));
  ARROW_ASSIGN_OR_RAISE(auto adapted, AdaptToSchema(data, schema, Describe(name_)));
  ARROW_ASSIGN_OR_RAISE(auto written, store_->WriteFragments(schema, adapted.get()));
  const std::vector<std::string> paths = PathsOf(written);
  return CommitWithRetry(
      [&](const format::Manifest& base) -> arrow::Result<format::Manifest> {
        format::Manifest next;
        next.operation = "overwrite";
        next.schema = schema;
        next.next_fragment_id = base.next_fragment_id;
        AddFragments(&next, written);
        return next;
      },
      [&] { store_->RemoveUnreferenced(paths); }, paths);
}

arrow::Result<uint64_t> Table::Delete(const Filter& filter) {
  ARROW_RETURN_NOT_OK(CheckWritable());
  std::vector<std::string> attempt_files;  // deletion files of the current attempt
  auto discard = [&] {
    store_->RemoveUnreferenced(attempt_files);
    attempt_files.clear();
  };
  return CommitWithRetry(
      [&](const format::Manifest& base) -> arrow::Result<format::Manifest> {
        discard();  // files of an attempt that lost the race
        ARROW_ASSIGN_OR_RAISE(auto snapshot, Snapshot::Open(store_, base));
        // Bound again on each attempt: a writer that won the race may have changed the
        // schema.
        ARROW_ASSIGN_OR_RAISE(auto plan, internal::PlanDeletion(*snapshot, filter));
        format::Manifest next = base;
        next.operation = "delete";
        next.fragments.clear();
        for (size_t i = 0; i < base.fragments.size(); ++i) {
          format::FragmentInfo info = base.fragments[i];
          const auto& rows = plan.deleted[i];
          if (rows != nullptr) {
            if (static_cast<int64_t>(rows->size()) == info.physical_rows) continue;
            ARROW_ASSIGN_OR_RAISE(auto deletion, store_->WriteDeletionFile(*rows));
            attempt_files.push_back(deletion.path);
            info.deletion = std::move(deletion);
          }
          next.fragments.push_back(std::move(info));
        }
        return next;
      },
      discard);
}

arrow::Result<format::WrittenFragments> Table::WriteFragments(
    arrow::RecordBatchReader* data, std::shared_ptr<arrow::Schema> schema) {
  ARROW_ASSIGN_OR_RAISE(auto latest, LatestManifest());
  if (schema == nullptr) {
    schema = latest.schema;
  } else {
    ARROW_RETURN_NOT_OK(ValidateSchema(*schema));
  }
  format::WrittenFragments written;
  if (data != nullptr) {
    ARROW_ASSIGN_OR_RAISE(auto adapted, AdaptToSchema(data, schema, Describe(name_)));
    ARROW_ASSIGN_OR_RAISE(written.fragments,
                          store_->WriteFragments(schema, adapted.get()));
  }
  written.table = name_;
  // Informational: CommitFragments only checks that it is not above the newest version.
  written.base_version = latest.version;
  written.schema = std::move(schema);
  return written;
}

arrow::Result<uint64_t> Table::CommitFragments(
    const std::vector<format::WrittenFragments>& written, CommitMode mode) {
  ARROW_RETURN_NOT_OK(CheckWritable());
  if (written.empty()) {
    return arrow::Status::Invalid("No fragment descriptions to commit to table '", name_,
                                  "'");
  }
  // "fragment file 'data/x.arrow'", or the description's table when it has no file.
  auto describe = [&](const format::WrittenFragments& w) {
    return w.fragments.empty()
               ? "a fragment description (of no file) of table '" + w.table + "'"
               : "fragment file '" + w.fragments[0].path + "'";
  };
  const std::shared_ptr<arrow::Schema>& schema = written[0].schema;
  std::vector<format::WrittenFragment> fragments;
  std::unordered_set<std::string_view> paths;
  for (const auto& w : written) {
    if (w.schema == nullptr) {
      return arrow::Status::Invalid("Cannot commit ", describe(w), " to table '", name_,
                                    "': its description has no schema");
    }
    if (w.table != name_) {
      return arrow::Status::Invalid("Cannot commit ", describe(w), " to table '", name_,
                                    "': it was written for table '", w.table, "'");
    }
    if (!w.schema->Equals(*schema, /*check_metadata=*/false)) {
      return arrow::Status::Invalid(
          "Cannot commit ", describe(w), " to table '", name_,
          "' with the other descriptions: they were written with different schemas.\n",
          describe(w), ":\n", w.schema->ToString(), "\n", describe(written[0]), ":\n",
          schema->ToString());
    }
    for (const auto& fragment : w.fragments) {
      if (!paths.insert(fragment.path).second) {
        return arrow::Status::Invalid("Cannot commit fragment file '", fragment.path,
                                      "' to table '", name_,
                                      "': the descriptions name it twice");
      }
      fragments.push_back(fragment);
    }
  }
  if (mode == CommitMode::kOverwrite) ARROW_RETURN_NOT_OK(ValidateSchema(*schema));
  // The files are immutable: checked in full once, not at every attempt.
  for (const auto& fragment : fragments) {
    ARROW_RETURN_NOT_OK(store_->CheckWrittenFragment(fragment, *schema));
  }

  // Committing a file that a version already references would give its rows twice (or
  // bring back rows an overwrite or a delete removed). Which versions may reference it
  // cannot be learnt from the description: its base_version is the writer's word, and a
  // description is untrusted (edited, or written against a table since dropped and
  // made again). Nor, robustly, from time: a version's timestamp is the committing
  // machine's clock, a file's mtime the store's, and a copied table directory has new
  // mtimes. So every version still listed is looked at, each once per commit (versions
  // are immutable): the cost grows with the versions kept, which cleanup_old_versions
  // bounds. Segments are shared by the versions descending from the one that wrote
  // them, so each segment's entries are looked at once too.
  std::unordered_set<std::string> seen_segments;
  auto check_entries = [&](const format::Manifest& manifest, size_t begin,
                           size_t end) -> arrow::Status {
    for (size_t i = begin; i < end; ++i) {
      const auto& fragment = manifest.fragments[i];
      if (paths.count(fragment.path)) {
        return arrow::Status::Invalid(
            "Cannot commit fragment file '", fragment.path, "' to table '", name_,
            "': version ", manifest.version,
            " already references it (were these descriptions committed before?)");
      }
    }
    return arrow::Status::OK();
  };
  auto committed_by = [&](const format::Manifest& manifest) -> arrow::Status {
    // A manifest read or committed holds its segments' entries, which are the prefix
    // of its list (ResolveManifest); anything else is looked at whole.
    size_t covered = 0;
    for (const auto& segment : manifest.fragment_segments) {
      if (segment.entries == nullptr ||
          segment.entries->size() != static_cast<size_t>(segment.count)) {
        return check_entries(manifest, 0, manifest.fragments.size());
      }
      covered += segment.entries->size();
    }
    if (covered > manifest.fragments.size()) {
      return check_entries(manifest, 0, manifest.fragments.size());
    }
    size_t begin = 0;
    for (const auto& segment : manifest.fragment_segments) {
      const size_t end = begin + segment.entries->size();
      if (seen_segments.insert(segment.path).second) {
        ARROW_RETURN_NOT_OK(check_entries(manifest, begin, end));
      }
      begin = end;
    }
    return check_entries(manifest, begin, manifest.fragments.size());
  };
  uint64_t scanned = 0;  // every version up to this one has been looked at
  // The manifest read last: held so that the segments the next one shares with it are
  // found in the store's cache, not read again.
  std::optional<format::Manifest> previous;
  auto scan = [&](const format::Manifest& base) -> arrow::Status {
    ARROW_ASSIGN_OR_RAISE(std::vector<uint64_t> versions, store_->ListVersions());
    for (uint64_t version : versions) {
      if (version <= scanned || version == base.version) continue;
      auto manifest = store_->ReadManifest(version);
      if (!manifest.ok()) {
        // A version that is no longer listed was removed by cleanup_old_versions since
        // the listing: skipped (what its removal leaves behind is handled below). Any
        // other failure (a damaged manifest, an I/O error) may hide a reference to the
        // files, so the commit stops.
        ARROW_ASSIGN_OR_RAISE(std::vector<uint64_t> now, store_->ListVersions());
        if (!std::binary_search(now.begin(), now.end(), version)) continue;
        return manifest.status().WithMessage(
            "Cannot commit fragment descriptions to table '", name_, "': version ",
            version, ", which may reference their files, cannot be read: ",
            manifest.status().message());
      }
      ARROW_RETURN_NOT_OK(committed_by(*manifest));
      previous = std::move(*manifest);
    }
    ARROW_RETURN_NOT_OK(committed_by(base));
    scanned = std::max({scanned, base.version, versions.empty() ? 0 : versions.back()});
    // Cleanup removes versions before the files that only they referenced, so a file a
    // removed version committed may still be here: the scan could not see that it was
    // committed. Cleanup deletes such a file in the same run (it is referenced by a
    // version it removed, so it is no unverified file kept for a grace period), so each
    // file is checked again after the scan: once cleanup got to the file, the commit is
    // refused instead of referencing a file that is gone. This, rather than refusing
    // whenever a version disappears during the scan, also refuses a file removed by a
    // cleanup that ended before the commit began, and a file cleanup removed as an
    // orphan after the first check. What it leaves open is a cleanup between removing
    // such a version and deleting its files, the window restore() has too
    // (maintenance.cc): it needs a cleanup whose older_than is shorter than the time
    // since the files were written, since a version committing them is younger than
    // they are (CommitFragments in table.h).
    for (const auto& fragment : fragments) {
      ARROW_ASSIGN_OR_RAISE(bool exists, store_->HasFile(fragment.path));
      if (!exists)
        return format::DescribedFragmentMissing(fragment.path, store_->location());
    }
    return arrow::Status::OK();
  };
  return CommitWithRetry(
      [&](const format::Manifest& base) -> arrow::Result<format::Manifest> {
        for (const auto& w : written) {
          if (w.base_version > base.version) {
            return arrow::Status::Invalid(
                "Cannot commit ", describe(w), " to table '", name_,
                "': its description's 'base_version' is ", w.base_version,
                ", above the table's newest version (", base.version, ")");
          }
        }
        ARROW_RETURN_NOT_OK(scan(base));
        format::Manifest next;
        if (mode == CommitMode::kAppend) {
          if (!base.schema->Equals(*schema, /*check_metadata=*/false)) {
            return arrow::Status::Invalid(
                "Cannot append ", describe(written[0]), " to table '", name_,
                "': it was written with the schema\n", schema->ToString(),
                "\nand the table's schema is now\n", base.schema->ToString());
          }
          next = base;
          next.operation = "append";
        } else {
          next.operation = "overwrite";
          next.schema = schema;
          next.next_fragment_id = base.next_fragment_id;
        }
        AddFragments(&next, fragments);
        return next;
      },
      [] {});
}

}  // namespace riffledb
