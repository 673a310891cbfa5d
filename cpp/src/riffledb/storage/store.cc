#include "riffledb/storage/store.h"

#include <arrow/record_batch.h>
#include <arrow/table.h>
#include <arrow/util/byte_size.h>

#include <algorithm>
#include <chrono>

#include "riffledb/format/lazy_fragment.h"
#include "riffledb/format/references.h"
#include "riffledb/util/status.h"

namespace riffledb {

// ---------------------------------------------------------------------------------------
// DirectoryStore

namespace {

constexpr char kVersionsDir[] = "_versions";
constexpr char kDeletionsDir[] = "_deletions";
constexpr char kSegmentsDir[] = "_segments";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

DirectoryStore::DirectoryStore(std::string path, std::shared_ptr<io::FileSystem> fs)
    : dir_(std::move(fs), std::move(path)) {}

bool DirectoryStore::Dropped() {
  // Before the first version, a missing `_versions/` means "being created".
  if (!seen_version_.load(std::memory_order_acquire)) return false;
  auto type = dir_.fs()->Type(dir_.Resolve(kVersionsDir));
  return type.ok() && *type == io::EntryType::kNotFound;
}

arrow::Status DirectoryStore::DroppedError(const std::string& cause) const {
  return WithErrorKind(
      arrow::Status::Invalid("The table at '", dir_.path(),
                             "' was dropped (its directory is gone): ", cause),
      ErrorKind::kTableNotFound);
}

std::string DirectoryStore::KnownTableId() {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  return table_id_;
}

bool DirectoryStore::Replaced() {
  const std::string known = KnownTableId();
  if (known.empty()) return false;
  auto versions = dir_.ListVersions();
  if (!versions.ok()) return false;
  // `_versions/` there and empty: another table is being created under the name.
  if (versions->empty()) return true;
  auto id = dir_.ReadTableId(versions->back());
  return id.ok() && id->has_value() && !(*id)->empty() && **id != known;
}

arrow::Status DirectoryStore::IfDropped(const arrow::Status& cause) {
  if (cause.ok() || cause.IsAlreadyExists()) return cause;
  if (Dropped()) return DroppedError(cause.message());
  if (!Replaced()) return cause;
  ForgetTable();  // the cached manifests are the old table's: the next read is fresh
  return WithErrorKind(
      arrow::Status::Invalid(
          "The table at '", dir_.path(),
          "' was dropped and created again since it was read: ", cause.message()),
      ErrorKind::kTableNotFound);
}

arrow::Result<bool> DirectoryStore::SameTableAt(uint64_t version) {
  const std::string known = KnownTableId();
  if (known.empty()) return true;  // nothing to compare with
  auto id = dir_.ReadTableId(version);
  if (!id.ok()) return IfDropped(id.status());
  return id->has_value() && ((*id)->empty() || **id == known);
}

arrow::Status DirectoryStore::CheckBase(const format::Manifest& manifest) {
  if (manifest.version <= 1 || manifest.table_id.empty()) return arrow::Status::OK();
  auto base = dir_.ReadTableId(manifest.version - 1);
  // Unreadable (a restore commits over a damaged newest version; an I/O error): the
  // exclusive create decides alone, as it did before table ids.
  if (!base.ok()) return arrow::Status::OK();
  if (base->has_value() && ((*base)->empty() || **base == manifest.table_id)) {
    return arrow::Status::OK();  // "": a table written before table ids, adopting one
  }
  ARROW_RETURN_NOT_OK(CheckNotDropped());
  // Version n-1 is gone or another table's: this commit was built on a manifest of a
  // table dropped since (the cache of this store, a handle's snapshot), and another
  // one has taken its name. Forget the old one; the caller rebases on the new.
  ForgetTable();
  // AlreadyExists: a lost race, which commits rebase; kTableNotFound: of a replaced
  // table, for those that cannot rebase (a restore).
  return WithErrorKind(
      arrow::Status::AlreadyExists(
          "Version ", manifest.version - 1, " of the table at '", dir_.path(),
          "' is not the one this commit was built on: the table was dropped and created "
          "again"),
      ErrorKind::kTableNotFound);
}

void DirectoryStore::NoteTableLocked(const format::Manifest& manifest) {
  if (manifest.table_id.empty() || table_id_ == manifest.table_id) return;
  // Cached before: the old table's, or this table's from before it had an id (whose
  // successor may be another table).
  manifests_.clear();
  table_id_ = manifest.table_id;
}

void DirectoryStore::NoteTable(const format::Manifest& manifest) {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  NoteTableLocked(manifest);
}

void DirectoryStore::ForgetTable() {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  manifests_.clear();
  table_id_.clear();
}

arrow::Status DirectoryStore::CheckNotDropped() {
  if (!Dropped()) return arrow::Status::OK();
  // Appended, not "'" + string: GCC 12 warns about the inlined insert (-Wrestrict).
  std::string cause = "'";
  cause.append(dir_.Resolve(kVersionsDir)).append("' does not exist");
  return DroppedError(cause);
}

void DirectoryStore::SawVersion(uint64_t version) {
  seen_version_.store(true, std::memory_order_release);
  uint64_t seen = latest_seen_.load(std::memory_order_relaxed);
  while (seen < version &&
         !latest_seen_.compare_exchange_weak(seen, version, std::memory_order_relaxed)) {
  }
}

arrow::Result<uint64_t> DirectoryStore::LatestVersion() {
  constexpr int kMaxProbes = 32;  // more versions since: listing is cheaper
  uint64_t latest = latest_seen_.load(std::memory_order_relaxed);
  if (latest != 0) {
    ARROW_ASSIGN_OR_RAISE(bool exists, dir_.HasVersion(latest));
    // Gone only if the table was dropped (and maybe created again): list.
    if (exists) {
      for (int probe = 0; probe < kMaxProbes; ++probe) {
        ARROW_ASSIGN_OR_RAISE(bool next, dir_.HasVersion(latest + 1));
        if (!next) {
          SawVersion(latest);
          return latest;
        }
        ++latest;
      }
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto versions, ListVersions());
  return versions.empty() ? 0 : versions.back();
}

arrow::Result<std::vector<uint64_t>> DirectoryStore::ListVersions() {
  ARROW_ASSIGN_OR_RAISE(auto versions, dir_.ListVersions());
  const uint64_t newest = versions.empty() ? 0 : versions.back();
  if (newest < latest_seen_.load(std::memory_order_relaxed)) {
    // Versions only grow, unless the table was dropped and another one created under
    // its name: what this store remembers is of the old table.
    std::lock_guard<ForkSafeMutex> lock(mu_);
    manifests_.clear();
    latest_seen_.store(newest, std::memory_order_relaxed);
  }
  if (!versions.empty()) {
    SawVersion(versions.back());
  } else {
    // A table that existed lists no version only once dropped: say so rather than
    // "has no committed version".
    ARROW_RETURN_NOT_OK(CheckNotDropped());
  }
  return versions;
}

void DirectoryStore::CacheManifest(format::Manifest manifest) {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  NoteTableLocked(manifest);
  const uint64_t version = manifest.version;
  manifests_[version] = std::make_shared<const format::Manifest>(std::move(manifest));
  while (manifests_.size() > kCachedManifests) manifests_.erase(manifests_.begin());
}

arrow::Result<format::Manifest> DirectoryStore::ReadManifest(uint64_t version) {
  {
    std::lock_guard<ForkSafeMutex> lock(mu_);
    auto it = manifests_.find(version);
    if (it != manifests_.end()) return *it->second;
  }
  auto manifest = dir_.ReadManifest(version);
  if (!manifest.ok()) return IfDropped(manifest.status());  // listed, then dropped
  SawVersion(version);
  CacheManifest(*manifest);  // noting its table_id
  return manifest;
}

arrow::Result<format::Manifest> DirectoryStore::ReadStoredManifest(uint64_t version) {
  auto manifest = dir_.ReadManifest(version);
  if (!manifest.ok()) return IfDropped(manifest.status());
  NoteTable(*manifest);
  return manifest;
}

arrow::Status DirectoryStore::Commit(const format::Manifest& manifest) {
  ARROW_RETURN_NOT_OK(CheckBase(manifest));
  format::Manifest committed;
  arrow::Status st = dir_.Commit(manifest, &committed);
  if (st.ok()) {
    SawVersion(manifest.version);
    CacheManifest(std::move(committed));
    return st;
  }
  // Without `_versions/` no version can have become visible, whatever the error said.
  return IfDropped(st);
}

arrow::Result<std::vector<format::WrittenFragment>> DirectoryStore::WriteFragments(
    const std::shared_ptr<arrow::Schema>& schema, arrow::RecordBatchReader* reader) {
  // Checked first so that a writer of a dropped table fails before writing anything;
  // a drop that lands later is caught by the commit, which never recreates `_versions/`.
  ARROW_RETURN_NOT_OK(CheckNotDropped());
  auto written = format::WriteFragments(*dir_.fs(), dir_.path(), schema, reader);
  if (!written.ok()) return IfDropped(written.status());
  return written;
}

arrow::Result<std::shared_ptr<const FragmentData>> DirectoryStore::OpenFragment(
    const format::FragmentInfo& info, const std::shared_ptr<arrow::Schema>& schema) {
  {
    std::lock_guard<ForkSafeMutex> lock(mu_);
    auto it = fragments_.find(info.path);
    if (it != fragments_.end()) {
      if (auto data = it->second.lock()) return data;
    }
  }
  // Open outside the lock: mapping and validating a file is I/O.
  const std::string path = dir_.Resolve(info.path);
  arrow::Result<std::shared_ptr<FragmentData>> opened;
  std::shared_ptr<io::CachedFile> cached;
  if (info.digest) {
    // A remote store's files come through its cache, fetched as rows are read.
    ARROW_ASSIGN_OR_RAISE(
        cached, dir_.fs()->OpenCached(path, info.digest->size, info.digest->crc32c));
  }
  if (cached != nullptr) {
    opened = format::OpenCachedFragmentFile(cached, path, schema, info.physical_rows,
                                            *info.digest);
  } else {
    opened = format::OpenFragmentFile(*dir_.fs(), path, schema, info.physical_rows,
                                      info.digest);
  }
  if (!opened.ok()) return IfDropped(opened.status());
  std::shared_ptr<const FragmentData> data = std::move(*opened);
  std::lock_guard<ForkSafeMutex> lock(mu_);
  auto& slot = fragments_[info.path];
  if (auto other = slot.lock()) return other;  // another thread opened it meanwhile
  slot = data;
  return data;
}

arrow::Status DirectoryStore::CheckWrittenFragment(
    const format::WrittenFragment& fragment, const arrow::Schema& schema) {
  if (!fragment.digest) {
    // Every file WriteFragments writes here has one: a description without it was
    // written for a memory table, or by hand.
    return arrow::Status::Invalid("Fragment file '", fragment.path,
                                  "' has no size and crc32c in its description, as "
                                  "every file written to a table directory has");
  }
  const std::string path = dir_.Resolve(fragment.path);
  ARROW_ASSIGN_OR_RAISE(auto type, dir_.fs()->Type(path));
  if (type != io::EntryType::kFile) {
    ARROW_RETURN_NOT_OK(CheckNotDropped());
    return format::DescribedFragmentMissing(fragment.path, dir_.path());
  }
  return IfDropped(format::CheckFragmentFile(*dir_.fs(), path, fragment, schema));
}

arrow::Result<bool> DirectoryStore::HasFile(const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(auto type, dir_.fs()->Type(dir_.Resolve(path)));
  if (type == io::EntryType::kFile) return true;
  ARROW_RETURN_NOT_OK(CheckNotDropped());
  return false;
}

arrow::Result<format::DeletionFileInfo> DirectoryStore::WriteDeletionFile(
    const std::vector<uint32_t>& rows) {
  ARROW_RETURN_NOT_OK(CheckNotDropped());
  // Tables get `_deletions/` at their first delete. The seam's exclusive create never
  // makes directories; a drop racing this leaves at most an empty directory in a
  // table-less `<name>.riffle/`, which lists no table, and the commit then fails.
  ARROW_RETURN_NOT_OK(IfDropped(dir_.fs()->CreateDirs(dir_.Resolve(kDeletionsDir))));
  std::string relative = std::string(kDeletionsDir) + "/" + io::RandomId() + ".arrow";
  auto digest = format::WriteDeletionFile(*dir_.fs(), dir_.Resolve(relative), rows);
  if (!digest.ok()) return IfDropped(digest.status());
  return format::DeletionFileInfo{relative, static_cast<int64_t>(rows.size()), *digest};
}

arrow::Result<std::shared_ptr<const std::vector<uint32_t>>>
DirectoryStore::ReadDeletionFile(const format::DeletionFileInfo& info,
                                 int64_t physical_rows) {
  {
    std::lock_guard<ForkSafeMutex> lock(mu_);
    auto it = deletions_.find(info.path);
    if (it != deletions_.end()) {
      if (auto rows = it->second.lock()) return rows;
    }
  }
  ARROW_ASSIGN_OR_RAISE(
      auto rows, format::ReadDeletionFile(*dir_.fs(), dir_.Resolve(info.path),
                                          physical_rows, info.num_deleted, info.digest));
  std::shared_ptr<const std::vector<uint32_t>> shared =
      std::make_shared<const std::vector<uint32_t>>(std::move(rows));
  std::lock_guard<ForkSafeMutex> lock(mu_);
  auto& slot = deletions_[info.path];
  if (auto other = slot.lock()) return other;
  slot = shared;
  return shared;
}

void DirectoryStore::RemoveUnreferenced(const std::vector<std::string>& paths) {
  for (const auto& path : paths) {
    // Best effort: an orphan file is harmless, it is never referenced by a manifest.
    (void)dir_.fs()->DeleteFile(dir_.Resolve(path));
  }
}

arrow::Result<std::vector<StoredFile>> DirectoryStore::ListFiles() {
  std::vector<StoredFile> files;
  for (const std::string& dir :
       {std::string(format::kDataDir), std::string(kDeletionsDir),
        std::string(kSegmentsDir), std::string(kVersionsDir)}) {
    const bool versions = dir == kVersionsDir;
    ARROW_ASSIGN_OR_RAISE(auto entries, dir_.fs()->List(dir_.Resolve(dir)));
    for (const auto& entry : entries) {
      if (entry.type != io::EntryType::kFile) continue;
      // In `_versions/` only temporary files are garbage candidates: committed
      // manifests are removed by version, and files this code does not know are left
      // alone.
      if (versions && !format::IsTemporaryFileName(entry.name)) continue;
      files.push_back(
          {dir + "/" + entry.name, std::max<int64_t>(0, entry.size), entry.mtime_ms});
    }
  }
  return files;
}

arrow::Status DirectoryStore::RemoveVersion(uint64_t version) {
  {
    // A removed version must not be served from the cache of parsed manifests.
    std::lock_guard<ForkSafeMutex> lock(mu_);
    manifests_.erase(version);
  }
  return dir_.RemoveVersion(version);
}

arrow::Status DirectoryStore::RemoveFile(const std::string& path) {
  return dir_.fs()->DeleteFile(dir_.Resolve(path));
}

arrow::Status DirectoryStore::VerifyFile(const std::string& path,
                                         const format::FileDigest& digest) {
  return format::VerifyFile(*dir_.fs(), dir_.Resolve(path), digest);
}

// ---------------------------------------------------------------------------------------
// MemoryStore

arrow::Result<std::vector<uint64_t>> MemoryStore::ListVersions() {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  std::vector<uint64_t> versions;
  versions.reserve(versions_.size());
  for (const auto& [version, manifest] : versions_) versions.push_back(version);
  return versions;
}

arrow::Result<format::Manifest> MemoryStore::ReadManifest(uint64_t version) {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  auto it = versions_.find(version);
  if (it == versions_.end()) {
    if (versions_.empty()) {
      return arrow::Status::Invalid("Version ", version, " does not exist in table ",
                                    location_, "; it has no versions");
    }
    return arrow::Status::Invalid("Version ", version, " does not exist in table ",
                                  location_, "; versions: ", versions_.begin()->first,
                                  "..", versions_.rbegin()->first);
  }
  return it->second;
}

void MemoryStore::MarkDropped() {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  dropped_ = true;
}

arrow::Status MemoryStore::Commit(const format::Manifest& manifest) {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  if (dropped_) {
    return WithErrorKind(
        arrow::Status::Invalid("The table at '", location_, "' was dropped"),
        ErrorKind::kTableNotFound);
  }
  if (!versions_.emplace(manifest.version, manifest).second) {
    return arrow::Status::AlreadyExists("Version ", manifest.version, " of ", location_,
                                        " was committed concurrently");
  }
  return arrow::Status::OK();
}

arrow::Result<std::vector<format::WrittenFragment>> MemoryStore::WriteFragments(
    const std::shared_ptr<arrow::Schema>& schema, arrow::RecordBatchReader* reader) {
  std::vector<format::WrittenFragment> written;
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;  // of the current fragment
  int64_t rows = 0;
  format::BatchCoalescer coalescer(
      format::FragmentWriteOptions{},
      [&](std::shared_ptr<arrow::RecordBatch> batch) {
        rows += batch->num_rows();
        batches.push_back(std::move(batch));
        return arrow::Status::OK();
      },
      [&] {
        std::lock_guard<ForkSafeMutex> lock(mu_);
        std::string path = format::DataFilePath(std::to_string(next_file_++));
        fragments_.emplace(path, FragmentData::Make(std::move(batches)));
        created_ms_[path] = NowMs();
        written.push_back({path, rows, std::nullopt,
                           static_cast<int64_t>(fragments_.at(path)->batches.size())});
        batches.clear();
        rows = 0;
        return arrow::Status::OK();
      });
  auto fail = [&](arrow::Status st) {
    // A stream that fails part way (a cast error in a late batch) must not leave the
    // fragments of its first batches behind in memory.
    std::vector<std::string> paths;
    for (const auto& fragment : written) paths.push_back(fragment.path);
    RemoveUnreferenced(paths);
    return st;
  };
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    arrow::Status read = reader->ReadNext(&batch);
    if (!read.ok()) return fail(read);
    if (batch == nullptr) break;
    if (!batch->schema()->Equals(*schema, /*check_metadata=*/false)) {
      return fail(arrow::Status::Invalid(
          "Data schema does not match the table schema.\nData:\n",
          batch->schema()->ToString(), "\nTable:\n", schema->ToString()));
    }
    if (batch->num_rows() == 0) continue;
    arrow::Status added = coalescer.Add(batch);
    if (!added.ok()) return fail(added);
  }
  arrow::Status finished = coalescer.Finish();
  if (!finished.ok()) return fail(finished);
  return written;
}

arrow::Result<std::shared_ptr<const FragmentData>> MemoryStore::OpenFragment(
    const format::FragmentInfo& info, const std::shared_ptr<arrow::Schema>& schema) {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  auto it = fragments_.find(info.path);
  if (it == fragments_.end()) {
    return arrow::Status::IOError("Fragment ", info.path, " of ", location_,
                                  " is missing");
  }
  return it->second;
}

arrow::Status MemoryStore::CheckWrittenFragment(const format::WrittenFragment& fragment,
                                                const arrow::Schema& schema) {
  std::shared_ptr<const FragmentData> data;
  {
    std::lock_guard<ForkSafeMutex> lock(mu_);
    auto it = fragments_.find(fragment.path);
    if (it != fragments_.end()) data = it->second;
  }
  if (data == nullptr) return format::DescribedFragmentMissing(fragment.path, location_);
  return format::CheckDescribedFragment(
      fragment, schema,
      {.size = std::nullopt,
       .schema = data->batches.empty() ? nullptr : data->batches[0]->schema(),
       .num_batches = static_cast<int64_t>(data->batches.size()),
       .rows = data->num_rows()});
}

arrow::Result<bool> MemoryStore::HasFile(const std::string& path) {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  return fragments_.count(path) != 0 || deletions_.count(path) != 0;
}

arrow::Result<format::DeletionFileInfo> MemoryStore::WriteDeletionFile(
    const std::vector<uint32_t>& rows) {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  std::string path = "_deletions/" + std::to_string(next_file_++);
  deletions_.emplace(path, std::make_shared<const std::vector<uint32_t>>(rows));
  created_ms_[path] = NowMs();
  return format::DeletionFileInfo{path, static_cast<int64_t>(rows.size()), std::nullopt};
}

arrow::Result<std::shared_ptr<const std::vector<uint32_t>>> MemoryStore::ReadDeletionFile(
    const format::DeletionFileInfo& info, int64_t physical_rows) {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  auto it = deletions_.find(info.path);
  if (it == deletions_.end()) {
    return arrow::Status::IOError("Deletion file ", info.path, " of ", location_,
                                  " is missing");
  }
  return it->second;
}

void MemoryStore::RemoveUnreferenced(const std::vector<std::string>& paths) {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  for (const auto& path : paths) {
    fragments_.erase(path);
    deletions_.erase(path);
    created_ms_.erase(path);
  }
}

arrow::Result<std::vector<StoredFile>> MemoryStore::ListFiles() {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  std::vector<StoredFile> files;
  auto created = [&](const std::string& path) {
    auto it = created_ms_.find(path);
    return it == created_ms_.end() ? int64_t{-1} : it->second;
  };
  for (const auto& [path, data] : fragments_) {
    int64_t size = 0;
    // The pre-boxed arrays, never batch->column() (see FragmentData::columns).
    for (const auto& columns : data->columns) {
      for (const auto& column : columns) size += arrow::util::TotalBufferSize(*column);
    }
    files.push_back({path, size, created(path)});
  }
  for (const auto& [path, rows] : deletions_) {
    files.push_back(
        {path, static_cast<int64_t>(rows->size() * sizeof(uint32_t)), created(path)});
  }
  return files;
}

arrow::Status MemoryStore::RemoveVersion(uint64_t version) {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  versions_.erase(version);
  return arrow::Status::OK();
}

arrow::Status MemoryStore::RemoveFile(const std::string& path) {
  RemoveUnreferenced({path});
  return arrow::Status::OK();
}

}  // namespace riffledb
