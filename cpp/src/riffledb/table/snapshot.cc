#include "riffledb/table/snapshot.h"

#include <algorithm>
#include <limits>

#include "riffledb/io/mapped_file.h"
#include "riffledb/util/status.h"

namespace riffledb {

namespace {

struct OpenedFragment {
  std::shared_ptr<const FragmentData> data;
  std::shared_ptr<const std::vector<uint32_t>> deleted;
};

// Maps and validates a fragment's file and reads its deletions.
arrow::Result<OpenedFragment> OpenFragmentFiles(
    Store& store, const format::FragmentInfo& info,
    const std::shared_ptr<arrow::Schema>& schema) {
  OpenedFragment opened;
  ARROW_ASSIGN_OR_RAISE(opened.data, store.OpenFragment(info, schema));
  if (opened.data->batch_offsets.back() != info.physical_rows) {
    return arrow::Status::Invalid("Fragment ", info.path, " of ", store.location(),
                                  " has ", opened.data->batch_offsets.back(),
                                  " rows but its manifest says ", info.physical_rows);
  }
  const auto batches = static_cast<int64_t>(opened.data->columns.size());
  if (info.num_batches && *info.num_batches != batches) {
    return WithErrorKind(
        arrow::Status::Invalid("Corrupt fragment file '", info.path, "' of ",
                               store.location(), ": it has ", batches,
                               " record batches, the manifest says ", *info.num_batches),
        ErrorKind::kCorruption);
  }
  if (info.deletion) {
    ARROW_ASSIGN_OR_RAISE(opened.deleted,
                          store.ReadDeletionFile(*info.deletion, info.physical_rows));
  }
  return opened;
}

}  // namespace

arrow::Result<std::shared_ptr<const Snapshot>> Snapshot::Open(
    std::shared_ptr<Store> store, format::Manifest manifest, const Snapshot* previous) {
  std::shared_ptr<Snapshot> snapshot(new Snapshot());
  const auto& infos = manifest.fragments;
  const size_t n = infos.size();
  // The fragments `previous` has in common with `manifest`, from the first one on.
  size_t shared = 0;
  if (previous != nullptr && previous->store_ == store &&
      previous->manifest_.schema->Equals(*manifest.schema, /*check_metadata=*/false)) {
    const auto& before = previous->manifest_.fragments;
    // An append extends the previous list in place: nothing to compare.
    if (infos.extends(before)) shared = before.size();
    while (shared < before.size() && shared < n &&
           before[shared].path == infos[shared].path &&
           before[shared].deletion == infos[shared].deletion) {
      ++shared;
    }
  }
  const bool lazy = n > kEagerFragments;
  std::vector<OpenedFragment> opened(n);
  snapshot->fragments_.reserve(n);
  snapshot->fragment_starts_.reserve(n + 1);
  snapshot->fragment_starts_.push_back(0);
  int64_t total_chunks = 0;
  for (size_t f = 0; f < n; ++f) {
    const auto& info = infos[f];
    Fragment fragment{
        info.id, info.physical_rows, static_cast<int32_t>(total_chunks), 0, nullptr,
        nullptr};
    if (f < shared && previous->opened_[f].load(std::memory_order_acquire)) {
      const Fragment& before = previous->fragments_[f];
      fragment.num_chunks = before.num_chunks;
      opened[f] = {before.data, before.deleted};
    } else if (f < shared && lazy) {
      fragment.num_chunks = previous->fragments_[f].num_chunks;
    } else if (lazy && info.num_batches) {
      fragment.num_chunks = static_cast<int32_t>(*info.num_batches);
    } else {
      ARROW_ASSIGN_OR_RAISE(opened[f], OpenFragmentFiles(*store, info, manifest.schema));
      fragment.num_chunks = static_cast<int32_t>(opened[f].data->columns.size());
    }
    // num_batches <= physical_rows <= 2^32 (ParseManifest): the sum cannot overflow.
    total_chunks += fragment.num_chunks;
    if (total_chunks > std::numeric_limits<int32_t>::max()) {
      return arrow::Status::Invalid("Version ", manifest.version, " of ",
                                    store->location(),
                                    " has more than 2^31 record batches");
    }
    snapshot->fragment_starts_.push_back(snapshot->fragment_starts_.back() +
                                         info.num_rows());
    snapshot->fragments_.push_back(std::move(fragment));
  }
  snapshot->chunks_.assign(static_cast<size_t>(total_chunks), Chunk{nullptr, 0, nullptr});
  snapshot->column_chunks_.assign(
      manifest.schema->num_fields(),
      std::vector<std::shared_ptr<arrow::Array>>(static_cast<size_t>(total_chunks)));
  snapshot->opened_ = std::make_unique<std::atomic<bool>[]>(n);
  size_t unopened = 0;
  for (size_t f = 0; f < n; ++f) {
    if (opened[f].data == nullptr) {
      ++unopened;
      continue;
    }
    snapshot->Publish(f, std::move(opened[f].data), std::move(opened[f].deleted));
    snapshot->opened_[f].store(true, std::memory_order_relaxed);  // not shared yet
  }
  snapshot->unopened_.store(unopened, std::memory_order_relaxed);
  ARROW_ASSIGN_OR_RAISE(snapshot->all_columns_, Projection::All(manifest.schema));
  snapshot->store_ = std::move(store);
  snapshot->manifest_ = std::move(manifest);
  return snapshot;
}

void Snapshot::Publish(size_t f, std::shared_ptr<const FragmentData> data,
                       std::shared_ptr<const std::vector<uint32_t>> deleted) const {
  const Fragment& fragment = fragments_[f];
  for (size_t b = 0; b < data->columns.size(); ++b) {
    const size_t k = static_cast<size_t>(fragment.first_chunk) + b;
    chunks_[k] = {&data->columns[b], data->batch_offsets[b + 1] - data->batch_offsets[b],
                  data->cached.get()};
    for (size_t c = 0; c < column_chunks_.size(); ++c) {
      column_chunks_[c][k] = data->columns[b][c];
    }
  }
  if (data->cached != nullptr) has_cached_.store(true, std::memory_order_release);
  fragment.data = std::move(data);
  fragment.deleted = std::move(deleted);
}

arrow::Status Snapshot::OpenLazily(size_t f) const {
  // Opened outside the lock: mapping and validating a file is I/O. Two threads may
  // both open it; the first to publish wins (the store caches the mapping anyway).
  auto opened = OpenFragmentFiles(*store_, manifest_.fragments[f], schema());
  if (!opened.ok()) {
    // Opened long after the table was: say which version the file belongs to (a cleanup
    // may have removed it since).
    return opened.status().WithMessage("Reading version ", version(), " of ",
                                       store_->location(), ": ",
                                       opened.status().message());
  }
  std::lock_guard lock(open_mu_);
  if (opened_[f].load(std::memory_order_relaxed)) return arrow::Status::OK();
  Publish(f, std::move(opened->data), std::move(opened->deleted));
  opened_[f].store(true, std::memory_order_release);
  // Release: a reader that sees none left unopened sees every slot published.
  unopened_.fetch_sub(1, std::memory_order_acq_rel);
  return arrow::Status::OK();
}

arrow::Status Snapshot::OpenAll() const {
  for (size_t f = 0; f < fragments_.size(); ++f) ARROW_RETURN_NOT_OK(EnsureOpen(f));
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<const std::vector<uint32_t>>> Snapshot::DeletedRows(
    size_t i) const {
  ARROW_RETURN_NOT_OK(EnsureOpen(i));
  return fragments_[i].deleted;
}

int64_t Snapshot::PhysicalRow(const Fragment& fragment, int64_t live) const {
  if (fragment.deleted == nullptr || fragment.deleted->empty()) return live;
  // With d sorted, d[j] - j is non-decreasing: the number of deletions before the target
  // is the count of j with d[j] - j <= live.
  const auto& d = *fragment.deleted;
  int64_t lo = 0, hi = static_cast<int64_t>(d.size());
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (static_cast<int64_t>(d[mid]) - mid <= live) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return live + lo;
}

ChunkRow Snapshot::ChunkOf(const Fragment& fragment, int64_t physical_row) const {
  const auto& offsets = fragment.data->batch_offsets;
  if (offsets.size() == 2) return {fragment.first_chunk, physical_row};
  auto it = std::upper_bound(offsets.begin(), offsets.end(), physical_row);
  const auto batch = static_cast<int32_t>(it - offsets.begin() - 1);
  return {fragment.first_chunk + batch, physical_row - offsets[batch]};
}

size_t Snapshot::FragmentOf(int64_t offset) const {
  if (fragments_.size() == 1) return 0;
  return static_cast<size_t>(
      std::upper_bound(fragment_starts_.begin(), fragment_starts_.end(), offset) -
      fragment_starts_.begin() - 1);
}

arrow::Result<std::vector<uint64_t>> Snapshot::RowIdsOfOffsets(
    std::span<const int64_t> offsets) const {
  std::vector<uint64_t> ids(offsets.size());
  const int64_t total = num_rows();
  for (size_t i = 0; i < offsets.size(); ++i) {
    const int64_t offset = offsets[i];
    if (offset < 0 || offset >= total) {
      return arrow::Status::IndexError("Offset ", offset, " at position ", i,
                                       " is out of range for a table of ", total,
                                       " rows");
    }
    const size_t f = FragmentOf(offset);
    ARROW_RETURN_NOT_OK(EnsureOpen(f));
    const int64_t physical = PhysicalRow(fragments_[f], offset - fragment_starts_[f]);
    ids[i] = (uint64_t{fragments_[f].id} << 32) | static_cast<uint64_t>(physical);
  }
  return ids;
}

std::shared_ptr<const void> Snapshot::Derived(const void* key) const {
  std::lock_guard lock(derived_mu_);
  for (const auto& [k, value] : derived_) {
    if (k == key) return value;
  }
  return nullptr;
}

void Snapshot::SetDerived(const void* key, std::shared_ptr<const void> value) const {
  std::lock_guard lock(derived_mu_);
  for (auto& [k, v] : derived_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  derived_.emplace_back(key, std::move(value));
}

arrow::Status Snapshot::CheckMappedFiles() const {
  if (io::FaultedMappings() == 0) return arrow::Status::OK();
  for (size_t f = 0; f < fragments_.size(); ++f) {
    if (!opened_[f].load(std::memory_order_acquire)) continue;
    const Fragment& fragment = fragments_[f];
    if (fragment.data->source != nullptr) {
      ARROW_RETURN_NOT_OK(io::CheckMapping(*fragment.data->source));
    }
  }
  return arrow::Status::OK();
}

}  // namespace riffledb
