#include "riffledb/format/table_dir.h"

#include <charconv>
#include <cstdio>
#include <mutex>
#include <string_view>

#include "riffledb/format/fragment.h"
#include "riffledb/format/segments.h"
#include "riffledb/util/status.h"

namespace riffledb::format {

namespace {

constexpr std::string_view kVersionsDir = "_versions";
constexpr std::string_view kManifestSuffix = ".json";
constexpr size_t kVersionDigits = 20;  // enough for every uint64; sorts as text

std::string ManifestName(uint64_t version) {
  char name[32];
  std::snprintf(name, sizeof(name), "%020llu.json",
                static_cast<unsigned long long>(version));
  return name;
}

// The version of a committed manifest's file name, or 0 for anything else (temporary
// files of an exclusive create start with '.' and end with ".tmp").
uint64_t ParseManifestName(std::string_view name) {
  if (name.size() != kVersionDigits + kManifestSuffix.size() ||
      name.substr(kVersionDigits) != kManifestSuffix) {
    return 0;
  }
  uint64_t version = 0;
  const char* end = name.data() + kVersionDigits;
  for (const char* p = name.data(); p < end; ++p) {
    if (*p < '0' || *p > '9') return 0;
  }
  auto [ptr, ec] = std::from_chars(name.data(), end, version);
  if (ec != std::errc() || ptr != end) return 0;
  return version;
}

std::string DescribeVersions(const std::vector<uint64_t>& versions) {
  if (versions.empty()) return "none";
  bool contiguous = versions.back() - versions.front() + 1 == versions.size();
  if (contiguous) {
    if (versions.size() == 1) return std::to_string(versions.front());
    return std::to_string(versions.front()) + ".." + std::to_string(versions.back());
  }
  std::string out;
  for (size_t i = 0; i < versions.size(); ++i) {
    if (i == 8 && versions.size() > 10) {
      out += ", ..., " + std::to_string(versions.back());
      break;
    }
    if (i > 0) out += ", ";
    out += std::to_string(versions[i]);
  }
  return out;
}

}  // namespace

std::string TableDir::Resolve(const std::string& relative) const {
  return io::JoinPath(path_, relative);
}

arrow::Result<std::vector<uint64_t>> TableDir::ListVersions() const {
  ARROW_ASSIGN_OR_RAISE(auto names,
                        fs_->ListFileNames(Resolve(std::string(kVersionsDir))));
  std::vector<uint64_t> versions;
  versions.reserve(names.size());
  for (const auto& name : names) {
    uint64_t version = ParseManifestName(name);
    if (version != 0) versions.push_back(version);
  }
  // Fixed-width names sort numerically already.
  return versions;
}

arrow::Result<bool> TableDir::HasVersion(uint64_t version) const {
  ARROW_ASSIGN_OR_RAISE(
      io::EntryType type,
      fs_->Type(Resolve(std::string(kVersionsDir) + "/" + ManifestName(version))));
  return type == io::EntryType::kFile;
}

arrow::Result<uint64_t> TableDir::LatestVersion() const {
  ARROW_ASSIGN_OR_RAISE(auto versions, ListVersions());
  if (versions.empty()) {
    return arrow::Status::Invalid("Not a riffledb table: '", path_,
                                  "' has no committed version in ", kVersionsDir, "/");
  }
  return versions.back();
}

arrow::Result<Manifest> TableDir::ReadManifest(uint64_t version) const {
  std::string relative = std::string(kVersionsDir) + "/" + ManifestName(version);
  std::string path = Resolve(relative);
  // Read first, and look at the type only when the read fails, as ReadTableId does: a
  // version that exists costs no type lookup (a HEAD on object storage).
  auto data = fs_->ReadFile(path);
  if (!data.ok()) {
    ARROW_ASSIGN_OR_RAISE(io::EntryType type, fs_->Type(path));
    if (type != io::EntryType::kNotFound) return data.status();
    ARROW_ASSIGN_OR_RAISE(auto versions, ListVersions());
    return arrow::Status::Invalid("Version ", version, " does not exist in table ", path_,
                                  "; versions: ", DescribeVersions(versions));
  }
  ARROW_ASSIGN_OR_RAISE(Manifest manifest, ParseManifest((*data)->ToString(), path));
  if (manifest.version != version) {
    return WithErrorKind(
        arrow::Status::Invalid(path, ": the manifest says version ", manifest.version,
                               ", its file name says ", version),
        ErrorKind::kCorruption);
  }
  if (!manifest.fragment_segments.empty() || !manifest.history_segments.empty()) {
    ARROW_RETURN_NOT_OK(ReadSegments(&manifest, path));
  }
  return manifest;
}

arrow::Result<std::optional<std::string>> TableDir::ReadTableId(uint64_t version) const {
  const std::string path =
      Resolve(std::string(kVersionsDir) + "/" + ManifestName(version));
  // Read first, and look at the type only when the read fails: for the version that
  // exists (every commit reads its base's id) no type lookup before the read (a HEAD on
  // object storage, where arrow::fs's read is a HEAD and a GET: 2 requests, not 3).
  auto data = fs_->ReadFile(path);
  if (!data.ok()) {
    ARROW_ASSIGN_OR_RAISE(io::EntryType type, fs_->Type(path));
    if (type == io::EntryType::kNotFound) return std::nullopt;
    return data.status();
  }
  ARROW_ASSIGN_OR_RAISE(Manifest manifest, ParseManifest((*data)->ToString(), path));
  return std::move(manifest.table_id);
}

template <typename Entry, typename Parse>
arrow::Status TableDir::ReadSegment(
    Segment<Entry>* segment,
    std::map<std::string, std::weak_ptr<const std::vector<Entry>>>* cache,
    const std::string& source, Parse parse) const {
  {
    std::lock_guard<ForkSafeMutex> lock(cache_->mu);
    auto it = cache->find(segment->path);
    if (it != cache->end()) segment->entries = it->second.lock();
  }
  // A cached segment was checked against the digest of the manifest that first read it;
  // another manifest naming the same file must record the same digest.
  if (segment->entries != nullptr) return arrow::Status::OK();
  const std::string path = Resolve(segment->path);
  auto damaged = [&](const arrow::Status& cause) {
    return WithErrorKind(
        arrow::Status::Invalid(source, ": its segment '", segment->path,
                               "' is damaged or missing: ", cause.message()),
        ErrorKind::kCorruption);
  };
  auto bytes = fs_->ReadFileOfSize(path, segment->digest.size);
  if (!bytes.ok()) {
    auto type = fs_->Type(path);
    if (type.ok() && *type == io::EntryType::kNotFound) return damaged(bytes.status());
    return bytes.status();  // an I/O error says nothing about the file's content
  }
  arrow::Status st = CheckDigest(**bytes, segment->digest, path);
  if (!st.ok()) return damaged(st);
  auto entries = parse((*bytes)->ToString(), path);
  if (!entries.ok()) return damaged(entries.status());
  auto shared = std::make_shared<const std::vector<Entry>>(std::move(*entries));
  std::lock_guard<ForkSafeMutex> lock(cache_->mu);
  auto& slot = (*cache)[segment->path];
  if (auto other = slot.lock()) {
    segment->entries = std::move(other);
  } else {
    slot = shared;
    segment->entries = std::move(shared);
  }
  // Forget segments no manifest holds any more, now and then.
  if (cache->size() > 256 && cache->size() % 64 == 0) {
    std::erase_if(*cache, [](const auto& item) { return item.second.expired(); });
  }
  return arrow::Status::OK();
}

arrow::Status TableDir::ReadSegments(Manifest* manifest,
                                     const std::string& source) const {
  for (auto& segment : manifest->fragment_segments) {
    ARROW_RETURN_NOT_OK(
        ReadSegment(&segment, &cache_->fragments, source, ParseFragmentSegment));
  }
  for (auto& segment : manifest->history_segments) {
    ARROW_RETURN_NOT_OK(
        ReadSegment(&segment, &cache_->history, source, ParseHistorySegment));
  }
  return ResolveManifest(manifest, source);
}

arrow::Result<Manifest> TableDir::ReadLatestManifest() const {
  ARROW_ASSIGN_OR_RAISE(uint64_t version, LatestVersion());
  return ReadManifest(version);
}

arrow::Status TableDir::RemoveVersion(uint64_t version) const {
  return fs_->DeleteFile(
      Resolve(std::string(kVersionsDir) + "/" + ManifestName(version)));
}

arrow::Status TableDir::Commit(const Manifest& base, Manifest* committed) const {
  Manifest manifest = base;
  manifest.format_version = kFormatVersion;
  ARROW_ASSIGN_OR_RAISE(std::vector<PendingFile> segments, PlanSegments(&manifest));
  ARROW_ASSIGN_OR_RAISE(std::string text, SerializeManifest(manifest));
  std::string path =
      Resolve(std::string(kVersionsDir) + "/" + ManifestName(manifest.version));
  auto committed_by_another = [&] {
    return arrow::Status::AlreadyExists("Version ", manifest.version, " of table ", path_,
                                        " was committed by another writer");
  };
  // Segments first, durable before the manifest that references them is visible. They
  // are not published by themselves: only a committed manifest makes them part of the
  // table, so a commit that fails removes them (unless its outcome is unknown).
  auto remove_segments = [&] {
    for (const auto& file : segments) (void)fs_->DeleteFile(Resolve(file.path));
  };
  if (!segments.empty()) {
    arrow::Status written = [&]() -> arrow::Status {
      for (const auto& file : segments) {
        ARROW_ASSIGN_OR_RAISE(auto out, fs_->CreateOutput(Resolve(file.path)));
        ARROW_RETURN_NOT_OK(
            out->Write(file.bytes.data(), static_cast<int64_t>(file.bytes.size())));
        ARROW_RETURN_NOT_OK(out->Close());
      }
      return fs_->SyncDir(Resolve(kSegmentsDir));
    }();
    if (!written.ok()) {
      remove_segments();
      return written;
    }
  }
  arrow::Status st = Publish(manifest, path, text);
  if (st.ok()) {
    if (committed != nullptr) {
      manifest.MarkStored();
      *committed = std::move(manifest);
    }
    return st;
  }
  if (GetErrorKind(st) != ErrorKind::kCommitOutcomeUnknown) remove_segments();
  if (st.IsAlreadyExists()) return committed_by_another();
  return st;
}

arrow::Status TableDir::Publish(const Manifest& manifest, const std::string& path,
                                const std::string& text) const {
  if (manifest.version == 1) {
    // Version 1 creates the table, so it alone may create the directories: the seam's
    // exclusive create never does, so that a later commit racing a drop (which renames
    // the directory away) fails instead of resurrecting the table.
    ARROW_RETURN_NOT_OK(fs_->CreateDirs(io::ParentDir(path)));
  }
  arrow::Status st = fs_->CreateExclusive(
      path, {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
  if (st.ok() || st.IsAlreadyExists()) return st;
  // The outcome is unknown: the store may have published the file before the error
  // (fsync of the directory after the link; a reply lost on the network). Our bytes
  // are unique to this attempt (random fragment names, a timestamp), so reading them
  // back tells.
  auto back = fs_->ReadFile(path);
  if (back.ok()) {
    if ((*back)->ToString() == text) return arrow::Status::OK();
    return arrow::Status::AlreadyExists("committed by another writer");
  }
  auto type = fs_->Type(path);
  if (type.ok() && *type == io::EntryType::kNotFound) return st;  // nothing published
  return WithErrorKind(
      st.WithMessage("Committing version ", manifest.version, " of table ", path_,
                     " failed and the outcome is unknown (the version may be visible): ",
                     st.message()),
      ErrorKind::kCommitOutcomeUnknown);
}

}  // namespace riffledb::format
