#include "riffledb/table/gather.h"

#include <arrow/api.h>
#include <arrow/array/concatenate.h>
#include <arrow/compute/api_vector.h>
#include <arrow/compute/cast.h>
#include <arrow/json/from_string.h>
#include <arrow/util/key_value_metadata.h>
#include <gmock/gmock.h>
#include <sys/mman.h>

#include <limits>
#include <random>
#include <set>

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

// -- binary views ---------------------------------------------------------------------

// The chunks' value buffers, for checking that views reference them and not copies.
std::set<const arrow::Buffer*> ValueBuffers(const arrow::ArrayVector& chunks) {
  std::set<const arrow::Buffer*> buffers;
  for (const auto& chunk : chunks) buffers.insert(chunk->data()->buffers[2].get());
  return buffers;
}

struct ViewCase {
  std::string name;
  std::shared_ptr<arrow::DataType> type;
  std::shared_ptr<arrow::DataType> view_type;
};

class GatherViewsTest : public ::testing::TestWithParam<ViewCase> {};

// Values of every kind a view distinguishes: empty, inline (<= 12 bytes, including
// exactly 12), just past inline (13), long, and nulls; a different mix per chunk.
arrow::ArrayVector ViewChunks(const std::shared_ptr<arrow::DataType>& type) {
  const std::vector<std::vector<std::optional<std::string>>> chunk_values = {
      {"", "a", std::nullopt, "twelve bytes", "thirteen byte", std::string(300, 'x')},
      {"short", std::string(100, 'y') + "1", std::nullopt, std::nullopt, ""},
      {"0123456789abcdef", "tiny", std::string(5000, 'z') + "end", "12 bytes ok!"},
  };
  arrow::ArrayVector chunks;
  for (size_t c = 0; c < chunk_values.size(); ++c) {
    std::unique_ptr<arrow::ArrayBuilder> builder;
    EXPECT_OK(arrow::MakeBuilder(arrow::default_memory_pool(), type, &builder));
    for (const auto& value : chunk_values[c]) {
      if (!value) {
        EXPECT_OK(builder->AppendNull());
      } else if (type->id() == arrow::Type::LARGE_BINARY ||
                 type->id() == arrow::Type::LARGE_STRING) {
        EXPECT_OK(static_cast<arrow::LargeBinaryBuilder&>(*builder).Append(*value));
      } else {
        EXPECT_OK(static_cast<arrow::BinaryBuilder&>(*builder).Append(*value));
      }
    }
    std::shared_ptr<arrow::Array> chunk;
    EXPECT_OK(builder->Finish(&chunk));
    // A sliced chunk checks that array offsets are honoured.
    chunks.push_back(c == 1 ? chunk->Slice(1) : chunk);
  }
  return chunks;
}

TEST_P(GatherViewsTest, EqualsTheCopyAndReferencesTheChunksBuffers) {
  ASSERT_OK(EnsureArrowComputeInitialized());
  const auto& c = GetParam();
  const auto chunks = ViewChunks(c.type);
  const auto owned = ValueBuffers(chunks);
  std::mt19937 rng(11);
  std::vector<ChunkRow> refs;
  for (int i = 0; i < 500; ++i) {  // random order, with duplicates
    const auto chunk = static_cast<int32_t>(rng() % chunks.size());
    refs.push_back({chunk, static_cast<int64_t>(rng() % chunks[chunk]->length())});
  }
  ASSERT_OK_AND_ASSIGN(auto copied, GatherRows(chunks, refs, nullptr));
  ASSERT_OK_AND_ASSIGN(auto views, GatherRows(chunks, refs, nullptr, true));
  ASSERT_OK(views->ValidateFull());
  ASSERT_TRUE(views->type()->Equals(*c.view_type)) << views->type()->ToString();
  EXPECT_EQ(views->null_count(), copied->null_count());
  ASSERT_OK_AND_ASSIGN(auto expected, arrow::compute::Cast(*copied, c.view_type));
  EXPECT_TRUE(views->Equals(*expected)) << views->ToString();

  // Every chunk holds a long value, so 500 random rows reference all three: exactly the
  // chunks' own buffers, each once, are the data buffers.
  const auto& buffers = views->data()->buffers;
  ASSERT_EQ(buffers.size(), 2 + chunks.size());
  std::set<const arrow::Buffer*> data;
  for (size_t b = 2; b < buffers.size(); ++b) data.insert(buffers[b].get());
  EXPECT_EQ(data, owned);
  // And a long value's bytes are read in place, not from a copy.
  const auto& view_array = static_cast<const arrow::BinaryViewArray&>(*views);
  for (int64_t i = 0; i < views->length(); ++i) {
    if (view_array.IsNull(i) || view_array.GetView(i).size() <= 12) continue;
    const auto& source = *chunks[refs[i].chunk];
    const int64_t start = source.type_id() == arrow::Type::LARGE_BINARY ||
                                  source.type_id() == arrow::Type::LARGE_STRING
                              ? source.data()->GetValues<int64_t>(1)[refs[i].row]
                              : source.data()->GetValues<int32_t>(1)[refs[i].row];
    EXPECT_EQ(view_array.GetView(i).data(),
              reinterpret_cast<const char*>(source.data()->buffers[2]->data() + start))
        << "row " << i;
  }
}

TEST_P(GatherViewsTest, OnlyReferencedChunksBecomeDataBuffers) {
  const auto& c = GetParam();
  const auto chunks = ViewChunks(c.type);
  // Chunk 1 (sliced) row 0 is long; chunk 0 rows 0-3 are empty, inline or null.
  std::vector<ChunkRow> refs = {{0, 1}, {1, 0}, {0, 3}, {1, 0}, {0, 2}, {0, 0}};
  ASSERT_OK_AND_ASSIGN(auto views, GatherRows(chunks, refs, ThreadPool::Default(), true));
  ASSERT_OK(views->ValidateFull());
  ASSERT_EQ(views->data()->buffers.size(), 3u);
  EXPECT_EQ(views->data()->buffers[2], chunks[1]->data()->buffers[2]);
  EXPECT_EQ(views->null_count(), 1);
  const auto& array = static_cast<const arrow::BinaryViewArray&>(*views);
  EXPECT_EQ(array.GetView(0), "a");
  EXPECT_EQ(array.GetView(1), std::string(100, 'y') + "1");
  EXPECT_EQ(array.GetView(2), "twelve bytes");
  EXPECT_TRUE(array.IsNull(4));
  EXPECT_EQ(array.GetView(5), "");

  // Only inline values: no data buffer at all.
  std::vector<ChunkRow> small = {{0, 1}, {2, 1}, {0, 3}, {2, 3}};
  ASSERT_OK_AND_ASSIGN(auto inline_only, GatherRows(chunks, small, nullptr, true));
  ASSERT_OK(inline_only->ValidateFull());
  EXPECT_EQ(inline_only->data()->buffers.size(), 2u);
  EXPECT_EQ(inline_only->null_count(), 0);
  EXPECT_EQ(static_cast<const arrow::BinaryViewArray&>(*inline_only).GetView(1), "tiny");

  ASSERT_OK_AND_ASSIGN(auto empty, GatherRows(chunks, {}, nullptr, true));
  EXPECT_EQ(empty->length(), 0);
  EXPECT_TRUE(empty->type()->Equals(*c.view_type));
}

INSTANTIATE_TEST_SUITE_P(
    Types, GatherViewsTest,
    ::testing::Values(ViewCase{"binary", arrow::binary(), arrow::binary_view()},
                      ViewCase{"string", arrow::utf8(), arrow::utf8_view()},
                      ViewCase{"large_binary", arrow::large_binary(),
                               arrow::binary_view()},
                      ViewCase{"large_string", arrow::large_utf8(), arrow::utf8_view()}),
    [](const auto& info) { return info.param.name; });

TEST(GatherViews, OtherTypesAreGatheredAsWithoutViews) {
  ASSERT_OK_AND_ASSIGN(auto ints,
                       arrow::json::ArrayFromJSONString(arrow::int32(), "[1, 2, null]"));
  ASSERT_OK_AND_ASSIGN(auto lists, arrow::json::ArrayFromJSONString(
                                       arrow::list(arrow::utf8()),
                                       R"([["a"], null, ["long value here"]])"));
  std::vector<ChunkRow> refs = {{0, 2}, {0, 0}};
  for (const auto& chunk : {ints, lists}) {
    ASSERT_OK_AND_ASSIGN(auto views, GatherRows({chunk}, refs, nullptr, true));
    ASSERT_OK_AND_ASSIGN(auto plain, GatherRows({chunk}, refs, nullptr, false));
    EXPECT_TRUE(views->Equals(*plain)) << views->ToString();
    EXPECT_TRUE(GatheredType(chunk->type(), true)->Equals(*chunk->type()));
  }
}

// Columns stored as binary_view/string_view (Arrow's Take has no kernel for them): the
// values in request order, and a result that holds its rows' long values only.
TEST(GatherViewColumns, ViewChunksAreGatheredIntoACompactCopy) {
  ASSERT_OK(EnsureArrowComputeInitialized());
  for (const auto& [plain_type, view_type] :
       {std::pair{arrow::utf8(), arrow::utf8_view()},
        std::pair{arrow::binary(), arrow::binary_view()}}) {
    std::vector<std::shared_ptr<arrow::Array>> chunks, plain_chunks;
    for (int c = 0; c < 3; ++c) {
      // Inline (<= 12 bytes), long, empty and null values; each chunk a concatenation
      // of two arrays, so its long values live in two data buffers.
      std::vector<std::shared_ptr<arrow::Array>> parts;
      for (int part = 0; part < 2; ++part) {
        arrow::StringBuilder builder;
        for (int i = 0; i < 6; ++i) {
          if (i == 4) {
            ASSERT_OK(builder.AppendNull());
          } else {
            const std::string value =
                i == 3 ? ""
                       : "c" + std::to_string(c) + "p" + std::to_string(part) +
                             std::string(i % 2 == 0 ? 20 + i : 1, 'a' + i);
            ASSERT_OK(builder.Append(value));
          }
        }
        ASSERT_OK_AND_ASSIGN(auto strings, builder.Finish());
        ASSERT_OK_AND_ASSIGN(auto part_array, arrow::compute::Cast(*strings, plain_type));
        ASSERT_OK_AND_ASSIGN(auto as_view, arrow::compute::Cast(*part_array, view_type));
        parts.push_back(as_view);
      }
      ASSERT_OK_AND_ASSIGN(auto chunk, arrow::Concatenate(parts));
      if (c == 1) chunk = chunk->Slice(2);  // array offsets are honoured
      ASSERT_GE(chunk->data()->buffers.size(), 3u);
      chunks.push_back(chunk);
      ASSERT_OK_AND_ASSIGN(auto plain, arrow::compute::Cast(*chunk, plain_type));
      plain_chunks.push_back(plain);
    }
    std::mt19937 rng(11);
    std::vector<ChunkRow> refs;
    for (int i = 0; i < 100; ++i) {
      const auto chunk = static_cast<int32_t>(rng() % 3);
      refs.push_back({chunk, static_cast<int64_t>(rng() % chunks[chunk]->length())});
    }
    ASSERT_OK_AND_ASSIGN(auto actual, GatherRows(chunks, refs, nullptr));
    ASSERT_OK(actual->ValidateFull());
    ASSERT_TRUE(actual->type()->Equals(*view_type));
    ASSERT_OK_AND_ASSIGN(auto expected, GatherRows(plain_chunks, refs, nullptr));
    ASSERT_OK_AND_ASSIGN(auto actual_plain, arrow::compute::Cast(*actual, plain_type));
    EXPECT_TRUE(actual_plain->Equals(*expected)) << actual_plain->ToString();
    // One data buffer, of exactly the long values taken.
    int64_t long_bytes = 0;
    const auto& binary = static_cast<const arrow::BinaryArray&>(*expected);
    for (int64_t i = 0; i < binary.length(); ++i) {
      if (binary.IsValid(i) && binary.value_length(i) > 12) {
        long_bytes += binary.value_length(i);
      }
    }
    ASSERT_GT(long_bytes, 0);
    ASSERT_EQ(actual->data()->buffers.size(), 3u);
    EXPECT_EQ(actual->data()->buffers[2]->size(), long_bytes);

    // TakeRows: one chunk, any order, repeats.
    const std::vector<int64_t> rows = {5, 0, 5, 3};
    ASSERT_OK_AND_ASSIGN(auto taken, TakeRows(chunks[1], rows));
    ASSERT_OK(taken->ValidateFull());
    for (size_t i = 0; i < rows.size(); ++i) {
      ASSERT_OK_AND_ASSIGN(auto got, taken->GetScalar(static_cast<int64_t>(i)));
      ASSERT_OK_AND_ASSIGN(auto want, chunks[1]->GetScalar(rows[i]));
      EXPECT_TRUE(got->Equals(*want)) << i << ": " << got->ToString();
    }
  }
}

// Views nested in lists and structs (polars writes list[str] as large_list<string_view>):
// taken as their large_ types and cast back, as Arrow's Take has no kernel for them.
TEST(GatherViewColumns, NestedViewsAreGathered) {
  ASSERT_OK(EnsureArrowComputeInitialized());
  const std::vector<std::pair<std::shared_ptr<arrow::DataType>, std::string>> cases = {
      {arrow::large_list(arrow::utf8()),
       R"([["a", "a value longer than twelve"], null, [], ["b", null]])"},
      {arrow::struct_(
           {arrow::field("n", arrow::binary()), arrow::field("i", arrow::int32())}),
       R"([{"n": "YWJj", "i": 1}, null, {"n": null, "i": 3}, {"n": "bG9uZ2VyIHRoYW4gdHdlbHZlIGJ5dGVz", "i": 4}])"},
  };
  for (const auto& [plain_type, json] : cases) {
    ASSERT_OK_AND_ASSIGN(auto plain, arrow::json::ArrayFromJSONString(plain_type, json));
    const auto view_type = plain_type->id() == arrow::Type::LARGE_LIST
                               ? arrow::large_list(arrow::utf8_view())
                               : arrow::struct_({arrow::field("n", arrow::binary_view()),
                                                 arrow::field("i", arrow::int32())});
    ASSERT_OK_AND_ASSIGN(auto view, arrow::compute::Cast(*plain, view_type));
    EXPECT_TRUE(ContainsView(*view->type()));
    EXPECT_FALSE(ContainsView(*plain->type()));
    const std::vector<ChunkRow> refs = {{1, 3}, {0, 1}, {1, 0}, {0, 2}, {0, 3}};
    const std::vector<std::shared_ptr<arrow::Array>> chunks = {view, view->Slice(0)};
    ASSERT_OK_AND_ASSIGN(auto actual, GatherRows(chunks, refs, nullptr));
    ASSERT_OK(actual->ValidateFull());
    EXPECT_TRUE(actual->type()->Equals(*view_type)) << actual->type()->ToString();
    ASSERT_OK_AND_ASSIGN(auto expected, GatherRows({plain, plain}, refs, nullptr));
    ASSERT_OK_AND_ASSIGN(auto actual_plain, arrow::compute::Cast(*actual, plain_type));
    EXPECT_TRUE(actual_plain->Equals(*expected)) << actual_plain->ToString();
  }
}

// An anonymous mapping that reserves address space without committing memory: only
// the pages a test writes or reads are ever backed.
class Reservation : public arrow::Buffer {
 public:
  explicit Reservation(int64_t size)
      : arrow::Buffer(static_cast<const uint8_t*>(Map(size)), size) {
    is_mutable_ = true;
  }
  ~Reservation() override {
    if (data_ != nullptr) munmap(const_cast<uint8_t*>(data_), size_);
  }
  bool ok() const { return data_ != nullptr; }

 private:
  static void* Map(int64_t size) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }
};

TEST(GatherViews, ValueBufferLargerThan2GiBIsReferencedThroughSlices) {
  constexpr int64_t kGiB = int64_t{1} << 30;
  auto values = std::make_shared<Reservation>(3 * kGiB + 4096);
  if (!values->ok()) GTEST_SKIP() << "cannot reserve 3 GiB of address space";
  // Values: 20 bytes at 0; 30 bytes straddling 2 GiB (first byte in window 0); 40 bytes
  // just past 2 GiB; 8 bytes (inline) at 2.5 GiB; 50 bytes near 3 GiB.
  const std::vector<std::pair<int64_t, int64_t>> spans = {{0, 20},
                                                          {2 * kGiB - 10, 30},
                                                          {2 * kGiB + 100, 40},
                                                          {2 * kGiB + kGiB / 2, 8},
                                                          {3 * kGiB, 50}};
  std::vector<int64_t> offsets;
  int64_t position = 0;
  // Offsets must be monotonic: each value is preceded by a gap (an unused value).
  for (const auto& [start, size] : spans) {
    offsets.push_back(position);
    offsets.push_back(start);
    position = start + size;
  }
  offsets.push_back(position);
  uint8_t* bytes = values->mutable_data();
  for (size_t v = 0; v < spans.size(); ++v) {
    for (int64_t k = 0; k < spans[v].second; ++k) {
      bytes[spans[v].first + k] = static_cast<uint8_t>('a' + (v * 7 + k) % 26);
    }
  }
  const auto n = static_cast<int64_t>(offsets.size()) - 1;
  auto chunk = arrow::MakeArray(
      arrow::ArrayData::Make(arrow::large_binary(), n,
                             {nullptr, arrow::Buffer::FromVector(offsets), values}, 0));
  // Rows 1, 3, 5, 7, 9 are the values; take them out of order, one twice.
  std::vector<ChunkRow> refs = {{0, 9}, {0, 1}, {0, 5}, {0, 3}, {0, 7}, {0, 3}};
  ASSERT_OK_AND_ASSIGN(auto views, GatherRows({chunk}, refs, nullptr, true));
  ASSERT_OK(views->ValidateFull());
  const auto& array = static_cast<const arrow::BinaryViewArray&>(*views);
  const std::vector<size_t> value_of = {4, 0, 2, 1, 3, 1};
  for (size_t i = 0; i < refs.size(); ++i) {
    const auto& [start, size] = spans[value_of[i]];
    EXPECT_EQ(array.GetView(i),
              std::string_view(reinterpret_cast<const char*>(bytes + start), size))
        << "row " << i;
    if (size > 12) {
      EXPECT_EQ(array.GetView(i).data(), reinterpret_cast<const char*>(bytes + start));
    }
  }
  // Window 1 (first referenced by row 0), window 0; each a slice of the reservation.
  const auto& buffers = views->data()->buffers;
  ASSERT_EQ(buffers.size(), 4u);
  EXPECT_EQ(buffers[2]->data(), bytes + 2 * kGiB);
  EXPECT_EQ(buffers[2]->size(), kGiB + 50);
  EXPECT_EQ(buffers[3]->data(), bytes);
  EXPECT_EQ(buffers[3]->size(), 2 * kGiB + 20);
  EXPECT_EQ(buffers[2]->parent(), values);
}

TEST(GatherViews, ValueOf2GiBIsACapacityErrorNamingTheRow) {
  constexpr int64_t kTooBig = int64_t{std::numeric_limits<int32_t>::max()} + 1;
  auto values = std::make_shared<Reservation>(kTooBig + 4096);
  if (!values->ok()) GTEST_SKIP() << "cannot reserve 2 GiB of address space";
  std::vector<int64_t> offsets = {0, 3, kTooBig + 3};
  auto chunk = arrow::MakeArray(
      arrow::ArrayData::Make(arrow::large_binary(), 2,
                             {nullptr, arrow::Buffer::FromVector(offsets), values}, 0));
  std::vector<ChunkRow> refs = {{0, 0}, {0, 1}};
  auto result = GatherRows({chunk}, refs, nullptr, true);
  ASSERT_TRUE(result.status().IsCapacityError()) << result.status();
  EXPECT_THAT(result.status().message(),
              ::testing::HasSubstr("Value at row 1 of chunk 0 is 2147483648 bytes"));
}

}  // namespace
}  // namespace riffledb
