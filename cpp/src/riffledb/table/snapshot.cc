#include "riffledb/table/snapshot.h"

#include <arrow/array/builder_primitive.h>
#include <arrow/compute/api_vector.h>
#include <arrow/compute/expression.h>

#include <algorithm>
#include <deque>
#include <numeric>

#include "riffledb/expr/parser.h"
#include "riffledb/util/arrow_init.h"
#include "riffledb/util/thread_pool.h"

namespace riffledb {

namespace {

namespace cp = arrow::compute;

bool References(const std::vector<std::string>& columns, const char* name) {
  return std::find(columns.begin(), columns.end(), name) != columns.end();
}

arrow::Result<std::shared_ptr<arrow::Array>> MakeSequence(uint64_t start,
                                                          int64_t length) {
  ARROW_ASSIGN_OR_RAISE(auto buffer, arrow::AllocateBuffer(length * sizeof(uint64_t)));
  auto* values = reinterpret_cast<uint64_t*>(buffer->mutable_data());
  std::iota(values, values + length, start);
  return std::make_shared<arrow::UInt64Array>(length, std::move(buffer));
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> FilterBatch(
    const std::shared_ptr<arrow::RecordBatch>& batch, const arrow::BooleanArray& mask) {
  const int64_t selected = mask.true_count();
  if (selected == batch->num_rows()) return batch;
  ARROW_ASSIGN_OR_RAISE(auto out, cp::Filter(batch, mask));
  return out.record_batch();
}

// Parsed and bound expressions of a read, with which hidden columns they need.
struct BoundRead {
  // The table columns the read needs (indexes into the table schema, ascending): a chunk
  // is narrowed to these before deletions and the filter are applied, so a filter on
  // `label` never copies an embedding column it does not return.
  std::vector<int> columns;
  bool all_columns = true;
  std::shared_ptr<arrow::Schema> table_schema;  // `columns`
  std::shared_ptr<arrow::Schema> eval_schema;   // `columns` + needed hidden columns
  bool need_row_id = false;
  bool need_row_offset = false;
  std::optional<cp::Expression> filter;
  struct Output {
    std::string name;
    int column = -1;  // pass-through column of the eval batch, or -1 for `expr`
    cp::Expression expr;
  };
  std::vector<Output> outputs;  // empty: every table column
};

// `count_only`: nothing is returned, only the filter's columns are read.
arrow::Result<BoundRead> BindRead(const arrow::Schema& schema, const ScanOptions& options,
                                  bool count_only = false) {
  ARROW_RETURN_NOT_OK(EnsureArrowComputeInitialized());
  BoundRead read;
  std::optional<cp::Expression> filter;
  std::vector<std::pair<std::string, cp::Expression>> projection;
  std::vector<std::string> referenced;
  if (options.filter) {
    ARROW_ASSIGN_OR_RAISE(filter, ParseExpression(*options.filter));
    for (auto& name : ReferencedColumns(*filter)) referenced.push_back(std::move(name));
  }
  for (const auto& [name, sql] : options.projection) {
    // A plain column name passes through as is, whatever characters it holds.
    if (schema.GetFieldIndex(sql) >= 0 || sql == kRowIdColumn ||
        sql == kRowOffsetColumn) {
      referenced.push_back(sql);
      projection.emplace_back(name, cp::field_ref(sql));
      continue;
    }
    ARROW_ASSIGN_OR_RAISE(auto expr, ParseExpression(sql));
    for (auto& column : ReferencedColumns(expr)) referenced.push_back(std::move(column));
    projection.emplace_back(name, std::move(expr));
  }
  read.need_row_id = options.with_row_id || References(referenced, kRowIdColumn);
  read.need_row_offset = References(referenced, kRowOffsetColumn);
  read.all_columns = !count_only && options.projection.empty();
  if (!read.all_columns) {
    std::vector<bool> used(schema.num_fields(), false);
    for (const auto& name : referenced) {
      const int index = schema.GetFieldIndex(name);
      if (index >= 0) {
        used[index] = true;
      } else if (name != kRowIdColumn && name != kRowOffsetColumn) {
        read.all_columns = true;  // unknown: bind against everything for the full message
      }
    }
    for (int i = 0; i < schema.num_fields(); ++i) {
      if (used[i]) read.columns.push_back(i);
    }
  }
  arrow::FieldVector fields;
  if (read.all_columns) {
    read.columns.resize(schema.num_fields());
    std::iota(read.columns.begin(), read.columns.end(), 0);
    fields = schema.fields();
  } else {
    for (int i : read.columns) fields.push_back(schema.field(i));
  }
  read.table_schema = arrow::schema(fields);
  if (read.need_row_id)
    fields.push_back(arrow::field(kRowIdColumn, arrow::uint64(), false));
  if (read.need_row_offset) {
    fields.push_back(arrow::field(kRowOffsetColumn, arrow::uint64(), false));
  }
  read.eval_schema = arrow::schema(std::move(fields));
  if (filter) {
    ARROW_ASSIGN_OR_RAISE(read.filter, BindExpression(*filter, *read.eval_schema));
  }
  for (auto& [name, expr] : projection) {
    BoundRead::Output output{name, -1, {}};
    if (const auto* ref = expr.field_ref(); ref != nullptr && ref->IsName()) {
      output.column = read.eval_schema->GetFieldIndex(*ref->name());
    }
    if (output.column < 0) {
      ARROW_ASSIGN_OR_RAISE(output.expr, BindExpression(expr, *read.eval_schema));
    }
    read.outputs.push_back(std::move(output));
  }
  if (options.with_row_id) {
    read.outputs.reserve(read.outputs.size() + schema.num_fields() + 1);
    if (read.outputs.empty()) {
      for (int i = 0; i < schema.num_fields(); ++i) {
        read.outputs.push_back({schema.field(i)->name(), i, {}});
      }
    }
    read.outputs.push_back({kRowIdColumn, static_cast<int>(read.columns.size()), {}});
  }
  return read;
}

arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(const BoundRead& read,
                                                           const arrow::Schema& schema) {
  if (read.outputs.empty()) return std::make_shared<arrow::Schema>(schema);
  arrow::FieldVector fields;
  for (const auto& output : read.outputs) {
    if (output.column >= 0) {
      fields.push_back(read.eval_schema->field(output.column)->WithName(output.name));
    } else {
      fields.push_back(arrow::field(output.name, output.expr.type()->GetSharedPtr()));
    }
  }
  return arrow::schema(std::move(fields), schema.metadata());
}

}  // namespace

// ---------------------------------------------------------------------------------------

arrow::Result<std::shared_ptr<const Snapshot>> Snapshot::Open(
    std::shared_ptr<Store> store, format::Manifest manifest) {
  std::shared_ptr<Snapshot> snapshot(new Snapshot());
  snapshot->fragment_starts_.push_back(0);
  for (const auto& info : manifest.fragments) {
    Fragment fragment{info.id, info.physical_rows, nullptr, nullptr,
                      static_cast<int32_t>(snapshot->chunks_.size())};
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

// ---------------------------------------------------------------------------------------
// Scans

class Snapshot::ScanReader : public arrow::RecordBatchReader {
 public:
  ScanReader(std::shared_ptr<const Snapshot> snapshot, BoundRead read,
             std::shared_ptr<arrow::Schema> schema, const ScanOptions& options,
             bool count_only = false)
      : snapshot_(std::move(snapshot)),
        read_(std::move(read)),
        schema_(std::move(schema)),
        skip_(options.offset),
        remaining_(options.limit.value_or(std::numeric_limits<int64_t>::max())),
        max_batch_rows_(options.max_batch_rows),
        count_only_(count_only) {}

  /// In count mode: the number of rows the filter selects, without copying any.
  arrow::Result<int64_t> Count() {
    while (fragment_ < snapshot_->fragments_.size()) {
      if (snapshot_->fragments_[fragment_].data->batches.empty()) {
        ++fragment_;
        continue;
      }
      ARROW_RETURN_NOT_OK(ReadChunk());
    }
    return counted_;
  }

  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    while (pending_.empty()) {
      while (fragment_ < snapshot_->fragments_.size() &&
             snapshot_->fragments_[fragment_].data->batches.empty()) {
        ++fragment_;
      }
      if (remaining_ <= 0 || fragment_ >= snapshot_->fragments_.size()) {
        *out = nullptr;
        return arrow::Status::OK();
      }
      ARROW_RETURN_NOT_OK(ReadChunk());
    }
    *out = std::move(pending_.front());
    pending_.pop_front();
    return arrow::Status::OK();
  }

 private:
  // Reads the next stored batch into pending_ (possibly nothing), advancing the position.
  arrow::Status ReadChunk() {
    const Fragment& fragment = snapshot_->fragments_[fragment_];
    const auto& offsets = fragment.data->batch_offsets;
    const int32_t chunk = fragment.first_chunk + static_cast<int32_t>(batch_);
    const int64_t start = offsets[batch_];
    if (++batch_ + 1 >= offsets.size()) {
      ++fragment_;
      batch_ = 0;
    }
    // A batch of this reader's own, made from the boxed arrays (see FragmentData).
    const Chunk& stored = snapshot_->chunks_[chunk];
    const int64_t length = stored.num_rows;
    arrow::ArrayVector arrays;
    arrays.reserve(read_.columns.size());
    for (int column : read_.columns) arrays.push_back((*stored.columns)[column]);
    std::shared_ptr<arrow::RecordBatch> batch =
        arrow::RecordBatch::Make(read_.table_schema, length, std::move(arrays));

    if (read_.need_row_id) {
      ARROW_ASSIGN_OR_RAISE(
          auto ids,
          MakeSequence((uint64_t{fragment.id} << 32) | uint64_t(start), length));
      ARROW_ASSIGN_OR_RAISE(
          batch, batch->AddColumn(batch->num_columns(),
                                  read_.eval_schema->field(batch->num_columns()),
                                  std::move(ids)));
    }
    if (fragment.deleted != nullptr) {
      const auto& d = *fragment.deleted;
      auto first = std::lower_bound(d.begin(), d.end(), static_cast<uint32_t>(start));
      auto last = std::lower_bound(first, d.end(), static_cast<uint64_t>(start + length));
      if (first != last) {
        arrow::BooleanBuilder builder;
        ARROW_RETURN_NOT_OK(builder.Reserve(length));
        auto next = first;
        for (int64_t i = 0; i < length; ++i) {
          const bool deleted = next != last && *next == start + i;
          if (deleted) ++next;
          builder.UnsafeAppend(!deleted);
        }
        ARROW_ASSIGN_OR_RAISE(auto mask, builder.Finish());
        ARROW_ASSIGN_OR_RAISE(
            batch, FilterBatch(batch, static_cast<const arrow::BooleanArray&>(*mask)));
      }
    }
    if (read_.need_row_offset) {
      ARROW_ASSIGN_OR_RAISE(auto offsets_array,
                            MakeSequence(next_offset_, batch->num_rows()));
      ARROW_ASSIGN_OR_RAISE(
          batch, batch->AddColumn(batch->num_columns(),
                                  read_.eval_schema->field(batch->num_columns()),
                                  std::move(offsets_array)));
    }
    next_offset_ += batch->num_rows();
    if (count_only_) {
      if (!read_.filter) {
        counted_ += batch->num_rows();
      } else {
        ARROW_ASSIGN_OR_RAISE(auto mask, EvaluateFilter(*read_.filter, *batch));
        counted_ += mask->true_count();
      }
      return arrow::Status::OK();
    }
    if (read_.filter) {
      ARROW_ASSIGN_OR_RAISE(auto mask, EvaluateFilter(*read_.filter, *batch));
      ARROW_ASSIGN_OR_RAISE(batch, FilterBatch(batch, *mask));
    }
    if (skip_ > 0) {
      const int64_t skipped = std::min(skip_, batch->num_rows());
      skip_ -= skipped;
      batch = batch->Slice(skipped);
    }
    if (batch->num_rows() > remaining_) batch = batch->Slice(0, remaining_);
    remaining_ -= batch->num_rows();
    if (batch->num_rows() == 0) return arrow::Status::OK();

    ARROW_ASSIGN_OR_RAISE(batch, Project(batch));
    if (max_batch_rows_ > 0 && batch->num_rows() > max_batch_rows_) {
      for (int64_t at = 0; at < batch->num_rows(); at += max_batch_rows_) {
        pending_.push_back(batch->Slice(at, max_batch_rows_));
      }
    } else {
      pending_.push_back(std::move(batch));
    }
    return arrow::Status::OK();
  }

  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Project(
      const std::shared_ptr<arrow::RecordBatch>& batch) {
    arrow::ArrayVector columns;
    if (read_.outputs.empty()) {
      const int n = snapshot_->schema()->num_fields();
      for (int i = 0; i < n; ++i) columns.push_back(batch->column(i));
    } else {
      for (const auto& output : read_.outputs) {
        if (output.column >= 0) {
          columns.push_back(batch->column(output.column));
        } else {
          ARROW_ASSIGN_OR_RAISE(auto column, EvaluateExpression(output.expr, *batch));
          columns.push_back(std::move(column));
        }
      }
    }
    return arrow::RecordBatch::Make(schema_, batch->num_rows(), std::move(columns));
  }

  std::shared_ptr<const Snapshot> snapshot_;
  BoundRead read_;
  std::shared_ptr<arrow::Schema> schema_;
  size_t fragment_ = 0;
  size_t batch_ = 0;
  uint64_t next_offset_ = 0;
  int64_t skip_;
  int64_t remaining_;
  int64_t max_batch_rows_;
  const bool count_only_;
  int64_t counted_ = 0;
  std::deque<std::shared_ptr<arrow::RecordBatch>> pending_;
};

arrow::Result<std::shared_ptr<arrow::Schema>> Snapshot::ScanSchema(
    const ScanOptions& options) const {
  ARROW_ASSIGN_OR_RAISE(auto read, BindRead(*schema(), options));
  return OutputSchema(read, *schema());
}

arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> Snapshot::Scan(
    const ScanOptions& options) const {
  if (options.offset < 0) {
    return arrow::Status::Invalid("Scan offset must not be negative, got ",
                                  options.offset);
  }
  if (options.limit && *options.limit < 0) {
    return arrow::Status::Invalid("Scan limit must not be negative, got ",
                                  *options.limit);
  }
  ARROW_ASSIGN_OR_RAISE(auto read, BindRead(*schema(), options));
  ARROW_ASSIGN_OR_RAISE(auto out_schema, OutputSchema(read, *schema()));
  return std::make_shared<ScanReader>(shared_from_this(), std::move(read),
                                      std::move(out_schema), options);
}

arrow::Result<int64_t> Snapshot::CountRows(
    const std::optional<std::string>& filter) const {
  if (!filter) return num_rows();
  ScanOptions options;
  options.filter = filter;
  // Reads only the filter's columns and counts the mask: no row is copied.
  ARROW_ASSIGN_OR_RAISE(auto read, BindRead(*schema(), options, /*count_only=*/true));
  ScanReader reader(shared_from_this(), std::move(read), schema(), options,
                    /*count_only=*/true);
  return reader.Count();
}

arrow::Result<std::pair<std::vector<std::shared_ptr<std::vector<uint32_t>>>, int64_t>>
Snapshot::RowsToDelete(const std::string& filter) const {
  ScanOptions options;
  options.filter = filter;
  options.projection = {{kRowIdColumn, kRowIdColumn}};
  ARROW_ASSIGN_OR_RAISE(auto reader, Scan(options));
  std::vector<std::vector<uint32_t>> matched(fragments_.size());
  int64_t total = 0;
  size_t f = 0;
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(reader->ReadNext(&batch));
    if (batch == nullptr) break;
    const auto& ids = static_cast<const arrow::UInt64Array&>(*batch->column(0));
    for (int64_t i = 0; i < ids.length(); ++i) {
      const auto fragment_id = static_cast<uint32_t>(ids.Value(i) >> 32);
      while (fragments_[f].id != fragment_id) ++f;  // scan order follows fragment order
      matched[f].push_back(static_cast<uint32_t>(ids.Value(i)));
      ++total;
    }
  }
  std::vector<std::shared_ptr<std::vector<uint32_t>>> result(fragments_.size());
  for (size_t i = 0; i < fragments_.size(); ++i) {
    if (matched[i].empty()) continue;
    auto merged = std::make_shared<std::vector<uint32_t>>();
    const auto* old = fragments_[i].deleted.get();
    merged->reserve(matched[i].size() + (old ? old->size() : 0));
    std::merge(matched[i].begin(), matched[i].end(),
               old ? old->begin() : matched[i].end(), old ? old->end() : matched[i].end(),
               std::back_inserter(*merged));
    result[i] = std::move(merged);
  }
  return std::make_pair(std::move(result), total);
}

// ---------------------------------------------------------------------------------------
// Takes

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
    const auto f = static_cast<size_t>(
        std::upper_bound(fragment_starts_.begin(), fragment_starts_.end(), offset) -
        fragment_starts_.begin() - 1);
    const int64_t physical = PhysicalRow(fragments_[f], offset - fragment_starts_[f]);
    ids[i] = (uint64_t{fragments_[f].id} << 32) | static_cast<uint64_t>(physical);
  }
  return ids;
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> Snapshot::TakeOffsets(
    std::span<const int64_t> offsets, const TakeOptions& options) const {
  std::vector<ChunkRow> refs(offsets.size());
  std::vector<uint64_t> ids;
  const bool want_ids = options.with_row_id || References(options.columns, kRowIdColumn);
  if (want_ids) ids.resize(offsets.size());
  const int64_t total = num_rows();
  const bool single = fragments_.size() == 1;
  for (size_t i = 0; i < offsets.size(); ++i) {
    const int64_t offset = offsets[i];
    if (offset < 0 || offset >= total) {
      return arrow::Status::IndexError("Offset ", offset, " at position ", i,
                                       " is out of range for a table of ", total,
                                       " rows");
    }
    const size_t f =
        single ? 0
               : static_cast<size_t>(std::upper_bound(fragment_starts_.begin(),
                                                      fragment_starts_.end(), offset) -
                                     fragment_starts_.begin() - 1);
    const Fragment& fragment = fragments_[f];
    const int64_t physical = PhysicalRow(fragment, offset - fragment_starts_[f]);
    refs[i] = ChunkOf(fragment, physical);
    if (want_ids)
      ids[i] = (uint64_t{fragment.id} << 32) | static_cast<uint64_t>(physical);
  }
  return Gather(refs, ids, options);
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> Snapshot::TakeRowIds(
    std::span<const uint64_t> row_ids, const TakeOptions& options) const {
  std::vector<ChunkRow> refs(row_ids.size());
  for (size_t i = 0; i < row_ids.size(); ++i) {
    const uint64_t id = row_ids[i];
    const auto fragment_id = static_cast<uint32_t>(id >> 32);
    const auto row = static_cast<int64_t>(id & 0xffffffffu);
    auto it = std::lower_bound(fragments_.begin(), fragments_.end(), fragment_id,
                               [](const Fragment& f, uint32_t v) { return f.id < v; });
    bool live =
        it != fragments_.end() && it->id == fragment_id && row < it->physical_rows;
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
  }
  return Gather(refs, row_ids, options);
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> Snapshot::Gather(
    std::span<const ChunkRow> refs, std::span<const uint64_t> row_ids,
    const TakeOptions& options) const {
  const auto& schema = *this->schema();
  std::vector<int> columns;  // schema index, or -1 for _rowid
  if (options.columns.empty()) {
    columns.resize(schema.num_fields());
    std::iota(columns.begin(), columns.end(), 0);
  } else {
    for (const auto& name : options.columns) {
      if (name == kRowIdColumn) {
        columns.push_back(-1);
        continue;
      }
      const int index = schema.GetFieldIndex(name);
      if (index < 0) {
        return arrow::Status::Invalid("Column '", name,
                                      "' does not exist; available columns: ", [&] {
                                        std::string names;
                                        for (const auto& field : schema.fields()) {
                                          if (!names.empty()) names += ", ";
                                          names += field->name();
                                        }
                                        return names;
                                      }());
      }
      columns.push_back(index);
    }
  }
  if (options.with_row_id) columns.push_back(-1);

  const auto n = static_cast<int64_t>(refs.size());
  arrow::FieldVector fields;
  arrow::ArrayVector arrays;
  for (int column : columns) {
    if (column < 0) {
      fields.push_back(arrow::field(kRowIdColumn, arrow::uint64(), false));
      ARROW_ASSIGN_OR_RAISE(auto buffer, arrow::AllocateBuffer(n * sizeof(uint64_t)));
      std::memcpy(buffer->mutable_data(), row_ids.data(), n * sizeof(uint64_t));
      arrays.push_back(std::make_shared<arrow::UInt64Array>(n, std::move(buffer)));
      continue;
    }
    const auto& field = schema.field(column);
    fields.push_back(field->WithType(GatheredType(field->type(), options.binary_views)));
    if (chunks_.empty()) {
      ARROW_ASSIGN_OR_RAISE(auto empty, arrow::MakeEmptyArray(fields.back()->type()));
      arrays.push_back(std::move(empty));
      continue;
    }
    ARROW_ASSIGN_OR_RAISE(auto array,
                          GatherRows(column_chunks_[column], refs, ThreadPool::Default(),
                                     options.binary_views));
    arrays.push_back(std::move(array));
  }
  if (options.columns.empty() && !options.with_row_id && !options.binary_views) {
    return arrow::RecordBatch::Make(this->schema(), n, std::move(arrays));
  }
  return arrow::RecordBatch::Make(arrow::schema(std::move(fields), schema.metadata()), n,
                                  std::move(arrays));
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

}  // namespace riffledb
