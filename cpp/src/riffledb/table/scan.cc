// Snapshot scans: the stored batches in order, with deletions, a filter, offset / limit
// and a projection applied.
#include <arrow/array/builder_primitive.h>
#include <arrow/compute/api_vector.h>

#include <algorithm>
#include <deque>
#include <limits>
#include <numeric>

#include "riffledb/format/lazy_fragment.h"
#include "riffledb/table/gather.h"
#include "riffledb/table/snapshot.h"

namespace riffledb {

namespace {

namespace cp = arrow::compute;

arrow::Result<std::shared_ptr<arrow::Array>> MakeSequence(uint64_t start,
                                                          int64_t length) {
  ARROW_ASSIGN_OR_RAISE(auto buffer, arrow::AllocateBuffer(length * sizeof(uint64_t)));
  auto* values = reinterpret_cast<uint64_t*>(buffer->mutable_data());
  std::iota(values, values + length, start);
  return std::make_shared<arrow::UInt64Array>(length, std::move(buffer));
}

// The rows of `columns` (of `schema`, `*length` rows) where `mask` is true, in place.
// The batch is this reader's own, so reading its columns back is safe.
arrow::Status FilterColumns(const std::shared_ptr<arrow::Schema>& schema,
                            const arrow::BooleanArray& mask, arrow::ArrayVector* columns,
                            int64_t* length) {
  const int64_t selected = mask.true_count();
  if (selected == *length) return arrow::Status::OK();
  if (columns->empty()) {  // nothing to copy: only the row count changes
    *length = selected;
    return arrow::Status::OK();
  }
  const bool views =
      std::any_of(columns->begin(), columns->end(),
                  [](const auto& column) { return ContainsView(*column->type()); });
  if (!views) {
    auto batch = arrow::RecordBatch::Make(schema, *length, std::move(*columns));
    ARROW_ASSIGN_OR_RAISE(auto out, cp::Filter(batch, mask));
    *columns = out.record_batch()->columns();
    *length = selected;
    return arrow::Status::OK();
  }
  // Arrow's Filter has no kernel for view types (nested or not): those columns are taken
  // (TakeRows), the others filtered as above, column by column. A null in the mask drops
  // its row, as Filter's default does.
  std::vector<int64_t> rows;
  rows.reserve(static_cast<size_t>(selected));
  for (int64_t row = 0; row < *length; ++row) {
    if (mask.IsValid(row) && mask.Value(row)) rows.push_back(row);
  }
  for (auto& column : *columns) {
    if (ContainsView(*column->type())) {
      ARROW_ASSIGN_OR_RAISE(column, TakeRows(column, rows));
    } else {
      ARROW_ASSIGN_OR_RAISE(auto out, cp::Filter(column, mask));
      column = out.make_array();
    }
  }
  *length = static_cast<int64_t>(rows.size());
  return arrow::Status::OK();
}

// Positions in `all`'s input of `part`'s input columns (both NeededColumns of one schema,
// `part` a subset of `all`).
std::vector<int> InputMap(const NeededColumns& all, const NeededColumns& part) {
  std::vector<int> map;
  for (int c : part.columns) {
    map.push_back(
        static_cast<int>(std::lower_bound(all.columns.begin(), all.columns.end(), c) -
                         all.columns.begin()));
  }
  const int n = static_cast<int>(all.columns.size());
  if (part.row_id) map.push_back(n);
  if (part.row_offset) map.push_back(n + (all.row_id ? 1 : 0));
  return map;
}

bool IsIdentity(const std::vector<int>& map, const NeededColumns& all) {
  if (static_cast<int>(map.size()) != all.size()) return false;
  for (size_t i = 0; i < map.size(); ++i) {
    if (map[i] != static_cast<int>(i)) return false;
  }
  return true;
}

arrow::ArrayVector Pick(const arrow::ArrayVector& columns, const std::vector<int>& map) {
  arrow::ArrayVector out;
  out.reserve(map.size());
  for (int i : map) out.push_back(columns[i]);
  return out;
}

// What one scan reads: the union of the filter's and the projection's columns (a chunk
// is narrowed to these before deletions and the filter apply, so a filter on `label`
// never copies an embedding column it does not return), and where each finds its input.
struct ReadPlan {
  std::shared_ptr<const Filter> filter;          // may be null
  std::shared_ptr<const Projection> projection;  // null: count only
  NeededColumns read;
  std::shared_ptr<arrow::Schema> stored_schema;  // read.columns, then `_rowid`
  std::shared_ptr<arrow::Schema> read_schema;    // stored_schema, then `_rowoffset`
  std::vector<int> filter_map, projection_map;   // see InputMap
  bool filter_identity = false, projection_identity = false;  // the map is 0, 1, ...
};

arrow::Status CheckBound(const std::shared_ptr<arrow::Schema>& bound, const char* what,
                         const Snapshot& snapshot) {
  if (SameSchema(bound, snapshot.schema())) return arrow::Status::OK();
  return arrow::Status::Invalid(
      "The scan ", what, " was bound to another schema than version ", snapshot.version(),
      " of the table: bind it to ", snapshot.schema()->ToString());
}

arrow::Result<ReadPlan> MakePlan(const Snapshot& snapshot,
                                 std::shared_ptr<const Filter> filter,
                                 std::shared_ptr<const Projection> projection) {
  ReadPlan plan;
  if (filter) ARROW_RETURN_NOT_OK(CheckBound(filter->schema(), "filter", snapshot));
  if (projection) {
    ARROW_RETURN_NOT_OK(CheckBound(projection->schema(), "projection", snapshot));
  }
  std::vector<bool> used(snapshot.schema()->num_fields(), false);
  for (const auto* part : {filter ? &filter->needed() : nullptr,
                           projection ? &projection->needed() : nullptr}) {
    if (part == nullptr) continue;
    for (int c : part->columns) used[c] = true;
    plan.read.row_id |= part->row_id;
    plan.read.row_offset |= part->row_offset;
  }
  for (size_t c = 0; c < used.size(); ++c) {
    if (used[c]) plan.read.columns.push_back(static_cast<int>(c));
  }
  arrow::FieldVector fields;
  for (int c : plan.read.columns) fields.push_back(snapshot.schema()->field(c));
  if (plan.read.row_id) fields.push_back(HiddenColumnField(kRowIdColumn));
  plan.stored_schema = arrow::schema(fields);
  if (plan.read.row_offset) fields.push_back(HiddenColumnField(kRowOffsetColumn));
  plan.read_schema = arrow::schema(std::move(fields));
  if (filter) {
    plan.filter_map = InputMap(plan.read, filter->needed());
    plan.filter_identity = IsIdentity(plan.filter_map, plan.read);
  }
  if (projection) {
    plan.projection_map = InputMap(plan.read, projection->needed());
    plan.projection_identity = IsIdentity(plan.projection_map, plan.read);
  }
  plan.filter = std::move(filter);
  plan.projection = std::move(projection);
  return plan;
}

}  // namespace

class Snapshot::ScanReader : public arrow::RecordBatchReader {
 public:
  ScanReader(std::shared_ptr<const Snapshot> snapshot, ReadPlan plan,
             const ScanOptions& options)
      : snapshot_(std::move(snapshot)),
        plan_(std::move(plan)),
        skip_(options.offset),
        remaining_(options.limit.value_or(std::numeric_limits<int64_t>::max())),
        max_batch_rows_(options.max_batch_rows),
        range_begin_(options.range_begin),
        range_end_(std::min(options.range_end.value_or(snapshot_->num_rows()),
                            snapshot_->num_rows())) {
    // Start at the fragment holding the range's first row; the scan never opens the
    // ones before it (Snapshot::Open has, for a version of at most kEagerFragments).
    if (range_begin_ >= range_end_) {
      fragment_ = snapshot_->fragments_.size();
    } else if (range_begin_ > 0) {
      fragment_ = snapshot_->FragmentOf(range_begin_);
      next_offset_ = static_cast<uint64_t>(snapshot_->fragment_starts_[fragment_]);
    }
  }

  /// Without a projection: the number of rows the filter selects, without copying any.
  arrow::Result<int64_t> Count() {
    while (fragment_ < snapshot_->fragments_.size() && !PastRange()) {
      if (snapshot_->fragments_[fragment_].num_chunks == 0) {
        ++fragment_;
        continue;
      }
      ARROW_RETURN_NOT_OK(ReadChunk());
    }
    return counted_;
  }

  std::shared_ptr<arrow::Schema> schema() const override {
    return plan_.projection->output_schema();
  }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    while (pending_.empty()) {
      while (fragment_ < snapshot_->fragments_.size() &&
             snapshot_->fragments_[fragment_].num_chunks == 0) {
        ++fragment_;
      }
      if (remaining_ <= 0 || fragment_ >= snapshot_->fragments_.size() || PastRange()) {
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
  bool PastRange() const { return static_cast<int64_t>(next_offset_) >= range_end_; }

  // An error while evaluating (divide by zero, overflow) with the table it came from.
  template <typename T>
  arrow::Result<T> WithTable(arrow::Result<T> result) const {
    if (result.ok()) return result;
    return result.status().WithMessage(result.status().message(), " (scanning ",
                                       snapshot_->store()->location(), " at version ",
                                       snapshot_->version(), ")");
  }

  // Reads the next stored batch into pending_ (possibly nothing), advancing the position.
  arrow::Status ReadChunk() {
    ARROW_RETURN_NOT_OK(snapshot_->EnsureOpen(fragment_));
    const Fragment& fragment = snapshot_->fragments_[fragment_];
    const auto& offsets = fragment.data->batch_offsets;
    const int32_t chunk = fragment.first_chunk + static_cast<int32_t>(batch_);
    const int64_t start = offsets[batch_];
    if (++batch_ + 1 >= offsets.size()) {
      ++fragment_;
      batch_ = 0;
    }
    // Columns of this reader's own, from the boxed arrays (see FragmentData).
    const Chunk& stored = snapshot_->chunks_[chunk];
    int64_t length = stored.num_rows;
    arrow::ArrayVector columns;
    columns.reserve(plan_.read.size());
    for (int column : plan_.read.columns) columns.push_back((*stored.columns)[column]);
    if (stored.cached != nullptr && !stored.cached->complete()) {
      // A remote fragment: fetch the columns read, whole.
      format::RowFetchPlan fetch;
      for (size_t i = 0; i < plan_.read.columns.size(); ++i) {
        fetch.AddAll(stored.cached, columns[i]->data());
      }
      ARROW_RETURN_NOT_OK(fetch.Run());
    }
    if (plan_.read.row_id) {
      ARROW_ASSIGN_OR_RAISE(
          auto ids,
          MakeSequence((uint64_t{fragment.id} << 32) | uint64_t(start), length));
      columns.push_back(std::move(ids));
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
        ARROW_RETURN_NOT_OK(FilterColumns(plan_.stored_schema,
                                          static_cast<const arrow::BooleanArray&>(*mask),
                                          &columns, &length));
      }
    }
    // The live rows of the chunk inside the range.
    const int64_t chunk_offset = static_cast<int64_t>(next_offset_);
    const int64_t first = std::clamp<int64_t>(range_begin_ - chunk_offset, 0, length);
    const int64_t last = std::clamp<int64_t>(range_end_ - chunk_offset, 0, length);
    next_offset_ += length;
    if (first >= last) return arrow::Status::OK();
    if (first > 0 || last < length) {
      for (auto& column : columns) column = column->Slice(first, last - first);
      length = last - first;
    }
    if (plan_.read.row_offset) {
      ARROW_ASSIGN_OR_RAISE(auto row_offsets, MakeSequence(chunk_offset + first, length));
      columns.push_back(std::move(row_offsets));
    }

    if (plan_.filter) {
      auto input = arrow::RecordBatch::Make(
          plan_.filter->input_schema(), length,
          plan_.filter_identity ? columns : Pick(columns, plan_.filter_map));
      ARROW_ASSIGN_OR_RAISE(auto mask, WithTable(plan_.filter->Evaluate(*input)));
      // The filter read the maps: zeros if a file shrank under us, so say so.
      ARROW_RETURN_NOT_OK(snapshot_->CheckMappedFiles());
      if (plan_.projection == nullptr) {
        counted_ += mask->true_count();
        return arrow::Status::OK();
      }
      ARROW_RETURN_NOT_OK(FilterColumns(plan_.read_schema, *mask, &columns, &length));
    } else if (plan_.projection == nullptr) {
      counted_ += length;
      return arrow::Status::OK();
    }

    int64_t from = std::min(skip_, length);
    skip_ -= from;
    const int64_t rows = std::min(length - from, remaining_);
    remaining_ -= rows;
    if (rows == 0) return arrow::Status::OK();
    // Batches handed out are zero-copy: a file found truncated fails the scan here, at
    // the next batch after the fault (data read later by the consumer cannot be checked).
    ARROW_RETURN_NOT_OK(snapshot_->CheckMappedFiles());
    if (rows != length) {
      for (auto& column : columns) column = column->Slice(from, rows);
    }

    ARROW_ASSIGN_OR_RAISE(
        auto batch, WithTable(plan_.projection->Project(
                        plan_.projection_identity ? std::move(columns)
                                                  : Pick(columns, plan_.projection_map),
                        rows)));
    if (max_batch_rows_ > 0 && rows > max_batch_rows_) {
      for (int64_t at = 0; at < rows; at += max_batch_rows_) {
        pending_.push_back(batch->Slice(at, max_batch_rows_));
      }
    } else {
      pending_.push_back(std::move(batch));
    }
    return arrow::Status::OK();
  }

  const std::shared_ptr<const Snapshot> snapshot_;
  const ReadPlan plan_;
  size_t fragment_ = 0;
  size_t batch_ = 0;
  uint64_t next_offset_ = 0;
  int64_t skip_;
  int64_t remaining_;
  const int64_t max_batch_rows_;
  const int64_t range_begin_;
  const int64_t range_end_;  // clamped to the snapshot's rows
  int64_t counted_ = 0;
  std::deque<std::shared_ptr<arrow::RecordBatch>> pending_;
};

arrow::Result<std::shared_ptr<arrow::Schema>> Snapshot::ScanSchema(
    const ScanOptions& options) const {
  if (options.projection == nullptr) return schema();
  ARROW_RETURN_NOT_OK(CheckBound(options.projection->schema(), "projection", *this));
  return options.projection->output_schema();
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
  if (options.range_begin < 0 ||
      (options.range_end && *options.range_end < options.range_begin)) {
    return arrow::Status::Invalid(
        "Scan range must satisfy 0 <= begin <= end, got [", options.range_begin, ", ",
        options.range_end ? std::to_string(*options.range_end) : std::string("end"), ")");
  }
  ARROW_ASSIGN_OR_RAISE(auto plan,
                        MakePlan(*this, options.filter,
                                 options.projection ? options.projection : all_columns_));
  return std::make_shared<ScanReader>(shared_from_this(), std::move(plan), options);
}

arrow::Result<int64_t> Snapshot::CountRows(
    const std::shared_ptr<const Filter>& filter) const {
  if (filter == nullptr) return num_rows();
  ARROW_ASSIGN_OR_RAISE(auto plan, MakePlan(*this, filter, nullptr));
  ScanReader reader(shared_from_this(), std::move(plan), ScanOptions{});
  return reader.Count();
}

}  // namespace riffledb
