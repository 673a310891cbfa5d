#include "riffledb/table/adapt.h"

#include <arrow/array.h>
#include <arrow/compute/cast.h>
#include <arrow/scalar.h>

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "riffledb/util/arrow_init.h"

namespace riffledb {

namespace {

// Where a target column comes from.
struct ColumnSource {
  int input_index = -1;  // -1: a nullable column the data lacks, filled with nulls
  bool cast = false;     // the input type differs from the target type
};

std::string Quoted(const std::string& name) { return "'" + name + "'"; }

// Appends "label: item, item" to `out` when `items` is not empty.
void AppendList(const std::string& label, const std::vector<std::string>& items,
                std::string* out) {
  if (items.empty()) return;
  if (!out->empty()) *out += "; ";
  *out += label + ": ";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) *out += ", ";
    *out += items[i];
  }
}

// The first row of `array` that a safe cast to `type` rejects, or -1 if no single row
// fails on its own. Error path only: bisection casts O(length) values in all, not
// O(length^2) as a row-by-row search would.
int64_t FirstRejectedRow(const arrow::Array& array,
                         const std::shared_ptr<arrow::DataType>& type) {
  const auto options = arrow::compute::CastOptions::Safe();
  auto fails = [&](int64_t offset, int64_t length) {
    return !arrow::compute::Cast(*array.Slice(offset, length), type, options).ok();
  };
  int64_t lo = 0;
  int64_t hi = array.length();  // a rejected row lies in [lo, hi)
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (fails(lo, mid - lo)) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return (hi > lo && fails(lo, 1)) ? lo : -1;
}

class AdaptingReader : public arrow::RecordBatchReader {
 public:
  AdaptingReader(arrow::RecordBatchReader* input, std::shared_ptr<arrow::Schema> target,
                 std::vector<ColumnSource> sources, std::string what)
      : input_(input),
        input_schema_(input->schema()),
        target_(std::move(target)),
        sources_(std::move(sources)),
        what_(std::move(what)) {}

  std::shared_ptr<arrow::Schema> schema() const override { return target_; }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(input_->ReadNext(&batch));
    if (batch == nullptr) {
      *out = nullptr;
      return arrow::Status::OK();
    }
    // A reader's batches carry its schema (the C stream interface guarantees it); a
    // batch that does not breaks the reader's contract, not the schema check above.
    if (batch->schema() != input_schema_ &&
        !batch->schema()->Equals(*input_schema_, /*check_metadata=*/false)) {
      return arrow::Status::Invalid("The data for ", what_, " changed schema at row ",
                                    rows_read_, ": ", batch->schema()->ToString(),
                                    " after ", input_schema_->ToString());
    }
    // Casting a malformed batch could read out of bounds; data from outside the process
    // must not get that far.
    arrow::Status valid = batch->Validate();
    if (!valid.ok()) {
      return arrow::Status::Invalid("Invalid batch at row ", rows_read_,
                                    " of the data for ", what_, ": ", valid.message());
    }
    const int64_t rows = batch->num_rows();
    arrow::ArrayVector columns;
    columns.reserve(sources_.size());
    for (size_t i = 0; i < sources_.size(); ++i) {
      const auto& field = target_->field(static_cast<int>(i));
      const ColumnSource& source = sources_[i];
      std::shared_ptr<arrow::Array> column;
      if (source.input_index < 0) {
        ARROW_ASSIGN_OR_RAISE(column, arrow::MakeArrayOfNull(field->type(), rows));
      } else {
        column = batch->column(source.input_index);
        if (source.cast) {
          ARROW_ASSIGN_OR_RAISE(column, Cast(*column, *field));
        }
      }
      if (!field->nullable() && column->null_count() > 0) {
        int64_t row = 0;
        while (row < column->length() && column->IsValid(row)) ++row;
        return arrow::Status::Invalid("Column '", field->name(), "' of ", what_,
                                      " is not nullable, but row ", rows_read_ + row,
                                      " of the data is null");
      }
      columns.push_back(std::move(column));
    }
    *out = arrow::RecordBatch::Make(target_, rows, std::move(columns));
    rows_read_ += rows;
    return arrow::Status::OK();
  }

 private:
  arrow::Result<std::shared_ptr<arrow::Array>> Cast(const arrow::Array& column,
                                                    const arrow::Field& field) const {
    auto cast =
        arrow::compute::Cast(column, field.type(), arrow::compute::CastOptions::Safe());
    if (cast.ok()) return cast;
    const int64_t row = FirstRejectedRow(column, field.type());
    if (row < 0) {
      return arrow::Status::Invalid("Cannot cast column '", field.name(),
                                    "' of the data (", column.type()->ToString(), ") to ",
                                    field.type()->ToString(), " for ", what_, ": ",
                                    cast.status().message());
    }
    auto value = column.GetScalar(row);
    return arrow::Status::Invalid(
        "Cannot cast column '", field.name(), "' of the data (",
        column.type()->ToString(), ") to ", field.type()->ToString(), " for ", what_,
        " without loss: value ", value.ok() ? (*value)->ToString() : std::string("?"),
        " at row ", rows_read_ + row, " (", cast.status().message(), ")");
  }

  arrow::RecordBatchReader* input_;
  const std::shared_ptr<arrow::Schema> input_schema_;
  const std::shared_ptr<arrow::Schema> target_;
  const std::vector<ColumnSource> sources_;
  const std::string what_;
  int64_t rows_read_ = 0;
};

}  // namespace

arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> AdaptToSchema(
    arrow::RecordBatchReader* input, std::shared_ptr<arrow::Schema> target,
    std::string what) {
  ARROW_RETURN_NOT_OK(EnsureArrowComputeInitialized());
  const auto data = input->schema();
  std::unordered_map<std::string, int> data_index;
  std::vector<std::string> duplicated, extra, absent, mismatched;
  for (int i = 0; i < data->num_fields(); ++i) {
    const auto& field = data->field(i);
    if (!data_index.emplace(field->name(), i).second) {
      duplicated.push_back(Quoted(field->name()));
    } else if (target->GetFieldIndex(field->name()) < 0) {
      extra.push_back(Quoted(field->name()) + " (" + field->type()->ToString() + ")");
    }
  }
  std::vector<ColumnSource> sources(target->num_fields());
  for (int i = 0; i < target->num_fields(); ++i) {
    const auto& field = target->field(i);
    auto it = data_index.find(field->name());
    if (it == data_index.end()) {
      if (field->nullable()) continue;
      absent.push_back(Quoted(field->name()) + " (" + field->type()->ToString() + ")");
      continue;
    }
    const auto& given = data->field(it->second)->type();
    sources[i].input_index = it->second;
    sources[i].cast = !given->Equals(*field->type());
    if (sources[i].cast && !arrow::compute::CanCast(*given, *field->type())) {
      mismatched.push_back(Quoted(field->name()) + " (expected " +
                           field->type()->ToString() + ", got " + given->ToString() +
                           ")");
    }
  }
  std::string problems;
  AppendList("missing non-nullable columns", absent, &problems);
  AppendList("extra columns", extra, &problems);
  AppendList("columns given twice", duplicated, &problems);
  AppendList("mismatched columns", mismatched, &problems);
  if (!problems.empty()) {
    return arrow::Status::Invalid("The data does not match the schema of ", what, ": ",
                                  problems);
  }
  return std::make_shared<AdaptingReader>(input, std::move(target), std::move(sources),
                                          std::move(what));
}

}  // namespace riffledb
