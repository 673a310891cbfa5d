#include "riffledb/table/snapshot.h"

#include <algorithm>

#include "riffledb/io/mapped_file.h"

namespace riffledb {

arrow::Result<std::shared_ptr<const Snapshot>> Snapshot::Open(
    std::shared_ptr<Store> store, format::Manifest manifest, const Snapshot* previous) {
  std::shared_ptr<Snapshot> snapshot(new Snapshot());
  snapshot->fragment_starts_.push_back(0);
  // The fragments `previous` has in common with `manifest`, from the first one on.
  size_t shared = 0;
  if (previous != nullptr && previous->store_ == store &&
      previous->manifest_.schema->Equals(*manifest.schema, /*check_metadata=*/false)) {
    const auto& before = previous->manifest_.fragments;
    while (shared < before.size() && shared < manifest.fragments.size() &&
           before[shared].path == manifest.fragments[shared].path &&
           before[shared].deletion == manifest.fragments[shared].deletion) {
      ++shared;
    }
  }
  snapshot->fragments_.reserve(manifest.fragments.size());
  for (size_t f = 0; f < manifest.fragments.size(); ++f) {
    const auto& info = manifest.fragments[f];
    Fragment fragment{info.id, info.physical_rows, nullptr, nullptr,
                      static_cast<int32_t>(snapshot->chunks_.size())};
    if (f < shared) {
      fragment.data = previous->fragments_[f].data;
      fragment.deleted = previous->fragments_[f].deleted;
      for (size_t b = 0; b < fragment.data->columns.size(); ++b) {
        snapshot->chunks_.push_back(
            {&fragment.data->columns[b],
             fragment.data->batch_offsets[b + 1] - fragment.data->batch_offsets[b]});
      }
      snapshot->fragment_starts_.push_back(snapshot->fragment_starts_.back() +
                                           info.num_rows());
      snapshot->fragments_.push_back(std::move(fragment));
      continue;
    }
    ARROW_ASSIGN_OR_RAISE(fragment.data, store->OpenFragment(info, manifest.schema));
    if (fragment.data->batch_offsets.back() != info.physical_rows) {
      return arrow::Status::Invalid("Fragment ", info.path, " of ", store->location(),
                                    " has ", fragment.data->batch_offsets.back(),
                                    " rows but its manifest says ", info.physical_rows);
    }
    if (info.deletion) {
      ARROW_ASSIGN_OR_RAISE(fragment.deleted,
                            store->ReadDeletionFile(*info.deletion, info.physical_rows));
    }
    for (size_t b = 0; b < fragment.data->columns.size(); ++b) {
      snapshot->chunks_.push_back(
          {&fragment.data->columns[b],
           fragment.data->batch_offsets[b + 1] - fragment.data->batch_offsets[b]});
    }
    snapshot->fragment_starts_.push_back(snapshot->fragment_starts_.back() +
                                         info.num_rows());
    snapshot->fragments_.push_back(std::move(fragment));
  }
  // Per-column chunk lists, built once: a take then touches no per-chunk shared_ptr.
  snapshot->column_chunks_.resize(manifest.schema->num_fields());
  for (int column = 0; column < manifest.schema->num_fields(); ++column) {
    auto& chunks = snapshot->column_chunks_[column];
    chunks.reserve(snapshot->chunks_.size());
    for (const Chunk& chunk : snapshot->chunks_)
      chunks.push_back((*chunk.columns)[column]);
  }
  ARROW_ASSIGN_OR_RAISE(snapshot->all_columns_, Projection::All(manifest.schema));
  snapshot->store_ = std::move(store);
  snapshot->manifest_ = std::move(manifest);
  return snapshot;
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
  for (const Fragment& fragment : fragments_) {
    if (fragment.data != nullptr && fragment.data->source != nullptr) {
      ARROW_RETURN_NOT_OK(io::CheckMapping(*fragment.data->source));
    }
  }
  return arrow::Status::OK();
}

}  // namespace riffledb
