#include "riffledb/table/gather.h"

#include <arrow/api.h>
#include <arrow/array/concatenate.h>
#include <arrow/compute/api_vector.h>
#include <arrow/json/from_string.h>
#include <arrow/util/key_value_metadata.h>

#include <random>

#include "riffledb/testing/testing.h"
#include "riffledb/util/arrow_init.h"
#include "riffledb/util/thread_pool.h"

namespace riffledb {
namespace {

struct TypeCase {
  std::string name;
  std::shared_ptr<arrow::DataType> type;
  std::string json;  // one chunk's values
};

std::vector<TypeCase> Cases() {
  return {
      {"int8", arrow::int8(), "[1, null, -3, 4]"},
      {"uint64", arrow::uint64(), "[18446744073709551615, 0, null, 7]"},
      {"int32", arrow::int32(), "[1, 2, 3, null]"},
      {"float16", arrow::float16(), "[1.5, null, 2.0, 3.0]"},
      {"float64", arrow::float64(), "[1.5, null, -2.25, 1e300]"},
      {"bool", arrow::boolean(), "[true, false, null, true]"},
      {"string", arrow::utf8(), R"(["a", "", null, "hello world"])"},
      {"large_binary", arrow::large_binary(), R"(["YQ==", "", null, "aGk="])"},
      {"fixed_binary", arrow::fixed_size_binary(3), R"(["abc", null, "def", "ghi"])"},
      {"date32", arrow::date32(), "[0, 19000, null, -5]"},
      {"timestamp", arrow::timestamp(arrow::TimeUnit::NANO, "UTC"), "[0, 1, null, 3]"},
      {"decimal", arrow::decimal128(10, 2), R"(["1.25", null, "-3.50", "0.01"])"},
      {"vector", arrow::fixed_size_list(arrow::float32(), 3),
       "[[1, 2, 3], null, [4, 5, 6], [7, 8, 9]]"},
      {"vector_child_nulls", arrow::fixed_size_list(arrow::int32(), 2),
       "[[1, null], [3, 4], null, [7, 8]]"},
      {"list", arrow::list(arrow::int32()), "[[1, 2], [], null, [3]]"},
      {"struct",
       arrow::struct_(
           {arrow::field("x", arrow::int32()), arrow::field("s", arrow::utf8())}),
       R"([{"x": 1, "s": "a"}, null, {"x": null, "s": "c"}, {"x": 4, "s": null}])"},
      {"map", arrow::map(arrow::utf8(), arrow::int32()),
       R"([[["a", 1]], [], null, [["b", 2], ["c", 3]]])"},
      {"dictionary", arrow::dictionary(arrow::int32(), arrow::utf8()),
       R"(["a", "b", null, "a"])"},
  };
}

class GatherTest : public ::testing::TestWithParam<TypeCase> {};

TEST_P(GatherTest, MatchesArrowTakeAcrossChunks) {
  ASSERT_OK(EnsureArrowComputeInitialized());
  const auto& c = GetParam();
  std::vector<std::shared_ptr<arrow::Array>> chunks;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(auto chunk, arrow::json::ArrayFromJSONString(c.type, c.json));
    // A sliced chunk checks that array offsets are honoured.
    chunks.push_back(i == 1 ? chunk->Slice(1) : chunk);
  }
  ASSERT_OK_AND_ASSIGN(auto all, arrow::Concatenate(chunks));
  std::vector<int64_t> starts = {0, chunks[0]->length(),
                                 chunks[0]->length() + chunks[1]->length()};

  std::mt19937 rng(7);
  std::vector<ChunkRow> refs;
  std::vector<int64_t> flat;
  for (int i = 0; i < 200; ++i) {  // random order, with duplicates
    const int32_t chunk = static_cast<int32_t>(rng() % 3);
    const int64_t row = rng() % chunks[chunk]->length();
    refs.push_back({chunk, row});
    flat.push_back(starts[chunk] + row);
  }
  auto indices = std::make_shared<arrow::Int64Array>(static_cast<int64_t>(flat.size()),
                                                     arrow::Buffer::Wrap(flat));
  ASSERT_OK_AND_ASSIGN(auto expected, arrow::compute::Take(*all, *indices));
  for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), ThreadPool::Default()}) {
    ASSERT_OK_AND_ASSIGN(auto actual, GatherRows(chunks, refs, pool));
    ASSERT_OK(actual->ValidateFull());
    EXPECT_TRUE(actual->Equals(*expected))
        << c.name << "\nexpected " << expected->ToString() << "\nactual "
        << actual->ToString();
  }
  ASSERT_OK_AND_ASSIGN(auto empty, GatherRows(chunks, {}, nullptr));
  EXPECT_EQ(empty->length(), 0);
  EXPECT_TRUE(empty->type()->Equals(*c.type));
}

INSTANTIATE_TEST_SUITE_P(Types, GatherTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

TEST(Gather, LargeParallelCopyMatchesSerial) {
  // Big enough to cross the parallel-copy threshold: 4096 rows of 512 floats.
  const int64_t rows = 4096, dim = 512;
  arrow::FloatBuilder values;
  for (int64_t i = 0; i < rows * dim; ++i)
    ASSERT_OK(values.Append(static_cast<float>(i)));
  ASSERT_OK_AND_ASSIGN(auto flat, values.Finish());
  ASSERT_OK_AND_ASSIGN(auto vectors, arrow::FixedSizeListArray::FromArrays(flat, dim));
  std::vector<ChunkRow> refs;
  for (int64_t i = 0; i < rows; ++i) refs.push_back({0, (i * 7919) % rows});
  ASSERT_OK_AND_ASSIGN(auto serial, GatherRows({vectors}, refs, nullptr));
  ASSERT_OK_AND_ASSIGN(auto parallel, GatherRows({vectors}, refs, ThreadPool::Default()));
  EXPECT_TRUE(serial->Equals(*parallel));
  const auto& list = static_cast<const arrow::FixedSizeListArray&>(*parallel);
  const auto& floats = static_cast<const arrow::FloatArray&>(*list.values());
  EXPECT_EQ(floats.Value(5 * dim + 3), static_cast<float>(((5 * 7919) % rows) * dim + 3));
}

}  // namespace
}  // namespace riffledb
