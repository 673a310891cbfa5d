#include "riffledb/storage/store.h"

#include <arrow/record_batch.h>
#include <arrow/table.h>

namespace riffledb {

// ---------------------------------------------------------------------------------------
// DirectoryStore

DirectoryStore::DirectoryStore(std::string path, std::shared_ptr<io::FileSystem> fs)
    : dir_(std::move(fs), std::move(path)) {}

arrow::Result<std::vector<uint64_t>> DirectoryStore::ListVersions() {
  return dir_.ListVersions();
}

arrow::Result<format::Manifest> DirectoryStore::ReadManifest(uint64_t version) {
  return dir_.ReadManifest(version);
}

arrow::Status DirectoryStore::Commit(const format::Manifest& manifest) {
  return dir_.Commit(manifest);
}

arrow::Result<std::vector<format::WrittenFragment>> DirectoryStore::WriteFragments(
    const std::shared_ptr<arrow::Schema>& schema, arrow::RecordBatchReader* reader) {
  return format::WriteFragments(*dir_.fs(), dir_.path(), schema, reader);
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
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<const FragmentData> data,
                        format::OpenFragmentFile(*dir_.fs(), dir_.Resolve(info.path),
                                                 schema, info.physical_rows));
  std::lock_guard<ForkSafeMutex> lock(mu_);
  auto& slot = fragments_[info.path];
  if (auto other = slot.lock()) return other;  // another thread opened it meanwhile
  slot = data;
  return data;
}

arrow::Result<std::string> DirectoryStore::WriteDeletionFile(
    const std::vector<uint32_t>& rows) {
  std::string relative = "_deletions/" + io::RandomId() + ".arrow";
  ARROW_RETURN_NOT_OK(
      format::WriteDeletionFile(*dir_.fs(), dir_.Resolve(relative), rows));
  return relative;
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
  ARROW_ASSIGN_OR_RAISE(auto rows,
                        format::ReadDeletionFile(*dir_.fs(), dir_.Resolve(info.path),
                                                 physical_rows, info.num_deleted));
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

arrow::Status MemoryStore::Commit(const format::Manifest& manifest) {
  std::lock_guard<ForkSafeMutex> lock(mu_);
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
        std::string path = "data/" + std::to_string(next_file_++);
        fragments_.emplace(path, FragmentData::Make(std::move(batches)));
        written.push_back({path, rows});
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

arrow::Result<std::string> MemoryStore::WriteDeletionFile(
    const std::vector<uint32_t>& rows) {
  std::lock_guard<ForkSafeMutex> lock(mu_);
  std::string path = "_deletions/" + std::to_string(next_file_++);
  deletions_.emplace(path, std::make_shared<const std::vector<uint32_t>>(rows));
  return path;
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
  }
}

}  // namespace riffledb
