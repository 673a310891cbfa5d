#include "riffledb/permutation/reader.h"

#include <arrow/array/concatenate.h>
#include <arrow/compute/cast.h>

#include <algorithm>
#include <numeric>

#include "riffledb/expr/projection.h"

namespace riffledb {

namespace {

namespace cp = arrow::compute;

// The permutation table's row ids as one uint64 array without nulls.
arrow::Result<std::shared_ptr<arrow::UInt64Array>> ToRowIds(
    const std::shared_ptr<arrow::DataType>& type, arrow::ArrayVector chunks) {
  if (!arrow::is_integer(type->id())) {
    return arrow::Status::Invalid(
        "Permutation table column row_id must be an integer column, "
        "got ",
        type->ToString());
  }
  std::shared_ptr<arrow::Array> ids;
  if (chunks.empty()) {
    ARROW_ASSIGN_OR_RAISE(ids, arrow::MakeEmptyArray(arrow::uint64()));
  } else if (chunks.size() == 1) {
    ids = std::move(chunks[0]);
  } else {
    ARROW_ASSIGN_OR_RAISE(ids, arrow::Concatenate(chunks));
  }
  if (ids->null_count() > 0) {
    return arrow::Status::Invalid(
        "Permutation table column row_id must not contain nulls");
  }
  if (type->id() != arrow::Type::UINT64) {
    // A safe cast: negative ids fail.
    auto cast = cp::Cast(*ids, arrow::uint64());
    if (!cast.ok()) {
      return arrow::Status::Invalid(
          "Permutation table column row_id holds a negative id: ",
          cast.status().message());
    }
    ids = std::move(cast).ValueUnsafe();
  }
  return std::static_pointer_cast<arrow::UInt64Array>(ids);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// BoundSelection

arrow::Result<std::shared_ptr<const BoundSelection>> BoundSelection::Make(
    const arrow::Schema& base_schema,
    const std::optional<PermutationSelection>& selection) {
  std::shared_ptr<BoundSelection> bound(new BoundSelection());
  auto schema = std::make_shared<arrow::Schema>(base_schema);
  if (!selection) {
    if (base_schema.num_fields() == 0) {
      return arrow::Status::Invalid("The base table has no columns to read");
    }
    ARROW_ASSIGN_OR_RAISE(bound->take_.projection, Projection::All(std::move(schema)));
    return bound;
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
  return bound;
}

// ---------------------------------------------------------------------------------------
// PermutationReader

arrow::Result<std::shared_ptr<const PermutationReader>> PermutationReader::Open(
    std::shared_ptr<const Snapshot> base, std::shared_ptr<const Snapshot> permutation,
    uint64_t split) {
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
    const auto& schema = *permutation->schema();
    for (const char* name : {kPermutationRowIdColumn, kPermutationSplitColumn}) {
      if (schema.GetFieldIndex(name) < 0) {
        return arrow::Status::Invalid("Permutation table must contain a column named ",
                                      name);
      }
    }
    ScanOptions options;
    ARROW_ASSIGN_OR_RAISE(
        options.filter,
        Filter::Make(permutation->schema(), std::string(kPermutationSplitColumn) + " = " +
                                                std::to_string(split)));
    const std::string row_id[] = {kPermutationRowIdColumn};
    ARROW_ASSIGN_OR_RAISE(options.projection,
                          Projection::Columns(permutation->schema(), row_id));
    ARROW_ASSIGN_OR_RAISE(auto scan, permutation->Scan(options));
    arrow::ArrayVector chunks;
    while (true) {
      std::shared_ptr<arrow::RecordBatch> batch;
      ARROW_RETURN_NOT_OK(scan->ReadNext(&batch));
      if (batch == nullptr) break;
      if (batch->num_rows() > 0) chunks.push_back(batch->column(0));
    }
    ARROW_ASSIGN_OR_RAISE(
        reader->row_ids_,
        ToRowIds(schema.field(schema.GetFieldIndex(kPermutationRowIdColumn))->type(),
                 std::move(chunks)));
    reader->available_ = reader->row_ids_->length();
  }
  if (reader->available_ == 0) return arrow::Status::Invalid(kNoRowsMessage);
  reader->count_ = reader->available_;
  reader->base_ = std::move(base);
  reader->permutation_ = std::move(permutation);
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
  return reader;
}

arrow::Result<std::shared_ptr<arrow::UInt64Array>> PermutationReader::RowIds() const {
  if (row_ids_ != nullptr) {
    return std::static_pointer_cast<arrow::UInt64Array>(row_ids_->Slice(start_, count_));
  }
  std::vector<int64_t> offsets(count_);
  std::iota(offsets.begin(), offsets.end(), start_);
  ARROW_ASSIGN_OR_RAISE(auto ids, base_->RowIdsOfOffsets(offsets));
  ARROW_ASSIGN_OR_RAISE(auto buffer, arrow::AllocateBuffer(count_ * sizeof(uint64_t)));
  std::copy(ids.begin(), ids.end(), reinterpret_cast<uint64_t*>(buffer->mutable_data()));
  return std::make_shared<arrow::UInt64Array>(count_, std::move(buffer));
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> PermutationReader::TakeOffsets(
    std::span<const int64_t> offsets, const BoundSelection& selection) const {
  for (size_t i = 0; i < offsets.size(); ++i) {
    if (offsets[i] < 0 || offsets[i] >= count_) {
      return arrow::Status::IndexError("Offset ", offsets[i], " at position ", i,
                                       " is out of range for a permutation of ", count_,
                                       " rows");
    }
  }
  if (row_ids_ == nullptr) {
    std::vector<int64_t> shifted;
    std::span<const int64_t> base_offsets = offsets;
    if (start_ != 0) {
      shifted.resize(offsets.size());
      for (size_t i = 0; i < offsets.size(); ++i) shifted[i] = offsets[i] + start_;
      base_offsets = shifted;
    }
    return base_->TakeOffsets(base_offsets, selection.take_options());
  }
  const uint64_t* split_ids = row_ids_->raw_values() + start_;
  std::vector<uint64_t> ids(offsets.size());
  for (size_t i = 0; i < offsets.size(); ++i) ids[i] = split_ids[offsets[i]];
  return base_->TakeRowIds(ids, selection.take_options());
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> PermutationReader::TakeRange(
    int64_t start, int64_t length, const BoundSelection& selection) const {
  if (start < 0 || length < 0 || start > count_ || length > count_ - start) {
    return arrow::Status::IndexError("Range [", start, ", ", start + length,
                                     ") is out of range for a permutation of ", count_,
                                     " rows");
  }
  if (row_ids_ == nullptr) {
    std::vector<int64_t> offsets(length);
    std::iota(offsets.begin(), offsets.end(), start_ + start);
    return base_->TakeOffsets(offsets, selection.take_options());
  }
  std::span<const uint64_t> ids(row_ids_->raw_values() + start_ + start,
                                static_cast<size_t>(length));
  return base_->TakeRowIds(ids, selection.take_options());
}

namespace {

class PermutationStream : public arrow::RecordBatchReader {
 public:
  PermutationStream(std::shared_ptr<const PermutationReader> reader,
                    std::shared_ptr<const BoundSelection> selection, int64_t batch_size)
      : reader_(std::move(reader)),
        selection_(std::move(selection)),
        batch_size_(batch_size) {}

  std::shared_ptr<arrow::Schema> schema() const override {
    return selection_->output_schema();
  }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    const int64_t remaining = reader_->count_rows() - next_;
    if (remaining <= 0) {
      *out = nullptr;
      return arrow::Status::OK();
    }
    const int64_t length = std::min(batch_size_, remaining);
    ARROW_ASSIGN_OR_RAISE(*out, reader_->TakeRange(next_, length, *selection_));
    next_ += length;
    return arrow::Status::OK();
  }

 private:
  const std::shared_ptr<const PermutationReader> reader_;
  const std::shared_ptr<const BoundSelection> selection_;
  const int64_t batch_size_;
  int64_t next_ = 0;
};

}  // namespace

arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> PermutationReader::Read(
    std::shared_ptr<const BoundSelection> selection, int64_t batch_size) const {
  if (batch_size < 1) {
    return arrow::Status::Invalid("batch_size must be at least 1, got ", batch_size);
  }
  if (selection == nullptr) return arrow::Status::Invalid("selection is required");
  // The stream outlives this call; it holds its own reference to an identical reader.
  std::shared_ptr<const PermutationReader> self(new PermutationReader(*this));
  return std::make_shared<PermutationStream>(std::move(self), std::move(selection),
                                             batch_size);
}

}  // namespace riffledb
