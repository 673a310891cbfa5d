// Snapshot takes: rows by offset or row id, gathered per column in parallel.
#include <algorithm>
#include <cstring>

#include "riffledb/format/lazy_fragment.h"
#include "riffledb/table/snapshot.h"
#include "riffledb/util/thread_pool.h"

namespace riffledb {

namespace {

template <typename T>
arrow::Result<std::shared_ptr<arrow::Array>> CopyToUInt64(std::span<const T> values) {
  static_assert(sizeof(T) == sizeof(uint64_t));
  const auto n = static_cast<int64_t>(values.size());
  ARROW_ASSIGN_OR_RAISE(auto buffer, arrow::AllocateBuffer(n * sizeof(uint64_t)));
  if (n > 0) std::memcpy(buffer->mutable_data(), values.data(), n * sizeof(uint64_t));
  return std::make_shared<arrow::UInt64Array>(n, std::move(buffer));
}

}  // namespace

arrow::Result<const Projection*> Snapshot::TakeProjection(
    const TakeOptions& options) const {
  if (options.projection == nullptr) return all_columns_.get();
  if (!SameSchema(options.projection->schema(), schema())) {
    return arrow::Status::Invalid("The take projection was bound to another schema than ",
                                  "version ", version(), " of the table: bind it to ",
                                  schema()->ToString());
  }
  return options.projection.get();
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> Snapshot::TakeOffsets(
    std::span<const int64_t> offsets, const TakeOptions& options) const {
  ARROW_ASSIGN_OR_RAISE(const Projection* projection, TakeProjection(options));
  std::vector<ChunkRow> refs(offsets.size());
  std::vector<uint64_t> ids;
  const bool want_ids = projection->needed().row_id;
  if (want_ids) ids.resize(offsets.size());
  const int64_t total = num_rows();
  // Once every fragment is open (always, below kEagerFragments), the loop checks none.
  const bool all_open = unopened_.load(std::memory_order_acquire) == 0;
  for (size_t i = 0; i < offsets.size(); ++i) {
    const int64_t offset = offsets[i];
    if (offset < 0 || offset >= total) {
      return arrow::Status::IndexError("Offset ", offset, " at position ", i,
                                       " is out of range for a table of ", total,
                                       " rows");
    }
    const size_t f = FragmentOf(offset);
    if (!all_open) ARROW_RETURN_NOT_OK(EnsureOpen(f));
    const Fragment& fragment = fragments_[f];
    const int64_t physical = PhysicalRow(fragment, offset - fragment_starts_[f]);
    refs[i] = ChunkOf(fragment, physical);
    if (want_ids)
      ids[i] = (uint64_t{fragment.id} << 32) | static_cast<uint64_t>(physical);
  }
  return Gather(refs, ids, offsets, *projection, options.binary_views);
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> Snapshot::TakeRowIds(
    std::span<const uint64_t> row_ids, const TakeOptions& options) const {
  ARROW_ASSIGN_OR_RAISE(const Projection* projection, TakeProjection(options));
  std::vector<ChunkRow> refs(row_ids.size());
  std::vector<int64_t> offsets;
  const bool want_offsets = projection->needed().row_offset;
  if (want_offsets) offsets.resize(row_ids.size());
  const bool all_open = unopened_.load(std::memory_order_acquire) == 0;
  for (size_t i = 0; i < row_ids.size(); ++i) {
    const uint64_t id = row_ids[i];
    const auto fragment_id = static_cast<uint32_t>(id >> 32);
    const auto row = static_cast<int64_t>(id & 0xffffffffu);
    auto it = std::lower_bound(fragments_.begin(), fragments_.end(), fragment_id,
                               [](const Fragment& f, uint32_t v) { return f.id < v; });
    bool live =
        it != fragments_.end() && it->id == fragment_id && row < it->physical_rows;
    if (live && !all_open) {
      ARROW_RETURN_NOT_OK(EnsureOpen(static_cast<size_t>(it - fragments_.begin())));
    }
    if (live && it->deleted != nullptr) {
      live = !std::binary_search(it->deleted->begin(), it->deleted->end(),
                                 static_cast<uint32_t>(row));
    }
    if (!live) {
      return arrow::Status::IndexError("Row id ", id, " at position ", i,
                                       " is not a row of version ", version(),
                                       " of the table");
    }
    refs[i] = ChunkOf(*it, row);
    if (want_offsets) {
      // The live rows before it: its fragment's start, plus its rows not deleted.
      int64_t deleted_before = 0;
      if (it->deleted != nullptr) {
        deleted_before = std::lower_bound(it->deleted->begin(), it->deleted->end(),
                                          static_cast<uint32_t>(row)) -
                         it->deleted->begin();
      }
      offsets[i] = fragment_starts_[it - fragments_.begin()] + row - deleted_before;
    }
  }
  return Gather(refs, row_ids, offsets, *projection, options.binary_views);
}

arrow::Status Snapshot::FetchRows(std::span<const ChunkRow> refs,
                                  std::span<const int> columns) const {
  if (!has_cached_.load(std::memory_order_acquire) || columns.empty()) {
    return arrow::Status::OK();
  }
  // The rows of each chunk read through a cache.
  std::vector<std::pair<int32_t, int64_t>> rows;
  rows.reserve(refs.size());
  for (const ChunkRow& ref : refs) {
    // A file cached whole and checked needs nothing.
    const io::CachedFile* cached = chunks_[ref.chunk].cached;
    if (cached != nullptr && !cached->complete()) rows.emplace_back(ref.chunk, ref.row);
  }
  if (rows.empty()) return arrow::Status::OK();
  std::sort(rows.begin(), rows.end());
  format::RowFetchPlan plan;
  std::vector<int64_t> chunk_rows;
  for (size_t i = 0; i < rows.size();) {
    const int32_t chunk = rows[i].first;
    chunk_rows.clear();
    for (; i < rows.size() && rows[i].first == chunk; ++i) {
      if (chunk_rows.empty() || chunk_rows.back() != rows[i].second) {
        chunk_rows.push_back(rows[i].second);
      }
    }
    for (int column : columns) {
      plan.AddRows(chunks_[chunk].cached,
                   (*chunks_[chunk].columns)[static_cast<size_t>(column)]->data(),
                   chunk_rows);
    }
  }
  arrow::Status st = plan.Run();
  if (!st.ok()) {
    return st.WithMessage(st.message(), " (taking from ", store_->location(),
                          " at version ", version(), ")");
  }
  return st;
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> Snapshot::Gather(
    std::span<const ChunkRow> refs, std::span<const uint64_t> row_ids,
    std::span<const int64_t> offsets, const Projection& projection,
    bool binary_views) const {
  const auto n = static_cast<int64_t>(refs.size());
  const NeededColumns& needed = projection.needed();
  ARROW_RETURN_NOT_OK(FetchRows(refs, needed.columns));
  // GatherRows prepares every chunk it is given (base pointers, null counts): given a
  // table's 10,000 chunks for a take of 256 rows, that is most of the work. And with
  // fragments not opened yet, column_chunks_ has empty slots it must not see. In both
  // cases it gets the chunks this take touches (all opened by the caller), and refs
  // renumbered into them.
  std::vector<int32_t> touched;
  std::vector<ChunkRow> local_refs;
  if (unopened_.load(std::memory_order_acquire) != 0 ||
      chunks_.size() > 64 + 4 * refs.size()) {
    touched.reserve(refs.size());
    for (const ChunkRow& ref : refs) touched.push_back(ref.chunk);
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    local_refs.resize(refs.size());
    for (size_t i = 0; i < refs.size(); ++i) {
      const auto k = std::lower_bound(touched.begin(), touched.end(), refs[i].chunk);
      local_refs[i] = {static_cast<int32_t>(k - touched.begin()), refs[i].row};
    }
    refs = local_refs;
  }
  arrow::ArrayVector inputs;
  inputs.reserve(needed.size());
  for (int column : needed.columns) {
    if (refs.empty()) {
      ARROW_ASSIGN_OR_RAISE(
          auto empty, arrow::MakeEmptyArray(
                          GatheredType(schema()->field(column)->type(), binary_views)));
      inputs.push_back(std::move(empty));
      continue;
    }
    const auto& all = column_chunks_[column];
    std::vector<std::shared_ptr<arrow::Array>> some;
    if (!touched.empty()) {
      some.reserve(touched.size());
      for (int32_t k : touched) some.push_back(all[static_cast<size_t>(k)]);
    }
    ARROW_ASSIGN_OR_RAISE(auto array, GatherRows(touched.empty() ? all : some, refs,
                                                 ThreadPool::Default(), binary_views));
    inputs.push_back(std::move(array));
  }
  // The gather copied from the maps: zeros if a file shrank under us, so say so.
  ARROW_RETURN_NOT_OK(CheckMappedFiles());
  if (needed.row_id) {
    ARROW_ASSIGN_OR_RAISE(auto ids, CopyToUInt64(row_ids));
    inputs.push_back(std::move(ids));
  }
  if (needed.row_offset) {
    ARROW_ASSIGN_OR_RAISE(auto row_offsets, CopyToUInt64(offsets));
    inputs.push_back(std::move(row_offsets));
  }
  auto projected = projection.Project(std::move(inputs), n);
  if (!projected.ok()) {
    // An expression failed on the data (divide by zero): say which table, as a scan does.
    return projected.status().WithMessage(projected.status().message(), " (taking from ",
                                          store_->location(), " at version ", version(),
                                          ")");
  }
  std::shared_ptr<arrow::RecordBatch> batch = *std::move(projected);
  if (!binary_views) return batch;
  // The projection was bound to the table's types: name the view types its pass-through
  // columns now have.
  arrow::FieldVector fields;
  for (int i = 0; i < batch->num_columns(); ++i) {
    fields.push_back(batch->schema()->field(i)->WithType(batch->column_data(i)->type));
  }
  return arrow::RecordBatch::Make(
      arrow::schema(std::move(fields), batch->schema()->metadata()), n, batch->columns());
}

}  // namespace riffledb
