#include "riffledb/table/table.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>
#include <unordered_set>

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
                  const std::vector<format::WrittenFragment>& written) {
  for (const auto& fragment : written) {
    format::FragmentInfo info;
    info.id = manifest->next_fragment_id++;
    info.path = fragment.path;
    info.physical_rows = fragment.physical_rows;
    manifest->fragments.push_back(std::move(info));
  }
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
  if (versions.empty()) return table->LatestManifest().status();  // the message
  uint64_t latest = versions.back();
  auto manifest = table->ReadVersion(latest);
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
  std::lock_guard<ForkSafeMutex> lock(mu_);
  return snapshot_;
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
  snapshot_ = std::move(snapshot);
  version_ = version;
  detached_ = detached;
}

arrow::Result<format::Manifest> Table::LatestManifest() const {
  ARROW_ASSIGN_OR_RAISE(auto versions, store_->ListVersions());
  for (int attempt = 0;; ++attempt) {
    if (versions.empty()) {
      return arrow::Status::Invalid("Table '", name_, "' at ", store_->location(),
                                    " has no committed version");
    }
    auto manifest = ReadVersion(versions.back());
    if (manifest.ok() || attempt == 3) return manifest;
    // Between the listing and the read, another writer may have committed a newer
    // version and a cleanup removed this one: read the newest again.
    const uint64_t listed = versions.back();
    ARROW_ASSIGN_OR_RAISE(versions, store_->ListVersions());
    if (std::find(versions.begin(), versions.end(), listed) != versions.end()) {
      return manifest;
    }
  }
}

arrow::Result<format::Manifest> Table::ReadVersion(uint64_t version) const {
  auto manifest = store_->ReadManifest(version);
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
  std::vector<VersionInfo> infos;
  infos.reserve(versions.size());
  for (uint64_t version : versions) {
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

arrow::Result<uint64_t> Table::Restore(uint64_t version) {
  ARROW_ASSIGN_OR_RAISE(auto versions, store_->ListVersions());
  if (std::find(versions.begin(), versions.end(), version) == versions.end()) {
    return arrow::Status::Invalid("Cannot restore version ", version, " of table '",
                                  name_, "': it does not exist");
  }
  ARROW_ASSIGN_OR_RAISE(format::Manifest target, ReadVersion(version));
  // Restoring a version whose files do not open would only move the damage forward.
  ARROW_RETURN_NOT_OK(Snapshot::Open(store_, target).status());
  for (int attempt = 0; attempt < kMaxCommitAttempts; ++attempt) {
    ARROW_ASSIGN_OR_RAISE(versions, store_->ListVersions());
    format::Manifest next = target;
    // Fragment ids never repeat within a table (row ids stay unique across versions):
    // continue after the highest any readable later version used.
    for (uint64_t later : versions) {
      if (later <= version) continue;
      auto manifest = store_->ReadManifest(later);
      if (manifest.ok()) {
        next.next_fragment_id =
            std::max(next.next_fragment_id, manifest->next_fragment_id);
      }
    }
    next.version = versions.back() + 1;
    next.timestamp_ms = NowMs();
    next.operation = "restore";
    arrow::Status status = store_->Commit(next);
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
  ARROW_ASSIGN_OR_RAISE(auto manifest, ReadVersion(version));
  ARROW_ASSIGN_OR_RAISE(auto snapshot, Snapshot::Open(store_, std::move(manifest)));
  SetSnapshot(std::move(snapshot), version, version != versions.back());
  return arrow::Status::OK();
}

arrow::Status Table::CheckoutLatest() {
  ARROW_ASSIGN_OR_RAISE(auto manifest, LatestManifest());
  const uint64_t version = manifest.version;
  ARROW_ASSIGN_OR_RAISE(auto snapshot, Snapshot::Open(store_, std::move(manifest)));
  SetSnapshot(std::move(snapshot), version, false);
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
    const std::function<void()>& on_abandon) {
  for (int attempt = 0; attempt < kMaxCommitAttempts; ++attempt) {
    auto latest = LatestManifest();
    if (!latest.ok()) {
      on_abandon();
      return latest.status();
    }
    auto next = make(*latest);
    if (!next.ok()) {
      on_abandon();
      return next.status();
    }
    next->version = latest->version + 1;
    next->timestamp_ms = NowMs();
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
    SetSnapshot(Snapshot::Open(store_, std::move(*next)), version, false);
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
      [&] { store_->RemoveUnreferenced(PathsOf(written)); });
}

arrow::Result<uint64_t> Table::Overwrite(arrow::RecordBatchReader* data,
                                         std::shared_ptr<arrow::Schema> schema) {
  ARROW_RETURN_NOT_OK(CheckWritable());
  if (schema == nullptr) schema = data->schema();
  ARROW_RETURN_NOT_OK(ValidateSchema(*schema));
  ARROW_ASSIGN_OR_RAISE(auto adapted, AdaptToSchema(data, schema, Describe(name_)));
  ARROW_ASSIGN_OR_RAISE(auto written, store_->WriteFragments(schema, adapted.get()));
  return CommitWithRetry(
      [&](const format::Manifest& base) -> arrow::Result<format::Manifest> {
        format::Manifest next;
        next.operation = "overwrite";
        next.schema = schema;
        next.next_fragment_id = base.next_fragment_id;
        AddFragments(&next, written);
        return next;
      },
      [&] { store_->RemoveUnreferenced(PathsOf(written)); });
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
            ARROW_ASSIGN_OR_RAISE(auto path, store_->WriteDeletionFile(*rows));
            attempt_files.push_back(path);
            info.deletion =
                format::DeletionFileInfo{path, static_cast<int64_t>(rows->size())};
          }
          next.fragments.push_back(std::move(info));
        }
        return next;
      },
      discard);
}

}  // namespace riffledb
