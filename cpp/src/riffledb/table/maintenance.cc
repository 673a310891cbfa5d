// Table maintenance: compaction (Table::Compact) and cleanup of old versions
// (Table::CleanupOldVersions), as LanceDB's optimize() and cleanup_old_versions().
//
// Why cleanup never deletes a file a remaining version references, with writers running
// in other processes (docs/tables.md, "Maintenance"):
//
// 1. Files are listed *before* the manifests are read. A file written after the listing
//    is not a candidate; one written before it and committed before the manifests are
//    read is referenced by a version cleanup reads.
// 2. A writer commits version N+1 only if N is still the newest version, and it carries
//    over files of N only. Cleanup keeps the newest version it reads, so whatever a
//    racing commit carries over is referenced by a kept version.
// 3. What is left is a file written before the listing and committed after the
//    manifests were read (a slow append, a delete's deletion file): no version cleanup
//    read references it. Such unverified files are removed only when older than the
//    grace period (kUnverifiedGraceMs, and older_than), judged by their mtime.
// 4. restore(n) carries over the files of an old version n. Versions committed while
//    cleanup removed manifests are read again before any file is removed, which closes
//    all but a window between that re-read and the deletes; restoring a version while it
//    is being cleaned up is unsupported (docs/tables.md).
#include <arrow/compute/api.h>

#include <algorithm>
#include <chrono>
#include <unordered_set>
#include <vector>

#include "riffledb/format/fragment.h"
#include "riffledb/format/references.h"
#include "riffledb/io/mapped_file.h"
#include "riffledb/table/gather.h"
#include "riffledb/table/table.h"
#include "riffledb/util/arrow_init.h"
#include "riffledb/util/status.h"
#include "riffledb/util/thread_pool.h"

namespace riffledb {

namespace {

constexpr int kMaxCompactionAttempts = 3;
// Removals run this many at a time: each waits on the filesystem (an ext4 unlink of an
// fsynced file waits for the journal, ~1-4 ms), not on a CPU, and concurrent ones share
// journal commits.
constexpr int kRemovalThreads = 8;
// Removals between two progress reports (made on the calling thread, never on a pool
// thread: a Python callback must not run there).
constexpr int64_t kRemovalBatch = 64;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Report(const Progress& progress, std::string_view stage, int64_t done,
            int64_t total) {
  if (progress) progress(stage, done, total);
}

// A run of adjacent fragments of one manifest rewritten into one new fragment (or a few,
// if the writer has to cut it).
struct Group {
  std::vector<format::FragmentInfo> fragments;  // as in the planned manifest
  int64_t live_rows = 0;
};

bool SameFragment(const format::FragmentInfo& a, const format::FragmentInfo& b) {
  if (a.id != b.id || a.path != b.path || a.physical_rows != b.physical_rows) {
    return false;
  }
  if (a.deletion.has_value() != b.deletion.has_value()) return false;
  return !a.deletion.has_value() || a.deletion->path == b.deletion->path;
}

// Groups of `manifest`'s fragments worth rewriting: adjacent fragments with fewer live
// rows than `target` merged greedily up to `target` rows, and any fragment with deleted
// rows. A lone small fragment without deletions is left alone (nothing to gain).
std::vector<Group> PlanCompaction(const format::Manifest& manifest, int64_t target) {
  std::vector<Group> groups;
  Group current;
  bool has_deletion = false;
  auto close = [&] {
    if (current.fragments.size() >= 2 || has_deletion) groups.push_back(current);
    current = Group{};
    has_deletion = false;
  };
  for (const auto& fragment : manifest.fragments) {
    const int64_t live = fragment.num_rows();
    const bool small = live < target;
    if (!small && !fragment.deletion.has_value()) {
      close();
      continue;
    }
    if (!current.fragments.empty() && current.live_rows + live > target) close();
    current.fragments.push_back(fragment);
    current.live_rows += live;
    has_deletion = has_deletion || fragment.deletion.has_value();
    // A large fragment with deletions is rewritten on its own.
    if (!small) close();
  }
  close();
  return groups;
}

// Streams the live rows of a group's fragments, in scan order.
class GroupReader : public arrow::RecordBatchReader {
 public:
  GroupReader(std::shared_ptr<Store> store, std::shared_ptr<arrow::Schema> schema,
              const Group& group, std::function<void(int64_t)> on_rows)
      : store_(std::move(store)),
        schema_(std::move(schema)),
        group_(group),
        on_rows_(std::move(on_rows)) {}

  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    while (true) {
      if (data_ == nullptr) {
        if (next_fragment_ == group_.fragments.size()) {
          *out = nullptr;
          return arrow::Status::OK();
        }
        const auto& info = group_.fragments[next_fragment_];
        ARROW_ASSIGN_OR_RAISE(data_, store_->OpenFragment(info, schema_));
        deleted_ = nullptr;
        if (info.deletion.has_value()) {
          ARROW_ASSIGN_OR_RAISE(
              deleted_, store_->ReadDeletionFile(*info.deletion, info.physical_rows));
        }
        next_batch_ = 0;
      }
      if (next_batch_ == data_->columns.size()) {
        // Mapped pages of a file truncated under us read as zeros: never commit them.
        if (data_->source != nullptr) {
          ARROW_RETURN_NOT_OK(io::CheckMapping(*data_->source));
        }
        data_ = nullptr;
        ++next_fragment_;
        continue;
      }
      const size_t b = next_batch_++;
      const int64_t start = data_->batch_offsets[b];
      const int64_t end = data_->batch_offsets[b + 1];
      // Built from the pre-boxed arrays, never batches[b]->column() (FragmentData).
      auto batch = arrow::RecordBatch::Make(schema_, end - start, data_->columns[b]);
      if (deleted_ != nullptr) {
        auto first = std::lower_bound(deleted_->begin(), deleted_->end(),
                                      static_cast<uint32_t>(start));
        auto last =
            std::lower_bound(first, deleted_->end(), static_cast<uint64_t>(end),
                             [](uint32_t row, uint64_t bound) { return row < bound; });
        if (first != last) {
          std::vector<int64_t> rows;  // the batch's rows kept
          rows.reserve(static_cast<size_t>(end - start - (last - first)));
          auto next_deleted = first;
          for (int64_t row = start; row < end; ++row) {
            if (next_deleted != last && *next_deleted == row) {
              ++next_deleted;
              continue;
            }
            rows.push_back(row - start);
          }
          // Column by column (TakeRows): Arrow's Take has no kernel for view types.
          arrow::ArrayVector columns;
          for (const auto& column : batch->columns()) {
            ARROW_ASSIGN_OR_RAISE(columns.emplace_back(), TakeRows(column, rows));
          }
          batch = arrow::RecordBatch::Make(
              batch->schema(), static_cast<int64_t>(rows.size()), std::move(columns));
        }
      }
      if (batch->num_rows() == 0) continue;
      if (on_rows_) on_rows_(batch->num_rows());
      *out = std::move(batch);
      return arrow::Status::OK();
    }
  }

 private:
  const std::shared_ptr<Store> store_;
  const std::shared_ptr<arrow::Schema> schema_;
  const Group& group_;
  const std::function<void(int64_t)> on_rows_;
  size_t next_fragment_ = 0;
  std::shared_ptr<const FragmentData> data_;
  std::shared_ptr<const std::vector<uint32_t>> deleted_;
  size_t next_batch_ = 0;
};

std::string DescribeFragment(const format::FragmentInfo& fragment) {
  return "fragment " + std::to_string(fragment.id) + " (" + fragment.path + ")";
}

}  // namespace

arrow::Result<CompactionStats> Table::Compact(const CompactionOptions& options,
                                              const Progress& progress) {
  ARROW_RETURN_NOT_OK(CheckWritable());
  ARROW_RETURN_NOT_OK(EnsureArrowComputeInitialized());
  if (options.target_rows_per_fragment < 0) {
    return arrow::Status::Invalid("target_rows_per_fragment must be >= 0, got ",
                                  options.target_rows_per_fragment);
  }
  const int64_t target = options.target_rows_per_fragment > 0
                             ? options.target_rows_per_fragment
                             : format::FragmentWriteOptions{}.max_rows_per_fragment;
  std::string conflict;
  for (int attempt = 0; attempt < kMaxCompactionAttempts; ++attempt) {
    ARROW_ASSIGN_OR_RAISE(format::Manifest latest, LatestManifest());
    std::vector<Group> groups = PlanCompaction(latest, target);
    if (groups.empty()) return CompactionStats{};
    int64_t total_rows = 0;
    for (const auto& group : groups) total_rows += group.live_rows;

    // Rewrite every group; `written[g]` are the new fragment files of groups[g].
    std::vector<std::vector<format::WrittenFragment>> written;
    auto abandon = [&] {
      std::vector<std::string> paths;
      for (const auto& files : written) {
        for (const auto& file : files) paths.push_back(file.path);
      }
      store_->RemoveUnreferenced(paths);
    };
    int64_t rows_done = 0;
    Report(progress, "rewriting rows", 0, total_rows);
    for (const auto& group : groups) {
      GroupReader reader(store_, latest.schema, group, [&](int64_t rows) {
        rows_done += rows;
        Report(progress, "rewriting rows", rows_done, total_rows);
      });
      auto files = store_->WriteFragments(latest.schema, &reader);
      if (!files.ok()) {
        abandon();
        return files.status();
      }
      written.push_back(std::move(*files));
    }

    conflict.clear();
    CompactionStats stats;
    auto committed = CommitWithRetry(
        [&](const format::Manifest& base) -> arrow::Result<format::Manifest> {
          // Rebase: each group must still be in the newest version, unchanged and
          // adjacent; appends after it (or anywhere else) are kept as they are.
          stats = CompactionStats{};
          format::Manifest next = base;
          next.operation = "optimize";
          next.fragments.clear();
          size_t g = 0;
          size_t i = 0;
          while (i < base.fragments.size()) {
            const auto& fragment = base.fragments[i];
            if (g < groups.size() && fragment.id == groups[g].fragments.front().id) {
              const auto& group = groups[g];
              for (size_t k = 0; k < group.fragments.size(); ++k) {
                if (i + k >= base.fragments.size() ||
                    !SameFragment(base.fragments[i + k], group.fragments[k])) {
                  conflict = DescribeFragment(group.fragments[k]) +
                             " was changed by a concurrent write";
                  return arrow::Status::Invalid(conflict);
                }
                stats.fragments_removed += 1;
                stats.files_removed += group.fragments[k].deletion.has_value() ? 2 : 1;
              }
              for (const auto& file : written[g]) {
                format::FragmentInfo info;
                info.id = next.next_fragment_id++;
                info.path = file.path;
                info.physical_rows = file.physical_rows;
                info.digest = file.digest;
                info.num_batches = file.num_batches;
                next.fragments.push_back(std::move(info));
                stats.fragments_added += 1;
                stats.files_added += 1;
              }
              i += group.fragments.size();
              ++g;
              continue;
            }
            next.fragments.push_back(fragment);
            ++i;
          }
          if (g < groups.size()) {
            conflict = DescribeFragment(groups[g].fragments.front()) +
                       " was removed by a concurrent write";
            return arrow::Status::Invalid(conflict);
          }
          return next;
        },
        abandon);
    if (committed.ok()) return stats;
    if (conflict.empty()) return committed.status();
    // A delete or an overwrite won the race for a fragment we rewrote: plan again on
    // what it committed.
  }
  return arrow::Status::Invalid("Optimize of table '", name_, "' gave up after ",
                                kMaxCompactionAttempts,
                                " attempts: each time a concurrent write changed the "
                                "fragments being compacted (last: ",
                                conflict, "); nothing was committed");
}

arrow::Result<CleanupStats> Table::CleanupOldVersions(const CleanupOptions& options,
                                                      const Progress& progress) {
  if (options.older_than_ms < 0) {
    return arrow::Status::Invalid("older_than must not be negative, got ",
                                  options.older_than_ms, " ms");
  }
  const int64_t now = options.now_ms >= 0 ? options.now_ms : NowMs();
  const int64_t cutoff = now - options.older_than_ms;
  const int64_t grace_cutoff = now - std::max(options.older_than_ms, kUnverifiedGraceMs);

  // (1) in the file comment: files first, then manifests.
  ARROW_ASSIGN_OR_RAISE(std::vector<StoredFile> files, store_->ListFiles());
  ARROW_ASSIGN_OR_RAISE(std::vector<uint64_t> versions, store_->ListVersions());
  if (versions.empty()) {
    return arrow::Status::Invalid("Table '", name_, "' at ", store_->location(),
                                  " has no committed version");
  }
  const uint64_t latest = versions.back();
  std::unordered_set<std::string> kept_files;     // referenced by a remaining version
  std::unordered_set<std::string> removed_files;  // referenced by a removed version
  std::vector<uint64_t> removed;
  auto read = [&](uint64_t version) -> arrow::Result<format::Manifest> {
    // From storage: a manifest damaged since it was cached must stop the cleanup.
    auto manifest = ReadVersion(version, /*from_storage=*/true);
    if (!manifest.ok() && GetErrorKind(manifest.status()) == ErrorKind::kCorruption) {
      return manifest.status().WithMessage("Cannot clean up table '", name_,
                                           "': the files of version ", version,
                                           " are unknown. ", manifest.status().message());
    }
    return manifest;
  };
  // Parsing manifests is CPU work: a batch at a time on the process pool, so that at
  // most a batch of manifests is held at once.
  const auto num_versions = static_cast<int64_t>(versions.size());
  for (int64_t begin = 0; begin < num_versions; begin += kRemovalBatch) {
    Report(progress, "reading versions", begin, num_versions);
    const int64_t n = std::min(kRemovalBatch, num_versions - begin);
    std::vector<arrow::Result<format::Manifest>> manifests(n);
    ARROW_RETURN_NOT_OK(ThreadPool::Default()->ParallelFor(n, [&](int64_t i) {
      manifests[i] = read(versions[begin + i]);
      return arrow::Status::OK();
    }));
    for (int64_t i = 0; i < n; ++i) {
      ARROW_ASSIGN_OR_RAISE(format::Manifest manifest, std::move(manifests[i]));
      const uint64_t version = versions[begin + i];
      const bool keep = version == latest || manifest.timestamp_ms >= cutoff;
      auto& into = keep ? kept_files : removed_files;
      for (auto& path : format::ReferencedFiles(manifest)) into.insert(std::move(path));
      if (!keep) removed.push_back(version);
    }
  }
  Report(progress, "reading versions", static_cast<int64_t>(versions.size()),
         static_cast<int64_t>(versions.size()));

  CleanupStats stats;
  ThreadPool pool(kRemovalThreads);
  // Oldest first, batch by batch: a cleanup killed part way leaves mostly newer
  // versions (all of whose files are kept); the next cleanup removes what it left.
  const auto num_removed = static_cast<int64_t>(removed.size());
  for (int64_t begin = 0; begin < num_removed; begin += kRemovalBatch) {
    Report(progress, "removing versions", begin, num_removed);
    const int64_t n = std::min(kRemovalBatch, num_removed - begin);
    ARROW_RETURN_NOT_OK(pool.ParallelFor(
        n, [&](int64_t i) { return store_->RemoveVersion(removed[begin + i]); }));
    stats.old_versions += n;
  }
  Report(progress, "removing versions", num_removed, num_removed);

  // (4): versions committed since the listing keep their files.
  ARROW_ASSIGN_OR_RAISE(auto now_versions, store_->ListVersions());
  for (uint64_t version : now_versions) {
    if (version <= latest) continue;
    ARROW_ASSIGN_OR_RAISE(format::Manifest manifest, read(version));
    for (auto& path : format::ReferencedFiles(manifest))
      kept_files.insert(std::move(path));
  }

  std::vector<const StoredFile*> doomed;
  for (const auto& file : files) {
    if (kept_files.count(file.path) != 0) continue;
    const bool verified = removed_files.count(file.path) != 0;
    // (3): an unverified file may be a writer's that has not committed yet.
    if (!verified && !options.delete_unverified &&
        (file.mtime_ms < 0 || file.mtime_ms >= grace_cutoff)) {
      continue;
    }
    doomed.push_back(&file);
  }
  const auto num_doomed = static_cast<int64_t>(doomed.size());
  for (int64_t begin = 0; begin < num_doomed; begin += kRemovalBatch) {
    Report(progress, "removing files", begin, num_doomed);
    const int64_t n = std::min(kRemovalBatch, num_doomed - begin);
    ARROW_RETURN_NOT_OK(pool.ParallelFor(
        n, [&](int64_t i) { return store_->RemoveFile(doomed[begin + i]->path); }));
    for (int64_t i = begin; i < begin + n; ++i) {
      stats.files_removed += 1;
      stats.bytes_removed += doomed[i]->size;
    }
  }
  Report(progress, "removing files", num_doomed, num_doomed);
  return stats;
}

}  // namespace riffledb
