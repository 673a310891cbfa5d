#include "riffledb/expr/parser.h"

#include <arrow/array/builder_primitive.h>
#include <arrow/compute/api_scalar.h>
#include <arrow/json/from_string.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pthread.h>

#include <string>
#include <vector>

#include "riffledb/expr/expr_test_util_internal.h"
#include "riffledb/expr/projection.h"
#include "riffledb/testing/testing.h"

namespace riffledb {
namespace {

namespace cp = arrow::compute;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::shared_ptr<arrow::Schema> TwoColumns() {
  return arrow::schema(
      {arrow::field("a", arrow::int32()), arrow::field("b", arrow::utf8())});
}

std::vector<bool> ToVector(const arrow::BooleanArray& array) {
  std::vector<bool> out;
  for (int64_t i = 0; i < array.length(); ++i) out.push_back(array.Value(i));
  return out;
}

TEST(ExprParse, ErrorNamesPositionAndExcerpt) {
  auto result = ParseExpression("a >");
  ASSERT_RAISES(Invalid, result.status());
  EXPECT_EQ(result.status().message(),
            "Invalid filter 'a >' at position 4: expected an expression after '>'");
}

TEST(ExprParse, LongInputIsExcerptedAroundThePosition) {
  std::string text = "a = 1";
  for (int i = 0; i < 40; ++i) text += " AND a = 1";
  text += " AND )";
  auto result = ParseExpression(text);
  ASSERT_RAISES(Invalid, result.status());
  EXPECT_THAT(
      result.status().message(),
      HasSubstr("Invalid filter '...a = 1 AND a = 1 AND a = 1 AND )' at position " +
                std::to_string(text.size()) + ": "));
}

TEST(ExprParse, InvalidUtf8IsRejectedAndEscaped) {
  auto result = ParseExpression("s = '\xff\xfe'");
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "position 6: the text is not valid UTF-8",
                             result.status());
  EXPECT_THAT(result.status().message(), HasSubstr("\\xff\\xfe"));
}

TEST(ExprParse, Utf8IdentifiersAndStrings) {
  ASSERT_OK_AND_ASSIGN(auto expr, ParseExpression("größe = 'ünï'"));
  EXPECT_EQ(expr.ToString(), "(größe == \"ünï\")");
}

TEST(ExprParse, EmbeddedNulByteIsAnError) {
  std::string text("a = 1\0", 6);
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "position 6: unexpected character '\\x00'",
                             ParseExpression(text).status());
}

TEST(ExprParse, DeepNestingIsAnErrorNotACrash) {
  for (int depth : {kMaxExpressionDepth - 2, kMaxExpressionDepth + 1, 100000}) {
    std::string text = std::string(depth, '(') + "a" + std::string(depth, ')');
    auto result = ParseExpression(text);
    if (depth < kMaxExpressionDepth) {
      EXPECT_OK(result.status());
    } else {
      ASSERT_RAISES_WITH_MESSAGE(Invalid, "nested too deeply", result.status());
    }
  }
}

// The parser recurses about ten frames per parenthesis: the deepest accepted input must
// fit in a small thread stack, even with sanitizers.
TEST(ExprParse, DeepestAcceptedInputFitsInA4MiBStack) {
  struct Job {
    std::string text;
    bool ok = false;
  } job;
  job.text = std::string(kMaxExpressionDepth - 1, '(') + "a = 1" +
             std::string(kMaxExpressionDepth - 1, ')');
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 4 << 20);
  pthread_t thread;
  ASSERT_EQ(0, pthread_create(
                   &thread, &attr,
                   [](void* arg) -> void* {
                     auto* job = static_cast<Job*>(arg);
                     auto parsed = ParseExpression(job->text);
                     job->ok =
                         parsed.ok() &&
                         BindExpression(
                             *parsed, *arrow::schema({arrow::field("a", arrow::int32())}))
                             .ok();
                     return nullptr;
                   },
                   &job));
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
  EXPECT_TRUE(job.ok);
}

TEST(ExprParse, LongOrChainsStayShallow) {
  std::string text = "a = 0";
  for (int i = 1; i < 5000; ++i) text += " OR a = " + std::to_string(i);
  ASSERT_OK_AND_ASSIGN(auto expr, ParseExpression(text));
  ASSERT_OK_AND_ASSIGN(auto bound, BindExpression(expr, *TwoColumns()));
  EXPECT_TRUE(bound.IsBound());
}

TEST(ExprParse, LargeInListIsOneSetLookup) {
  std::string text = "a IN (0";
  for (int i = 1; i < 10000; ++i) text += ", " + std::to_string(i);
  text += ")";
  ASSERT_OK_AND_ASSIGN(auto expr, ParseExpression(text));
  ASSERT_NE(expr.call(), nullptr);
  EXPECT_EQ(expr.call()->function_name, "is_in");
}

TEST(ExprBind, UnknownColumnNamesItAndListsTheAvailableOnes) {
  ASSERT_OK_AND_ASSIGN(auto expr, ParseExpression("a > 1 AND foo = 2"));
  auto bound = BindExpression(expr, *TwoColumns());
  ASSERT_RAISES(Invalid, bound.status());
  EXPECT_EQ(bound.status().message(),
            "Column 'foo' does not exist; available columns: a, b");
}

TEST(ExprBind, ColumnNamesAreCaseSensitive) {
  ASSERT_OK_AND_ASSIGN(auto expr, ParseExpression("A > 1"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Column 'A' does not exist",
                             BindExpression(expr, *TwoColumns()).status());
}

TEST(ExprBind, AmbiguousColumn) {
  auto schema = arrow::schema(
      {arrow::field("a", arrow::int32()), arrow::field("a", arrow::int64())});
  ASSERT_OK_AND_ASSIGN(auto expr, ParseExpression("a > 1"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Column 'a' is ambiguous",
                             BindExpression(expr, *schema).status());
}

TEST(ExprBind, TypeErrorGivesTheReason) {
  ASSERT_OK_AND_ASSIGN(auto expr, ParseExpression("a + b > 1"));
  auto bound = BindExpression(expr, *TwoColumns());
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Type error in add_checked(a, b)", bound.status());
  EXPECT_THAT(bound.status().message(), HasSubstr("(int32, string)"));
}

TEST(ExprBind, EmptyExpressionIsInvalid) {
  ASSERT_RAISES(Invalid, BindExpression(cp::Expression(), *TwoColumns()).status());
}

TEST(ExprBind, ZoneAwareTimestampAgainstNaiveLiteral) {
  auto type = arrow::timestamp(arrow::TimeUnit::NANO, "UTC");
  auto schema = arrow::schema({arrow::field("ts", type)});
  ASSERT_OK_AND_ASSIGN(auto column,
                       arrow::json::ArrayFromJSONString(type, R"(["2024-01-01 00:00:00Z",
                                                  "2024-06-01 12:00:00Z", null])"));
  auto batch = arrow::RecordBatch::Make(schema, 3, {column});
  for (const char* filter : {"ts > '2024-03-01'", "ts > TIMESTAMP '2024-03-01 00:00:00'",
                             "ts > DATE '2024-03-01'"}) {
    SCOPED_TRACE(filter);
    ASSERT_OK_AND_ASSIGN(auto expr, ParseExpression(filter));
    ASSERT_OK_AND_ASSIGN(auto bound, BindExpression(expr, *schema));
    ASSERT_OK_AND_ASSIGN(auto selected, EvaluateFilter(bound, *batch));
    EXPECT_THAT(ToVector(*selected), ElementsAre(false, true, false));
  }
}

TEST(ExprReferencedColumns, DeduplicatedInFirstUseOrder) {
  ASSERT_OK_AND_ASSIGN(
      auto expr,
      ParseExpression("b = 'x' AND (a > 1 OR st.x = 2) AND a % 2 = 0 AND b IS NULL"));
  EXPECT_THAT(ReferencedColumns(expr), ElementsAre("b", "a", "st"));
  EXPECT_THAT(ReferencedColumns(cp::Expression()), ElementsAre());
  ASSERT_OK_AND_ASSIGN(auto literal_only, ParseExpression("1 + 2 = 3"));
  EXPECT_TRUE(ReferencedColumns(literal_only).empty());
}

TEST(ExprReferencedColumns, SameOnBoundExpressions) {
  ASSERT_OK_AND_ASSIGN(auto batch, internal::MakeExprTestBatch());
  ASSERT_OK_AND_ASSIGN(auto expr,
                       ParseExpression("`my col` > 1 AND _rowid < 3 AND a % 2 = 1"));
  ASSERT_OK_AND_ASSIGN(auto bound, BindExpression(expr, *batch->schema()));
  EXPECT_THAT(ReferencedColumns(bound), ElementsAre("my col", "_rowid", "a"));
}

TEST(ExprEvaluateFilter, NullAndFalseAreNotSelected) {
  auto schema = arrow::schema({arrow::field("f", arrow::boolean())});
  ASSERT_OK_AND_ASSIGN(auto column, arrow::json::ArrayFromJSONString(
                                        arrow::boolean(), "[true, null, false, true]"));
  auto batch = arrow::RecordBatch::Make(schema, 4, {column});
  ASSERT_OK_AND_ASSIGN(auto expr, ParseExpression("f"));
  ASSERT_OK_AND_ASSIGN(auto bound, BindExpression(expr, *schema));
  ASSERT_OK_AND_ASSIGN(auto selected, EvaluateFilter(bound, *batch));
  EXPECT_EQ(selected->null_count(), 0);
  EXPECT_THAT(ToVector(*selected), ElementsAre(true, false, false, true));
}

TEST(ExprEvaluateFilter, ScalarResultsAreBroadcast) {
  ASSERT_OK_AND_ASSIGN(auto batch, internal::MakeExprTestBatch());
  for (auto [text, expected] : {std::pair{"TRUE", true}, std::pair{"1 = 2", false},
                                std::pair{"NULL", false}, std::pair{"NULL = 1", false}}) {
    SCOPED_TRACE(text);
    ASSERT_OK_AND_ASSIGN(auto expr, ParseExpression(text));
    ASSERT_OK_AND_ASSIGN(auto bound, BindExpression(expr, *batch->schema()));
    ASSERT_OK_AND_ASSIGN(auto selected, EvaluateFilter(bound, *batch));
    ASSERT_EQ(selected->length(), batch->num_rows());
    EXPECT_EQ(selected->null_count(), 0);
    EXPECT_EQ(selected->true_count(), expected ? batch->num_rows() : 0);
  }
}

TEST(ExprEvaluateFilter, EmptyBatch) {
  ASSERT_OK_AND_ASSIGN(auto batch, internal::MakeExprTestBatch());
  auto empty = batch->Slice(0, 0);
  ASSERT_OK_AND_ASSIGN(auto expr, ParseExpression("a > 1"));
  ASSERT_OK_AND_ASSIGN(auto bound, BindExpression(expr, *batch->schema()));
  ASSERT_OK_AND_ASSIGN(auto selected, EvaluateFilter(bound, *empty));
  EXPECT_EQ(selected->length(), 0);
}

TEST(ExprEvaluateFilter, NonBooleanIsInvalid) {
  ASSERT_OK_AND_ASSIGN(auto batch, internal::MakeExprTestBatch());
  ASSERT_OK_AND_ASSIGN(auto expr, ParseExpression("a + 1"));
  ASSERT_OK_AND_ASSIGN(auto bound, BindExpression(expr, *batch->schema()));
  auto selected = EvaluateFilter(bound, *batch);
  ASSERT_RAISES(Invalid, selected.status());
  EXPECT_EQ(selected.status().message(),
            "Filter must be a boolean expression, got int32");
}

TEST(ExprEvaluateFilter, UnboundIsInvalid) {
  ASSERT_OK_AND_ASSIGN(auto batch, internal::MakeExprTestBatch());
  ASSERT_OK_AND_ASSIGN(auto expr, ParseExpression("a > 1"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "must be bound",
                             EvaluateFilter(expr, *batch).status());
  ASSERT_RAISES(Invalid, EvaluateFilter(cp::Expression(), *batch).status());
}

TEST(ExprEvaluateFilter, BatchThatDoesNotMatchTheBoundSchemaIsInvalid) {
  ASSERT_OK_AND_ASSIGN(auto batch, internal::MakeExprTestBatch());
  ASSERT_OK_AND_ASSIGN(auto expr, ParseExpression("ls = 'x'"));  // the last column
  ASSERT_OK_AND_ASSIGN(auto bound, BindExpression(expr, *batch->schema()));
  ASSERT_OK_AND_ASSIGN(auto fewer, batch->SelectColumns({0, 1}));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "does not exist in the batch",
                             EvaluateFilter(bound, *fewer).status());
  ASSERT_OK_AND_ASSIGN(auto other_types,
                       batch->SelectColumns({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 3}));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "is string in the batch but large_string",
                             EvaluateFilter(bound, *other_types).status());
}

TEST(ExprEvaluateFilter, DivisionByZeroIsAnError) {
  ASSERT_OK_AND_ASSIGN(auto batch, internal::MakeExprTestBatch());
  for (const char* text : {"a / 0 = 1", "a % 0 = 1", "c / 0.0 > 1"}) {
    ASSERT_OK_AND_ASSIGN(auto expr, ParseExpression(text));
    ASSERT_OK_AND_ASSIGN(auto bound, BindExpression(expr, *batch->schema()));
    ASSERT_RAISES_WITH_MESSAGE(Invalid, "divide by zero",
                               EvaluateFilter(bound, *batch).status());
  }
}

TEST(ExprEvaluateFilter, StructChildUnderANullParentIsNull) {
  // The child array holds a value (5) under the null parent: it must not be selected.
  auto child = arrow::json::ArrayFromJSONString(arrow::int32(), "[1, 5, 3]").ValueOrDie();
  arrow::TypedBufferBuilder<bool> validity;
  for (bool valid : {true, false, true}) ASSERT_OK(validity.Append(valid));
  ASSERT_OK_AND_ASSIGN(auto bitmap, validity.Finish());
  ASSERT_OK_AND_ASSIGN(
      auto st,
      arrow::StructArray::Make({child}, {arrow::field("x", arrow::int32())}, bitmap));
  auto schema = arrow::schema({arrow::field("st", st->type())});
  auto batch = arrow::RecordBatch::Make(schema, 3, {st});
  ASSERT_OK_AND_ASSIGN(auto expr, ParseExpression("st.x > 2"));
  ASSERT_OK_AND_ASSIGN(auto bound, BindExpression(expr, *schema));
  ASSERT_OK_AND_ASSIGN(auto selected, EvaluateFilter(bound, *batch));
  EXPECT_THAT(ToVector(*selected), ElementsAre(false, false, true));
}

TEST(ExprEvaluateExpression, ScalarIsBroadcast) {
  ASSERT_OK_AND_ASSIGN(auto batch, internal::MakeExprTestBatch());
  ASSERT_OK_AND_ASSIGN(auto expr, ParseExpression("1 + 2"));
  ASSERT_OK_AND_ASSIGN(auto bound, BindExpression(expr, *batch->schema()));
  ASSERT_OK_AND_ASSIGN(auto values, EvaluateExpression(bound, *batch));
  ASSERT_EQ(values->length(), batch->num_rows());
  ASSERT_OK_AND_ASSIGN(auto expected, arrow::json::ArrayFromJSONString(
                                          values->type(), "[3,3,3,3,3,3,3,3]"));
  EXPECT_TRUE(values->Equals(*expected)) << values->ToString();
}

TEST(ExprEvaluateExpression, ModuloHasTheSignOfTheDividend) {
  auto schema = arrow::schema(
      {arrow::field("x", arrow::int64()), arrow::field("y", arrow::float64())});
  auto x = arrow::json::ArrayFromJSONString(arrow::int64(), "[7, -7, 7, -7, null]")
               .ValueOrDie();
  auto y = arrow::json::ArrayFromJSONString(arrow::float64(), "[7.5, -7.5, 7.5, -7.5, 1]")
               .ValueOrDie();
  auto batch = arrow::RecordBatch::Make(schema, 5, {x, y});
  ASSERT_OK_AND_ASSIGN(auto expr,
                       ParseExpression("x % 3 = (x - x / 3 * 3) AND x % -3 = x % 3"));
  ASSERT_OK_AND_ASSIGN(auto bound, BindExpression(expr, *schema));
  ASSERT_OK_AND_ASSIGN(auto selected, EvaluateFilter(bound, *batch));
  EXPECT_EQ(selected->true_count(), 4);
  ASSERT_OK_AND_ASSIGN(expr, ParseExpression("y % 2"));
  ASSERT_OK_AND_ASSIGN(bound, BindExpression(expr, *schema));
  ASSERT_OK_AND_ASSIGN(auto values, EvaluateExpression(bound, *batch));
  ASSERT_OK_AND_ASSIGN(auto expected, arrow::json::ArrayFromJSONString(
                                          arrow::float64(), "[1.5, -1.5, 1.5, -1.5, 1]"));
  EXPECT_TRUE(values->Equals(*expected)) << values->ToString();
}

// A price column: decimal(5, 2) holding 1.50, 0.10, 999.99, null; a decimal256; and a
// decimal with 8 integer digits.
std::shared_ptr<arrow::RecordBatch> DecimalBatch() {
  auto schema = arrow::schema({arrow::field("price", arrow::decimal128(5, 2)),
                               arrow::field("big", arrow::decimal256(40, 3)),
                               arrow::field("fine", arrow::decimal128(38, 30))});
  auto price = arrow::json::ArrayFromJSONString(arrow::decimal128(5, 2),
                                                R"(["1.50", "0.10", "999.99", null])")
                   .ValueOrDie();
  auto big = arrow::json::ArrayFromJSONString(arrow::decimal256(40, 3),
                                              R"(["1.500", "0.100", "-2.000", null])")
                 .ValueOrDie();
  const std::string zeros(29, '0');  // JSON decimals spell out the whole scale
  auto fine = arrow::json::ArrayFromJSONString(arrow::decimal128(38, 30),
                                               "[\"1.5" + zeros + "\", \"0.1" + zeros +
                                                   "\", \"-2.0" + zeros + "\", null]")
                  .ValueOrDie();
  return arrow::RecordBatch::Make(schema, 4, {price, big, fine});
}

std::vector<bool> Select(const arrow::RecordBatch& batch, const std::string& sql) {
  auto filter = Filter::Make(batch.schema(), sql);
  EXPECT_TRUE(filter.ok()) << filter.status().ToString();
  if (!filter.ok()) return {};
  // A filter evaluates the columns it needs, in its input order.
  auto input = batch.SelectColumns((*filter)->needed().columns).ValueOrDie();
  auto selected = (*filter)->Evaluate(*input);
  EXPECT_TRUE(selected.ok()) << selected.status().ToString();
  if (!selected.ok()) return {};
  return ToVector(**selected);
}

// Regression: `price > 1` failed with "Precision is not great enough for the result. It
// should be at least 21": Arrow cast the literal to decimal(19, 0) and then widened both.
TEST(ExprBind, DecimalColumnAgainstIntegerLiterals) {
  auto batch = DecimalBatch();
  EXPECT_THAT(Select(*batch, "price > 1"), ElementsAre(true, false, true, false));
  EXPECT_THAT(Select(*batch, "1 < price"), ElementsAre(true, false, true, false));
  EXPECT_THAT(Select(*batch, "price <= 999"), ElementsAre(true, true, false, false));
  EXPECT_THAT(Select(*batch, "price < 100000"), ElementsAre(true, true, true, false));
  EXPECT_THAT(Select(*batch, "price > -1"), ElementsAre(true, true, true, false));
  EXPECT_THAT(Select(*batch, "price BETWEEN 1 AND 999"),
              ElementsAre(true, false, false, false));
  EXPECT_THAT(Select(*batch, "price * 2 > 3"), ElementsAre(false, false, true, false));
  EXPECT_THAT(Select(*batch, "price + 1 = 2.5"), ElementsAre(true, false, false, false));
  // Regression: a zero literal made a decimal of precision 0 and aborted the process.
  EXPECT_THAT(Select(*batch, "price > 0"), ElementsAre(true, true, true, false));
  EXPECT_THAT(Select(*batch, "price >= 0.0"), ElementsAre(true, true, true, false));
  EXPECT_THAT(Select(*batch, "price IN (1, 0.1, NULL)"),
              ElementsAre(false, true, false, false));
  EXPECT_THAT(Select(*batch, "price NOT IN (0.1, 999.99)"),
              ElementsAre(true, false, false, false));
  EXPECT_THAT(Select(*batch, "price IN (0.125)"),
              ElementsAre(false, false, false, false));
  EXPECT_THAT(Select(*batch, "big > 1"), ElementsAre(true, false, false, false));
  EXPECT_THAT(Select(*batch, "big = -2"), ElementsAre(false, false, true, false));
}

// Float literals compare as the decimal they are written as (`0.1` is 0.1, not the
// double nearest to it), so equality is exact; one with no decimal form of at most 38
// digits compares in float64.
TEST(ExprBind, DecimalColumnAgainstFloatLiterals) {
  auto batch = DecimalBatch();
  EXPECT_THAT(Select(*batch, "price = 0.1"), ElementsAre(false, true, false, false));
  EXPECT_THAT(Select(*batch, "price > 1.5"), ElementsAre(false, false, true, false));
  EXPECT_THAT(Select(*batch, "price >= 1.5"), ElementsAre(true, false, true, false));
  EXPECT_THAT(Select(*batch, "price > 0.125"), ElementsAre(true, false, true, false));
  EXPECT_THAT(Select(*batch, "price < 1e300"), ElementsAre(true, true, true, false));
  // Exact, but wider than 38 digits beside decimal(5, 2): compared in float64.
  EXPECT_THAT(Select(*batch, "price < 1e37"), ElementsAre(true, true, true, false));
  EXPECT_THAT(Select(*batch, "price IN (1e37, 1.5)"),
              ElementsAre(true, false, false, false));
  EXPECT_THAT(Select(*batch, "fine < 9223372036854775807"),
              ElementsAre(true, true, true, false));
  EXPECT_THAT(Select(*batch, "big = 0.1"), ElementsAre(false, true, false, false));
  EXPECT_THAT(Select(*batch, "big < -1.5"), ElementsAre(false, false, true, false));
}

// Regression: a filter that failed while evaluating said "divide by zero" and nothing
// about which filter.
TEST(ExprFilter, EvaluationErrorNamesTheFilter) {
  ASSERT_OK_AND_ASSIGN(auto batch, internal::MakeExprTestBatch());
  ASSERT_OK_AND_ASSIGN(auto filter, Filter::Make(batch->schema(), "a / 0 > 1"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Filter 'a / 0 > 1' failed: divide by zero",
                             filter->Evaluate(*batch).status());
  // Rebinding keeps the text.
  ASSERT_OK_AND_ASSIGN(auto rebound, filter->Rebind(batch->schema()));
  EXPECT_EQ(rebound->sql(), "a / 0 > 1");
  ASSERT_OK_AND_ASSIGN(filter,
                       Filter::Make(batch->schema(), "b * 9223372036854775807 > 0"));
  ASSERT_OK_AND_ASSIGN(auto b_only, batch->SelectColumns(filter->needed().columns));
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Filter 'b * 9223372036854775807 > 0' failed: overflow",
                             filter->Evaluate(*b_only).status());
}

TEST(ExprProjection, EvaluationErrorNamesTheColumn) {
  ASSERT_OK_AND_ASSIGN(auto batch, internal::MakeExprTestBatch());
  const std::vector<OutputColumn> outputs = {{"a", "a"}, {"ratio", "b / (a - a)"}};
  ASSERT_OK_AND_ASSIGN(auto projection, Projection::Make(batch->schema(), outputs));
  std::vector<int> needed = projection->needed().columns;
  ASSERT_OK_AND_ASSIGN(auto input, batch->SelectColumns(needed));
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Column 'ratio' = 'b / (a - a)' failed: divide by zero",
                             projection->Project(*input).status());
}

}  // namespace
}  // namespace riffledb
