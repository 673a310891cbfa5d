#include "riffledb/table/adapt.h"

#include <arrow/api.h>
#include <arrow/json/from_string.h>
#include <gmock/gmock.h>

#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/testing.h"

namespace riffledb {
namespace {

using riffledb::testing::ReaderOf;
using ::testing::HasSubstr;

std::shared_ptr<arrow::Array> ArrayOf(const std::shared_ptr<arrow::DataType>& type,
                                      const std::string& json) {
  return arrow::json::ArrayFromJSONString(type, json).ValueOrDie();
}

std::shared_ptr<arrow::RecordBatch> BatchOf(
    const std::vector<std::shared_ptr<arrow::Field>>& fields,
    const std::vector<std::string>& json) {
  arrow::ArrayVector columns;
  for (size_t i = 0; i < fields.size(); ++i) {
    columns.push_back(ArrayOf(fields[i]->type(), json[i]));
  }
  return arrow::RecordBatch::Make(arrow::schema(fields), columns.at(0)->length(),
                                  columns);
}

// Reads every batch of AdaptToSchema(input, target) into one table.
arrow::Result<std::shared_ptr<arrow::Table>> Adapt(
    arrow::RecordBatchReader* input, const std::shared_ptr<arrow::Schema>& target) {
  ARROW_ASSIGN_OR_RAISE(auto adapted, AdaptToSchema(input, target, "table 't'"));
  return adapted->ToTable();
}

std::string MessageOf(const arrow::Status& status) { return status.message(); }

const auto kId = arrow::field("id", arrow::int64());
const auto kLabel = arrow::field("label", arrow::utf8());

TEST(AdaptToSchema, ReordersColumnsByNameWithoutCopying) {
  auto batch = BatchOf({kLabel, kId}, {R"(["a", "b"])", "[1, 2]"});
  auto input = ReaderOf({batch});
  auto target =
      arrow::schema({kId, kLabel})->WithMetadata(arrow::key_value_metadata({"k"}, {"v"}));
  ASSERT_OK_AND_ASSIGN(auto adapted, AdaptToSchema(input.get(), target, "t"));
  std::shared_ptr<arrow::RecordBatch> out;
  ASSERT_OK(adapted->ReadNext(&out));
  EXPECT_TRUE(out->schema()->Equals(*target, /*check_metadata=*/true));
  // Same arrays, moved: no column is copied when its type already matches.
  EXPECT_EQ(out->column(0)->data(), batch->column(1)->data());
  EXPECT_EQ(out->column(1)->data(), batch->column(0)->data());
  ASSERT_OK(adapted->ReadNext(&out));
  EXPECT_EQ(out, nullptr);
}

TEST(AdaptToSchema, SafeCastsThatKeepEveryValue) {
  auto input = ReaderOf({BatchOf({arrow::field("v", arrow::list(arrow::float64())),
                                  arrow::field("n", arrow::int64())},
                                 {"[[0.5, 1], null]", "[-2147483648, 2147483647]"})});
  auto target =
      arrow::schema({arrow::field("n", arrow::int32()),
                     arrow::field("v", arrow::fixed_size_list(arrow::float32(), 2))});
  ASSERT_OK_AND_ASSIGN(auto table, Adapt(input.get(), target));
  ASSERT_OK_AND_ASSIGN(auto batch, table->CombineChunksToBatch());
  EXPECT_TRUE(
      batch->column(0)->Equals(ArrayOf(arrow::int32(), "[-2147483648, 2147483647]")));
  EXPECT_TRUE(batch->column(1)->Equals(
      ArrayOf(arrow::fixed_size_list(arrow::float32(), 2), "[[0.5, 1], null]")));
}

TEST(AdaptToSchema, OverflowNamesColumnRowAndValue) {
  auto first = BatchOf({kId}, {"[1, 2, 3]"});
  auto second = BatchOf({kId}, {"[4, 2147483648, 5]"});
  auto input = ReaderOf({first, second});
  auto target = arrow::schema({arrow::field("id", arrow::int32())});
  auto result = Adapt(input.get(), target);
  ASSERT_RAISES(Invalid, result);
  // Row 4 of the stream: the second row of the second batch.
  EXPECT_THAT(MessageOf(result.status()),
              HasSubstr("Cannot cast column 'id' of the data (int64) to int32 for table "
                        "'t' without loss: value 2147483648 at row 4"));
}

TEST(AdaptToSchema, FractionIntoIntegerIsRejected) {
  auto input = ReaderOf({BatchOf({arrow::field("x", arrow::float64())}, {"[1, 2.5]"})});
  auto result = Adapt(input.get(), arrow::schema({arrow::field("x", arrow::int64())}));
  ASSERT_RAISES(Invalid, result);
  EXPECT_THAT(MessageOf(result.status()), HasSubstr("value 2.5 at row 1"));
}

TEST(AdaptToSchema, UnparsableStringIsRejected) {
  auto input = ReaderOf({BatchOf({arrow::field("x", arrow::utf8())}, {R"(["1", "x"])"})});
  auto result = Adapt(input.get(), arrow::schema({arrow::field("x", arrow::float64())}));
  ASSERT_RAISES(Invalid, result);
  EXPECT_THAT(MessageOf(result.status()), HasSubstr("value x at row 1"));
}

TEST(AdaptToSchema, OneMessageNamesEveryMismatch) {
  auto input = ReaderOf({BatchOf(
      {arrow::field("extra", arrow::utf8()), arrow::field("vec", arrow::utf8()), kId},
      {R"(["a"])", R"(["b"])", "[1]"})});
  auto target = arrow::schema({kId, arrow::field("vec", arrow::list(arrow::float32())),
                               arrow::field("gone", arrow::int8(), /*nullable=*/false)});
  auto adapted = AdaptToSchema(input.get(), target, "table 't'");
  ASSERT_RAISES(Invalid, adapted);
  EXPECT_EQ(
      MessageOf(adapted.status()),
      "The data does not match the schema of table 't': missing non-nullable columns: "
      "'gone' "
      "(int8); extra columns: 'extra' (string); mismatched columns: 'vec' "
      "(expected list<item: float>, got string)");
}

TEST(AdaptToSchema, DuplicateDataColumnIsAMismatch) {
  auto input = ReaderOf({BatchOf({kId, kId}, {"[1]", "[2]"})});
  auto adapted = AdaptToSchema(input.get(), arrow::schema({kId}), "table 't'");
  ASSERT_RAISES(Invalid, adapted);
  EXPECT_EQ(MessageOf(adapted.status()),
            "The data does not match the schema of table 't': columns given twice: 'id'");
}

// Regression: rows filled a missing nullable column, the same data as columns were
// rejected. One rule now, whatever form the data came in.
TEST(AdaptToSchema, MissingNullableColumnIsFilledWithNulls) {
  auto target = arrow::schema({kId, kLabel});
  auto input = ReaderOf({BatchOf({kId}, {"[1, 2]"}), BatchOf({kId}, {"[3]"})});
  ASSERT_OK_AND_ASSIGN(auto table, Adapt(input.get(), target));
  EXPECT_TRUE(table->schema()->Equals(*target));
  EXPECT_EQ(table->num_rows(), 3);
  EXPECT_EQ(table->column(1)->null_count(), 3);
}

TEST(AdaptToSchema, MissingNonNullableColumnIsRejected) {
  auto target = arrow::schema({kId, arrow::field("label", arrow::utf8(), false),
                               arrow::field("note", arrow::utf8())});
  auto input = ReaderOf({BatchOf({kId}, {"[1]"})});
  auto adapted = AdaptToSchema(input.get(), target, "table 't'");
  ASSERT_RAISES(Invalid, adapted);
  EXPECT_EQ(MessageOf(adapted.status()),
            "The data does not match the schema of table 't': missing non-nullable "
            "columns: 'label' (string)");
}

TEST(AdaptToSchema, NullInNonNullableColumnNamesTheRow) {
  auto target = arrow::schema({arrow::field("id", arrow::int32(), /*nullable=*/false)});
  auto input = ReaderOf({BatchOf({kId}, {"[1, 2]"}), BatchOf({kId}, {"[3, 4, null]"})});
  auto result = Adapt(input.get(), target);
  ASSERT_RAISES(Invalid, result);
  EXPECT_EQ(MessageOf(result.status()),
            "Column 'id' of table 't' is not nullable, but row 4 of the data is null");
}

TEST(AdaptToSchema, ErrorIsReportedWhenItsBatchIsRead) {
  auto target = arrow::schema({arrow::field("id", arrow::int8())});
  auto input = ReaderOf({BatchOf({kId}, {"[1]"}), BatchOf({kId}, {"[1000]"})});
  ASSERT_OK_AND_ASSIGN(auto adapted, AdaptToSchema(input.get(), target, "t"));
  std::shared_ptr<arrow::RecordBatch> out;
  ASSERT_OK(adapted->ReadNext(&out));
  EXPECT_EQ(out->num_rows(), 1);
  ASSERT_RAISES(Invalid, adapted->ReadNext(&out));
}

}  // namespace
}  // namespace riffledb
