#include "riffledb/permutation/reader.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "riffledb/expr/projection.h"
#include "riffledb/table/gather.h"

namespace riffledb {

// ---------------------------------------------------------------------------------------
// BoundSelection

arrow::Result<std::shared_ptr<const BoundSelection>> BoundSelection::Make(
    const arrow::Schema& base_schema,
    const std::optional<PermutationSelection>& selection, bool binary_views) {
  std::shared_ptr<BoundSelection> bound(new BoundSelection());
  bound->take_.binary_views = binary_views;
  auto schema = std::make_shared<arrow::Schema>(base_schema);
  auto finish = [&]() -> arrow::Result<std::shared_ptr<const BoundSelection>> {
    const auto& out = bound->take_.projection->output_schema();
    if (!binary_views) {
      bound->output_schema_ = out;
      return bound;
    }
    arrow::FieldVector fields;
    for (const auto& field : out->fields()) {
      fields.push_back(field->WithType(GatheredType(field->type(), true)));
    }
    bound->output_schema_ = arrow::schema(std::move(fields), out->metadata());
    return bound;
  };
  if (!selection) {
    if (base_schema.num_fields() == 0) {
      return arrow::Status::Invalid("The base table has no columns to read");
    }
    ARROW_ASSIGN_OR_RAISE(bound->take_.projection, Projection::All(std::move(schema)));
    return finish();
  }
  if (selection->empty())
    return arrow::Status::Invalid("Must select at least one column");
  for (const auto& [name, source] : *selection) {
    if (name == kRowIdColumn && source != kRowIdColumn) {
      return arrow::Status::Invalid("Dynamic column ", source,
                                    " cannot be used to select _rowid");
    }
  }
  ARROW_ASSIGN_OR_RAISE(bound->take_.projection,
                        Projection::Make(std::move(schema), *selection));
  return finish();
}

// ---------------------------------------------------------------------------------------
// PermutationReader

arrow::Result<std::shared_ptr<const PermutationReader>> PermutationReader::Open(
    std::shared_ptr<const Snapshot> base,
    std::shared_ptr<const PermutationTable> permutation, uint64_t split) {
  if (base == nullptr) return arrow::Status::Invalid("base table is required");
  return Open(std::make_shared<SnapshotTakeSource>(std::move(base)),
              std::move(permutation), split);
}

arrow::Result<std::shared_ptr<const PermutationReader>> PermutationReader::Open(
    std::shared_ptr<const TakeSource> base,
    std::shared_ptr<const PermutationTable> permutation, uint64_t split) {
  if (base == nullptr) return arrow::Status::Invalid("base table is required");
  std::shared_ptr<PermutationReader> reader(new PermutationReader());
  reader->split_ = split;
  if (permutation == nullptr) {
    if (split != 0) {
      return arrow::Status::Invalid("An identity permutation has only split 0, got ",
                                    split);
    }
    reader->available_ = base->num_rows();
  } else {
    ARROW_ASSIGN_OR_RAISE(auto rows, permutation->GetSplit(split));
    reader->row_ids_ = std::move(rows.row_ids);
    reader->available_ = reader->row_ids_->length();
  }
  if (reader->available_ == 0) return arrow::Status::Invalid(kNoRowsMessage);
  reader->count_ = reader->available_;
  if (const auto* local = dynamic_cast<const SnapshotTakeSource*>(base.get())) {
    reader->base_ = local->snapshot();
  }
  reader->source_ = std::move(base);
  reader->table_ = std::move(permutation);
  return reader;
}

arrow::Result<std::shared_ptr<const PermutationReader>>
PermutationReader::WithOffsetLimit(std::optional<int64_t> offset,
                                   std::optional<int64_t> limit) const {
  if (offset && *offset < 0) {
    return arrow::Status::Invalid("Offset must not be negative, got ", *offset);
  }
  if (limit && *limit < 0) {
    return arrow::Status::Invalid("Limit must not be negative, got ", *limit);
  }
  const int64_t a = available_;
  int64_t start = 0;
  int64_t count = a;
  if (offset && limit) {
    if (*offset > a || *limit > a - *offset) {
      return arrow::Status::Invalid(
          "Offset + limit is greater than the number of rows in the permutation table");
    }
    start = *offset;
    count = *limit;
  } else if (offset) {
    if (*offset > a) {
      return arrow::Status::Invalid(
          "Offset is greater than the number of rows in the permutation table");
    }
    start = *offset;
    count = a - *offset;
  } else if (limit) {
    if (*limit > a) {
      return arrow::Status::Invalid(
          "Limit is greater than the number of rows in the permutation table");
    }
    count = *limit;
  }
  std::shared_ptr<PermutationReader> reader(new PermutationReader(*this));
  reader->start_ = start;
  reader->count_ = count;
  reader->offset_ = offset;
  reader->limit_ = limit;
  return reader;
}

arrow::Result<std::shared_ptr<const PermutationReader>> PermutationReader::WithRepeat(
    int64_t times) const {
  if (times < 1) return arrow::Status::Invalid("times must be at least 1, got ", times);
  if (count_ > 0 && times > std::numeric_limits<int64_t>::max() / count_) {
    return arrow::Status::Invalid("times ", times, " makes ", count_,
                                  " rows more than 2^63 - 1 rows");
  }
  std::shared_ptr<PermutationReader> reader(new PermutationReader(*this));
  reader->repeat_ = times;
  return reader;
}

arrow::Result<std::shared_ptr<arrow::UInt64Array>> PermutationReader::RowIds() const {
  if (row_ids_ != nullptr) {
    return std::static_pointer_cast<arrow::UInt64Array>(row_ids_->Slice(start_, count_));
  }
  std::vector<int64_t> offsets(count_);
  std::iota(offsets.begin(), offsets.end(), start_);
  ARROW_ASSIGN_OR_RAISE(auto ids, source_->RowIdsOfOffsets(offsets));
  ARROW_ASSIGN_OR_RAISE(auto buffer, arrow::AllocateBuffer(count_ * sizeof(uint64_t)));
  std::copy(ids.begin(), ids.end(), reinterpret_cast<uint64_t*>(buffer->mutable_data()));
  return std::make_shared<arrow::UInt64Array>(count_, std::move(buffer));
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> PermutationReader::TakeWindowRows(
    std::span<const int64_t> offsets, const BoundSelection& selection) const {
  if (row_ids_ == nullptr) {
    std::vector<int64_t> shifted;
    std::span<const int64_t> base_offsets = offsets;
    if (start_ != 0) {
      shifted.resize(offsets.size());
      for (size_t i = 0; i < offsets.size(); ++i) shifted[i] = offsets[i] + start_;
      base_offsets = shifted;
    }
    return source_->TakeOffsets(base_offsets, selection.take_options());
  }
  const uint64_t* split_ids = row_ids_->raw_values() + start_;
  std::vector<uint64_t> ids(offsets.size());
  for (size_t i = 0; i < offsets.size(); ++i) ids[i] = split_ids[offsets[i]];
  return source_->TakeRowIds(ids, selection.take_options());
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> PermutationReader::TakeWindowRange(
    int64_t start, int64_t length, const BoundSelection& selection) const {
  if (row_ids_ == nullptr) {
    std::vector<int64_t> offsets(length);
    std::iota(offsets.begin(), offsets.end(), start_ + start);
    return source_->TakeOffsets(offsets, selection.take_options());
  }
  std::span<const uint64_t> ids(row_ids_->raw_values() + start_ + start,
                                static_cast<size_t>(length));
  return source_->TakeRowIds(ids, selection.take_options());
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> PermutationReader::TakeOffsets(
    std::span<const int64_t> offsets, const BoundSelection& selection) const {
  const int64_t total = count_rows();
  for (size_t i = 0; i < offsets.size(); ++i) {
    if (offsets[i] < 0 || offsets[i] >= total) {
      return arrow::Status::IndexError("Offset ", offsets[i], " at position ", i,
                                       " is out of range for a permutation of ", total,
                                       " rows");
    }
  }
  if (repeat_ == 1) return TakeWindowRows(offsets, selection);
  std::vector<int64_t> wrapped(offsets.size());
  for (size_t i = 0; i < offsets.size(); ++i) wrapped[i] = offsets[i] % count_;
  return TakeWindowRows(wrapped, selection);
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> PermutationReader::TakeRange(
    int64_t start, int64_t length, const BoundSelection& selection) const {
  const int64_t total = count_rows();
  if (start < 0 || length < 0 || start > total || length > total - start) {
    return arrow::Status::IndexError("Range [", start, ", ", start + length,
                                     ") is out of range for a permutation of ", total,
                                     " rows");
  }
  if (length == 0 || start / count_ == (start + length - 1) / count_) {
    return TakeWindowRange(length == 0 ? 0 : start % count_, length, selection);
  }
  // The range wraps across repetitions.
  std::vector<int64_t> wrapped(length);
  for (int64_t i = 0; i < length; ++i) wrapped[i] = (start + i) % count_;
  return TakeWindowRows(wrapped, selection);
}

arrow::Result<int64_t> PermutationReader::NumBatches(int64_t batch_size,
                                                     bool drop_last) const {
  if (batch_size < 1) {
    return arrow::Status::Invalid("batch_size must be at least 1, got ", batch_size);
  }
  const int64_t total = count_rows();
  return drop_last ? total / batch_size : total / batch_size + (total % batch_size != 0);
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> PermutationReader::ReadBatch(
    int64_t index, int64_t batch_size, bool drop_last,
    const BoundSelection& selection) const {
  ARROW_ASSIGN_OR_RAISE(const int64_t batches, NumBatches(batch_size, drop_last));
  if (index < 0 || index >= batches) {
    return arrow::Status::IndexError("Batch ", index, " is out of range: there are ",
                                     batches, " batches of ", batch_size, " rows");
  }
  const int64_t start = index * batch_size;
  return TakeRange(start, std::min(batch_size, count_rows() - start), selection);
}

namespace {

class PermutationStream : public arrow::RecordBatchReader {
 public:
  PermutationStream(std::shared_ptr<const PermutationReader> reader,
                    std::shared_ptr<const BoundSelection> selection, int64_t batch_size,
                    bool drop_last, int64_t num_batches)
      : reader_(std::move(reader)),
        selection_(std::move(selection)),
        batch_size_(batch_size),
        drop_last_(drop_last),
        num_batches_(num_batches) {}

  std::shared_ptr<arrow::Schema> schema() const override {
    return selection_->output_schema();
  }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    if (next_ >= num_batches_) {
      *out = nullptr;
      return arrow::Status::OK();
    }
    ARROW_ASSIGN_OR_RAISE(
        *out, reader_->ReadBatch(next_, batch_size_, drop_last_, *selection_));
    ++next_;
    return arrow::Status::OK();
  }

 private:
  const std::shared_ptr<const PermutationReader> reader_;
  const std::shared_ptr<const BoundSelection> selection_;
  const int64_t batch_size_;
  const bool drop_last_;
  const int64_t num_batches_;
  int64_t next_ = 0;
};

}  // namespace

arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> PermutationReader::Read(
    std::shared_ptr<const BoundSelection> selection, int64_t batch_size,
    bool drop_last) const {
  ARROW_ASSIGN_OR_RAISE(const int64_t batches, NumBatches(batch_size, drop_last));
  if (selection == nullptr) return arrow::Status::Invalid("selection is required");
  // The stream outlives this call; it holds its own reference to an identical reader.
  std::shared_ptr<const PermutationReader> self(new PermutationReader(*this));
  return std::make_shared<PermutationStream>(std::move(self), std::move(selection),
                                             batch_size, drop_last, batches);
}

}  // namespace riffledb
